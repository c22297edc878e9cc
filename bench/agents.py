"""Coding-agent preset benchmarks (bzzz/exec/agents/). One JSON object per line.

  preset_overhead_s    Claude Code editing a file against the scripted model
                       (bzzz/testing/scriptedmodel.py), run by the claude-code preset, minus
                       the same CLI with the same arguments run as a plain ``agent_command``
                       (bzzz/exec/executor.py AgentExecutor): both in the bubblewrap sandbox
                       behind the same task gateway, medians of the same run. What the preset
                       adds: its HOME and configuration, reading the stream into a verdict,
                       the checkout's fingerprint before and after. Target 0.3 s.
  claim_to_cli_s       a real agent (`bzzz run`, bubblewrap, the task gateway, devhub, the
                       claude-code preset, the scripted model): from the task's ``claimed``
                       decision (its log's timestamp) to the CLI's first model request (the
                       scripted model's clock, the same machine's): the checkout, the
                       repository's files, its setup restored from the node's cache, the
                       sandbox, and the CLI starting until it asks the model (Claude Code's
                       own start, node.js loading it, is in it). The first task fills the
                       setup cache; the figure is the median of the next ones (setup
                       restored). Target 2 s. The steps: claimed → running (checkout and the
                       repository's files), running → the CLI's first request (setup
                       restored, the CLI's start).

Needs bubblewrap and the CLI (.ci/agent-clis.sh); reports a skipped line without them.
Run as `python bench/agents.py [--quick] [--only claim_to_cli|preset_overhead]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.exec.agents import Installed, Route, resolve  # noqa: E402
from bzzz.exec.agents.base import Setup  # noqa: E402
from bzzz.exec.agents.runner import PresetExecutor  # noqa: E402
from bzzz.exec.executor import AgentExecutor, Executor, Job, Outcome  # noqa: E402
from bzzz.exec.sandbox import Limits, SandboxError, open_sandbox  # noqa: E402
from bzzz.exec.shell import task_identity  # noqa: E402
from bzzz.gateway.allow import Allowlist  # noqa: E402
from bzzz.gateway.models import ModelEndpoint  # noqa: E402
from bzzz.gateway.proxy import Gateway  # noqa: E402
from bzzz.devhub import DevHubThread  # noqa: E402
from bzzz.hyperlog.store import read_entries  # noqa: E402
from bzzz.testing import agents as agent_procs  # noqa: E402
from bzzz.testing.agentclis import cli_bin, cli_path  # noqa: E402
from bzzz.testing.wait import wait_for  # noqa: E402
from bzzz.testing.scriptedmodel import Edit, ScriptedModelThread  # noqa: E402

TARGET = 0.3
EDIT = Edit("README.md", "hello old world", "hello new world", final="Done.")


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "agents", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def work_dir(metric: str, target: float, prefix: str) -> Path | None:
    """A directory the task's user can go through (to its checkout), or None (and a skipped
    line for ``metric``) without bubblewrap or Claude Code."""
    if shutil.which("bwrap") is None or cli_path("claude") is None:
        emit(metric, None, "s", target, None,
             skipped="needs bubblewrap and claude (bash .ci/agent-clis.sh)")
        return None
    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(work, 0o755)
    return work


def job(root: Path, owner: tuple[int, int] | None) -> Job:
    """A fresh one-commit checkout, its output and inputs directories, and the job."""
    shutil.rmtree(root, ignore_errors=True)
    ws, out, inp = root / "ws", root / "out", root / "in"
    for d in (ws, out, inp):
        d.mkdir(parents=True)
        os.chmod(d, 0o755)
    (ws / "README.md").write_text(EDIT.old + "\n")
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    (inp / "feedback.md").write_text("")
    if owner is not None:
        subprocess.run(["chown", "-R", f"{owner[0]}:{owner[1]}", str(ws), str(out)],
                       check=True)
    return Job(task_id="bench#1", repo="o/r", issue=1, title="old to new",
               body="In README.md, change old to new.", executor="agent", options={},
               code=None, workspace=ws, output_dir=out, feedback="",
               feedback_file=inp / "feedback.md", env={}, read_only=[inp], timeout=120)


async def once(gw: Gateway, executor: Executor, root: Path,
               owner: tuple[int, int] | None) -> float:
    j = job(root, owner)
    start = trio.current_time()
    async with gw.route(j.task_id, Allowlist.build([])):
        outcome = await executor.run(j)
    took = trio.current_time() - start
    if (j.workspace / "README.md").read_text() != EDIT.new + "\n":
        raise RuntimeError(f"{type(executor).__name__}: no edit ({outcome.result.output[-300:]})")
    return took


async def main(quick: bool) -> None:
    samples = 3 if quick else 10
    work = work_dir("preset_overhead_s", TARGET, "bzzz-bench-agents-")
    if work is None:
        return
    try:
        with ScriptedModelThread(EDIT) as server:
            gw = Gateway(work / "gw", models=[ModelEndpoint("m", server.url, "anthropic")])
            try:
                box = await open_sandbox("bwrap", node_id="bench", hidden=[],
                                         state_dir=work / "s", docker_host=None,
                                         default_image="-", network="gateway",
                                         limits=Limits(memory="2g", pids=512),
                                         user=task_identity(None), gateway=gw)
            except SandboxError as exc:
                emit("preset_overhead_s", None, "s", TARGET, None, skipped=str(exc))
                return
            found, why = resolve(["claude-code"], {"": "scripted"},
                                 [Route("m", "anthropic", ("scripted",))], [cli_bin()])
            agent = found["claude-code"]
            preset = PresetExecutor(found, box, max_turns=8)
            inv = agent.preset.invocation(_setup(agent))
            bare = AgentExecutor(["/bin/sh", "-c", 'exec "$@" < "$BZZZ_INSTRUCTIONS"', "sh",
                                  str(agent.executable), *inv.argv], box,
                                 env={**inv.env, "PATH": f"{agent.executable.parent}:"
                                      "/usr/local/bin:/usr/bin:/bin"})
            # the CLI's installation shown to the bare run too
            read_only = [agent.install_root] if agent.install_root else []
            times: dict[str, list[float]] = {"preset": [], "bare": []}
            for i in range(samples + 1):  # the first of each is a warm-up
                for name, ex in (("bare", bare), ("preset", preset)):
                    j_root = work / f"{name}{i}"
                    took = await once(gw, _Shown(ex, read_only), j_root, box.owner)
                    if i:
                        times[name].append(took)
            await gw.aclose()
        p, b = statistics.median(times["preset"]), statistics.median(times["bare"])
        value = round(p - b, 3)
        emit("preset_overhead_s", value, "s", TARGET, value <= TARGET, samples=samples,
             preset_p50=round(p, 3), bare_p50=round(b, 3), cli="claude-code")
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _Shown:
    """An executor whose job also shows the CLI's installation read-only."""

    def __init__(self, inner: Executor, read_only: list[Path]) -> None:
        self.inner, self.read_only, self.name = inner, read_only, inner.name

    async def run(self, j: Job) -> Outcome:
        j.read_only = [*j.read_only, *self.read_only]
        return await self.inner.run(j)


