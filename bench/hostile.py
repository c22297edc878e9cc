"""Hostile-task benchmark: the corpus of bzzz/testing/hostile.py (the one tests/test_hostile.py
runs) through a real `bzzz run` agent in each available sandbox. One JSON object per line.

  hostile_tasks_reaching_a_secret            tasks whose result holds a secret, any spelling
  hostile_tasks_killing_the_agent            tasks during which the agent died
  hostile_tasks_leaving_a_process            tasks with a process or container left after them
  hostile_tasks_tampering_with_agent_files   tasks that wrote into the data dir, the agent's
                                             log or another task's workspace

Targets are 0. Set-ups: bwrap as root, bwrap as an unprivileged uid, and the container
sandbox on a podman service the bench starts itself (bzzz.testing.podman); a set-up this
machine cannot run gets a skipped line. --quick: bwrap as root only. --control adds the
unconfined `none` sandbox as an unprivileged uid, where the numbers must NOT be 0 (it shows
the detectors see what a task reaches). Needs root.

Run as `python bench/hostile.py [--quick] [--control]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.testing import hostile  # noqa: E402
from bzzz.testing import podman as podman_helper  # noqa: E402
from bzzz.testing.hostile import HostileRun, Setup  # noqa: E402

METRICS = ("hostile_tasks_reaching_a_secret", "hostile_tasks_killing_the_agent",
           "hostile_tasks_leaving_a_process", "hostile_tasks_tampering_with_agent_files")


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def skipped(setup: str, why: str) -> None:
    for metric in METRICS:
        emit({"bench": "hostile", "metric": metric, "value": None, "unit": "tasks",
              "target": 0, "ok": None, "params": {"sandbox": setup, "skipped": why}})


def run_one(setup: Setup, control: bool = False) -> None:
    started = time.monotonic()
    with HostileRun(setup) as run:
        report = run.run()
    for row in report.metrics():
        row["params"]["seconds"] = round(time.monotonic() - started, 1)
        if control:  # the unconfined baseline: a zero would mean a blind detector
            row["target"], row["ok"] = ">0", row["value"] > 0
            row["params"]["control"] = True
        emit(row)
    if report.problems and not control:
        print(report.summary(), file=sys.stderr)


def main(quick: bool, control: bool) -> int:
    if os.geteuid() != 0:
        skipped("all", "needs root (agents run as root and as another uid)")
        return 0
    names = ["bwrap-root"] if quick else ["bwrap-root", "bwrap-user", "container-root"]
    with contextlib.ExitStack() as stack:
        for name in names:
            if name.startswith("bwrap") and shutil.which("bwrap") is None:
                skipped(name, "bubblewrap is not installed")
                continue
            if name == "bwrap-user" and hostile.python_for(hostile.USER_UID) is None:
                skipped(name, f"no python that uid {hostile.USER_UID} can run bzzz with")
                continue
            if name == "container-root":
                ok, why = podman_helper.available()
                if not ok:
                    skipped(name, why)
                    continue
                service = stack.enter_context(podman_helper.PodmanService())
                run_one(Setup(name, "container", podman=service))
                continue
            uid = hostile.USER_UID if name == "bwrap-user" else None
            run_one(Setup(name, "bwrap", uid=uid))
        if control:
            run_one(Setup("none-user", "none", uid=hostile.USER_UID), control=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="bwrap as root only (~10 s)")
    parser.add_argument("--control", action="store_true",
                        help="also the unconfined sandbox, where the numbers must be > 0")
    args = parser.parse_args()
    sys.exit(main(args.quick, args.control))
