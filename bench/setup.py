"""The repository's own setup: cold against warm (issue #22 item 4). One JSON object per line.

  repo_files_s     reading the base branch's instructions, setup and settings from the
                   mirror (git objects) for one task
  setup_cold_s     a task's setup run with an empty cache: its steps in the sandbox, then
                   what it made saved into the node's cache
  setup_save_s     the part of setup_cold_s spent saving
  setup_warm_s     the next task's setup, the same cache key, its copy written ahead (what
                   a node does between tasks): moved in, no step runs (target: a warm task
                   starts at once, within the ≤ 2 s from claim to start)
  setup_warm_tar_s the same without a copy written ahead: restored from the tar file
  spare_write_s    writing that copy ahead (in the background, while the task runs)
  cache_entry_mib  the size of the cache entry

Two setups: ``venv`` (``python3 -m venv .venv``, pip included: a real install, offline)
and ``files`` (a script writing N small files into node_modules, like an npm install's
output). In bubblewrap when it runs here (the node's default), else unconfined.
`python bench/setup.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.claim.repofiles import read_repo_files  # noqa: E402
from bzzz.claim.setup import run_setup  # noqa: E402
from bzzz.exec.executor import Job  # noqa: E402
from bzzz.exec.sandbox import Limits, NoSandbox, Sandbox, SandboxError, open_sandbox  # noqa: E402
from bzzz.repo.git import Git  # noqa: E402
from bzzz.repo.setupcache import SetupCache  # noqa: E402
from bzzz.repo.workspace import checkout  # noqa: E402


def emit(metric: str, value: float, unit: str, target: str, ok: bool, **params: object) -> None:
    print(json.dumps({"bench": "setup", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def _repo(root: Path, setup: str) -> tuple[Path, str]:
    """A bare mirror holding one commit with the setup script, AGENTS.md and a lockfile."""
    work, mirror = root / "src", root / "mirror.git"
    (work / ".bzzz").mkdir(parents=True)
    (work / ".bzzz" / "setup.sh").write_text(setup)
    (work / "AGENTS.md").write_text("Run the tests before you finish.\n")
    (work / "requirements.txt").write_text("# nothing\n")
    (work / ".gitignore").write_text(".venv/\nnode_modules/\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    for args in (["init", "-q", str(work)], ["-C", str(work), "add", "-A"],
                 ["-C", str(work), "commit", "-qm", "base"],
                 ["clone", "-q", "--bare", str(work), str(mirror)]):
        subprocess.run(["git", *args], check=True, env=env, capture_output=True)
    head = subprocess.run(["git", "--git-dir", str(mirror), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    os.chmod(root, 0o755)
    return mirror, head


async def _sandbox(state: Path) -> Sandbox:
    try:
        return await open_sandbox("bwrap", node_id="bench", hidden=[], state_dir=state,
                                  docker_host=None, default_image="", network="none",
                                  limits=Limits(), user=None, cgroup="off")
    except SandboxError:
        return NoSandbox(None)


async def _one_task(root: Path, name: str, mirror: Path, head: str, box: Sandbox,
                    cache: SetupCache) -> dict[str, float | str]:
    git = Git()
    ws, private, out = root / name / "ws", root / name / "private", root / name / "out"
    co = await checkout(git, mirror, "bench/setup", head, ws, private, "bzzz/1-bench", None)
    out.mkdir(parents=True)
    t0 = time.monotonic()
    files = await read_repo_files(git, co, "main", head, ["set it up"], sandbox=box.kind)
    t1 = time.monotonic()
    job = Job(task_id=f"bench-{name}", repo="bench/setup", issue=1, title="t", body="",
              executor="shell", options={}, code=None, workspace=ws, output_dir=out,
              feedback="", feedback_file=out / "feedback.md", env={}, read_only=[mirror],
              timeout=600)
    done = await run_setup(files.setup, files.setup_key, job, box, user=None, git=git, co=co,
                           cache=cache, owner=None, required=False, timeout=600)
    t2 = time.monotonic()
    assert not done.failed, done.doc()
    return {"read": t1 - t0, "setup": t2 - t1, "cache": done.cache, "key": files.setup_key}


async def scenario(kind: str, setup: str, rounds: int, params: dict[str, object]) -> None:
    root = Path(tempfile.mkdtemp(prefix="bzzz-bench-setup-"))
    try:
        mirror, head = _repo(root, setup)
        box = await _sandbox(root / "state")
        cache = SetupCache(root / "cache", spare_root=root / "spare")
        cold_s, warm_s, tar_s, save_s, read_s, spare_s = [], [], [], [], [], []
        for r in range(rounds):
            for p in cache.root.glob("*.tar"):
                p.unlink()
            cold = await _one_task(root, f"cold{r}", mirror, head, box, cache)
            tar = await _one_task(root, f"tar{r}", mirror, head, box, cache)
            t = time.monotonic()
            assert cache.make_spare(str(cold["key"]), None)
            spare_s.append(time.monotonic() - t)
            warm = await _one_task(root, f"warm{r}", mirror, head, box, cache)
            assert str(warm["cache"]).startswith("restored (spare"), warm
            assert str(tar["cache"]).startswith("restored ("), tar
            cold_s.append(float(cold["setup"]))
            warm_s.append(float(warm["setup"]))
            tar_s.append(float(tar["setup"]))
            read_s += [float(cold["read"]), float(warm["read"])]
            save_s.append(_save_seconds(root, f"cold{r}", cache))
        size = sum(p.stat().st_size for p in cache.root.glob("*.tar")) / (1 << 20)
        p = {**params, "setup": kind, "sandbox": box.kind, "rounds": rounds}
        emit("repo_files_s", round(min(read_s), 3), "s", "small", True, **p)
        emit("setup_cold_s", round(min(cold_s), 3), "s", "—", True, **p)
        emit("setup_save_s", round(min(save_s), 3), "s", "—", True, **p)
        warm = round(min(warm_s), 3)
        emit("setup_warm_s", warm, "s", "≤ 2 s", warm <= 2.0, **p)
        emit("setup_warm_tar_s", round(min(tar_s), 3), "s", "—", True, **p)
        emit("spare_write_s", round(min(spare_s), 3), "s", "—", True, **p)
        emit("cache_entry_mib", round(size, 1), "MiB", "≤ setup_cache_entry", True, **p)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _save_seconds(root: Path, name: str, cache: SetupCache) -> float:
    """Saving again what the cold task made, timed alone."""
    ws = root / name / "ws"
    paths = [p for p in (".venv/", "node_modules/") if (ws / p).exists()]
    if not paths:  # the first round's was moved on by the warm task: the tar task's then
        ws = root / name.replace("cold", "tar") / "ws"
        paths = [p for p in (".venv/", "node_modules/") if (ws / p).exists()]
    t = time.monotonic()
    cache.save("timing", ws, paths)
    took = time.monotonic() - t
    cache.path("timing").unlink()
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    # kept under 10 s cold: a bubblewrap task started from a trio worker thread is killed
    # (--die-with-parent) when trio retires that idle thread, 10 s on
    n = 1000 if a.quick else 2000
    files = ("set -e\nmkdir -p node_modules\ncd node_modules\n"
             f"for i in $(seq 1 {n}); do d=pkg$((i % 100)); mkdir -p $d; "
             "printf 'module.exports = %s;\\n' $i > $d/f$i.js; done\n")
    trio.run(scenario, "files", files, 1 if a.quick else 3, {"files": n})
    if shutil.which("python3"):
        trio.run(scenario, "venv", "python3 -m venv .venv\n", 1 if a.quick else 3, {})


if __name__ == "__main__":
    main()