def _setup(agent: Installed) -> Setup:
    """The preset's invocation needs a Setup; only its argv and variables are used here."""
    return Setup(agent.model, agent.base_url, Path("/nonexistent"), Path("/nonexistent"),
                 Path("/nonexistent"), 8)


CLAIM_TARGET = 2.0
SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot0", "token": "t-bot0"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot0"]}]}
CLI_EDIT = Edit("README.md", "# tasks", "# tasks, kept by agents", final="Done.")
SETUP = "set -e\nmkdir -p node_modules/pkg\necho 'module.exports = 1' > node_modules/pkg/index.js\n"


def _put_files(owner: Any, files: dict[str, str]) -> None:
    """Commit files to main of owner/tasks through the git data API."""
    head = owner.get("/repos/owner/tasks/git/ref/heads/main").json()["object"]["sha"]
    tree = owner.get(f"/repos/owner/tasks/git/commits/{head}").json()["tree"]["sha"]
    entries = [{"path": path, "mode": "100644", "type": "blob",
                "sha": owner.post("/repos/owner/tasks/git/blobs", json={
                    "content": text, "encoding": "utf-8"}).json()["sha"]}
               for path, text in files.items()]
    new_tree = owner.post("/repos/owner/tasks/git/trees", json={
        "base_tree": tree, "tree": entries}).json()["sha"]
    commit = owner.post("/repos/owner/tasks/git/commits", json={
        "message": "setup", "tree": new_tree, "parents": [head]}).json()["sha"]
    owner.patch("/repos/owner/tasks/git/refs/heads/main", json={"sha": commit, "force": True})


def _labels(owner: Any, n: int) -> set[str]:
    return {x["name"] for x in owner.get(f"/repos/owner/tasks/issues/{n}").json()["labels"]}


