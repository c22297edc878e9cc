"""Coding-agent preset benchmarks (bzzz/exec/agents/). One JSON object per line.

  preset_overhead_s    Claude Code editing a file against the scripted model
                       (bzzz/testing/scriptedmodel.py), run by the claude-code preset, minus
                       the same CLI with the same arguments run as a plain ``agent_command``
                       (bzzz/exec/executor.py AgentExecutor): both in the bubblewrap sandbox
                       behind the same task gateway, medians of the same run. What the preset
                       adds: its HOME and configuration, reading the stream into a verdict,
                       the checkout's fingerprint before and after. Target 0.3 s.

Needs bubblewrap and the CLI (.ci/agent-clis.sh); reports a skipped line without them.
Run as `python bench/agents.py [--quick]`.
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
from pathlib import Path

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
from bzzz.testing.agentclis import cli_bin, cli_path  # noqa: E402
from bzzz.testing.scriptedmodel import Edit, ScriptedModelThread  # noqa: E402

TARGET = 0.3
EDIT = Edit("README.md", "hello old world", "hello new world", final="Done.")


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "agents", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


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
    if shutil.which("bwrap") is None or cli_path("claude") is None:
        emit("preset_overhead_s", None, "s", TARGET, None,
             skipped="needs bubblewrap and claude (bash .ci/agent-clis.sh)")
        return
    work = Path(tempfile.mkdtemp(prefix="bzzz-bench-agents-"))
    os.chmod(work, 0o755)
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples (a smoke run)")
    trio.run(main, parser.parse_args().quick)
