"""Sandbox benchmarks: what a sandbox adds to the start of every task. One JSON object per line.

  bwrap_start_p50 / _p90       `true` through the bubblewrap sandbox, minus `true` run bare
                               (the ``none`` sandbox: a process group, same output capture)
  container_start_p50 / _p90   `true` through the container sandbox (create, attach, start,
                               wait, remove) on podman's Docker-compatible service, minus bare

The container metrics need an engine: the bench starts podman itself (bzzz.testing.podman,
root) and reports a skipped line when it cannot. Run as `python bench/sandbox.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.exec.sandbox import Limits, NoSandbox, SandboxError, open_sandbox  # noqa: E402
from bzzz.exec.shell import task_identity  # noqa: E402
from bzzz.testing import podman as podman_helper  # noqa: E402

TARGETS = {"bwrap": 0.030, "container": 0.5}


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "sandbox", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


async def timings(box, ws: Path, samples: int, argv: list[str]) -> list[float]:
    out = []
    for _ in range(samples + 1):  # the first is a warm-up
        start = trio.current_time()
        r = await box.run(argv, ws, {"PATH": "/usr/bin:/bin"}, timeout=60, max_output=4096,
                          kill_grace=1, task_id="bench")
        if r.status != "succeeded":
            raise RuntimeError(f"{box.kind}: `true` {r.status}: {r.output.strip()[-200:]}")
        out.append(trio.current_time() - start)
    return out[1:]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def report(kind: str, times: list[float], bare: list[float], **params) -> None:
    base = statistics.median(bare)
    for p in (50, 90):
        value = round(pct(times, p) - base, 4)
        target = TARGETS[kind] if p == 50 else None
        emit(f"{kind}_start_p{p}", value, "s", target,
             (value <= target) if target is not None else None,
             samples=len(times), bare_p50=round(base, 4), **params)


async def main(quick: bool) -> None:
    n_bwrap, n_container = (10, 8) if quick else (50, 30)
    user = task_identity(None)
    work = Path(tempfile.mkdtemp(prefix="bzzz-bench-sandbox-"))
    os.chmod(work, 0o755)
    ws = work / "ws"
    try:
        bare = await timings(NoSandbox(user), ws, n_bwrap, ["true"])
        try:
            box = await open_sandbox("bwrap", node_id="bench", hidden=[], state_dir=work / "s",
                                     docker_host=None, default_image="unused", network="none",
                                     limits=Limits(), user=user)
        except SandboxError as exc:
            emit("bwrap_start_p50", None, "s", TARGETS["bwrap"], None, skipped=str(exc))
        else:
            report("bwrap", await timings(box, ws, n_bwrap, ["true"]), bare,
                   user=user.name if user else "agent")
        ok, why = podman_helper.available()
        if not ok:
            emit("container_start_p50", None, "s", TARGETS["container"], None,
                 skipped=f"no container engine could be set up: {why}")
            return
        try:
            service = podman_helper.PodmanService()
            service.start()
        except (podman_helper.PodmanError, OSError) as exc:
            service.close()
            emit("container_start_p50", None, "s", TARGETS["container"], None,
                 skipped=f"podman service did not start: {str(exc)[:200]}")
            return
        try:
            box = await open_sandbox("container", node_id="bench", hidden=[],
                                     state_dir=work / "s", docker_host=service.docker_host,
                                     default_image=service.image, network="none",
                                     limits=Limits(), user=user)
            try:
                times = await timings(box, ws, n_container, ["true"])
            finally:
                await box.aclose()
            report("container", times, bare, engine="podman", network="none")
        finally:
            service.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples (a smoke run)")
    trio.run(main, parser.parse_args().quick)