def _done(owner: Any, n: int, agent: Any) -> bool:
    if agent.proc.poll() is not None:
        raise RuntimeError(f"the agent exited ({agent.proc.returncode})")
    return bool(_labels(owner, n) & {"bzzz:review", "bzzz:failed"})


def claim_to_cli(quick: bool) -> None:
    """claim_to_cli_s: see the module's docstring."""
    import httpx

    tasks = 3 if quick else 6
    work = work_dir("claim_to_cli_s", CLAIM_TARGET, "bzzz-bench-claim-cli-")
    if work is None:
        return
    asked: list[float] = []  # when the CLI's model requests came (with tools: the agent's)
    lock = threading.Lock()
    try:
        with ScriptedModelThread(CLI_EDIT) as model, DevHubThread(seed=SEED) as hub:
            record = model.model.record

            def timed(path: str, headers: dict[str, str], body: Any) -> None:
                if path.startswith("/v1/messages") and "count_tokens" not in path:
                    with lock:
                        asked.append(time.time())
                record(path, headers, body)

            model.model.record = timed  # type: ignore[method-assign]
            owner = httpx.Client(base_url=hub.url, headers={"Authorization": "token t-owner"},
                                 timeout=30)
            _put_files(owner, {".bzzz/setup.sh": SETUP, "package-lock.json": "{}\n",
                               ".gitignore": "node_modules/\n"})
            llm = json.dumps([{"url": model.url, "kind": "anthropic", "name": "claude",
                               "models": ["scripted"]}])
            agent = agent_procs.start(
                work, "bot0", hub.url, "t-bot0", "owner/tasks", BZZZ_SANDBOX="bwrap",
                BZZZ_TASK_NETWORK="gateway", BZZZ_LLM=llm, BZZZ_AGENT="claude-code",
                BZZZ_AGENT_MODEL="scripted", BZZZ_AGENT_PATH=str(cli_bin()),
                BZZZ_DETECT_CAPABILITIES="off", BZZZ_GITHUB__POLL_INTERVAL="0.3",
                BZZZ_GITHUB__WRITE_INTERVAL="0", BZZZ_HELP_REQUESTS="off",
                BZZZ_PROGRESS_INTERVAL="0")
            numbers = []
            try:
                for i in range(tasks):
                    n = owner.post("/repos/owner/tasks/issues", json={
                        "title": f"Who keeps the tasks {i}", "labels": ["bzzz"],
                        "body": "Say in the README who keeps the tasks."}).json()["number"]
                    wait_for(lambda n=n: _done(owner, n, agent), 120, what=f"task {n} done")
                    numbers.append(n)
            except BaseException:
                for log in work.glob("*.log"):
                    sys.stderr.write(log.read_text(errors="replace")[-4000:])
                raise
            finally:
                agent.stop()
            _claim_figure(read_entries(agent.data_dir / "log"), numbers, asked, quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _claim_figure(entries: list[dict[str, Any]], numbers: list[int], asked: list[float],
                  quick: bool) -> None:
    at: dict[int, dict[str, Any]] = {}
    for e in entries:
        if e.get("issue") in numbers and e.get("type") in ("claimed", "running", "setup"):
            at.setdefault(e["issue"], {}).setdefault(e["type"], e)
    rows = []
    for n in numbers:
        claimed = at[n]["claimed"]["ts"]
        first = min((t for t in asked if t >= claimed), default=None)
        if first is None:
            raise RuntimeError(f"task {n}: the CLI never asked the model")
        rows.append({"issue": n, "total": round(first - claimed, 3),
                     "to_running": round(at[n]["running"]["ts"] - claimed, 3),
                     "running_to_cli": round(first - at[n]["running"]["ts"], 3),
                     "setup": str((at[n].get("setup") or {}).get("cache", "none"))})
    warm = rows[1:]
    p50 = round(statistics.median(r["total"] for r in warm), 3)
    emit("claim_to_cli_s", p50, "s", CLAIM_TARGET, p50 <= CLAIM_TARGET, samples=len(warm),
         cli="claude-code", end="the CLI's first model request", quick=quick,
         to_running_p50=round(statistics.median(r["to_running"] for r in warm), 3),
         running_to_cli_p50=round(statistics.median(r["running_to_cli"] for r in warm), 3),
         setup=[r["setup"] for r in rows], cold=rows[0]["total"],
         max=max(r["total"] for r in warm))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples (a smoke run)")
    parser.add_argument("--only", choices=("claim_to_cli", "preset_overhead"))
    args = parser.parse_args()
    if args.only != "claim_to_cli":
        trio.run(main, args.quick)
    if args.only != "preset_overhead":
        claim_to_cli(args.quick)
