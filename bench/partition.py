"""Partition of two groups of agents for longer than 2 x the claim lease (issue #14).

Real `bzzz run` processes in network namespaces (bzzz/testing/partition.py): two switches
joined by a router, devhub on both, a steady stream of tasks that mark their own start and
end; the router's legs go down for 2 x lease + 2 s, then come back. One JSON object per line:

  partition_concurrent_runs   pairs of runs of one task that overlapped in time (target 0)
  partition_tasks_run_twice   tasks that ran more than once (target 0)
  partition_tasks_lost        tasks filed that never ran (target 0)
  partition_split_seconds     cut to each group's peer table listing only its own group
  partition_merge_seconds     restore to every peer table listing every agent again

Run as `python bench/partition.py [--quick]` (root: network namespaces; skipped otherwise).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bzzz.testing import netns  # noqa: E402
from bzzz.testing.partition import Partition  # noqa: E402


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "partition", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 + 2 agents, 12 tasks, 3 s lease")
    ap.add_argument("--per-group", type=int, default=None)
    ap.add_argument("--tasks", type=int, default=None)
    ap.add_argument("--lease", type=float, default=None)
    args = ap.parse_args()
    ok, reason = netns.available()
    if not ok:
        print(json.dumps({"bench": "partition", "skipped": reason}))
        return 0
    per_group = args.per_group or (2 if args.quick else 3)
    tasks = args.tasks or (12 if args.quick else 40)
    lease = args.lease or (3.0 if args.quick else 10.0)
    with netns.Lab() as lab:
        p = Partition(lab, per_group=per_group, tasks=tasks, lease=lease,
                      feed_interval=0.6 if args.quick else 0.8)
        try:
            got = p.run()
        finally:
            p.close()
    params = {"agents": 2 * per_group, "tasks": tasks, "lease_s": lease,
              "cut_s": got["cut_seconds"], "runs_during_cut": got["runs_started_during_cut"]}
    emit("partition_concurrent_runs", got["concurrent_runs"], "pairs", "0",
         got["concurrent_runs"] == 0, **params)
    emit("partition_tasks_run_twice", got["run_twice"], "tasks", "0", got["run_twice"] == 0,
         **params)
    emit("partition_tasks_lost", got["lost"], "tasks", "0", got["lost"] == 0, **params)
    emit("partition_split_seconds", got["split_seconds"], "s", "", None, **params)
    emit("partition_merge_seconds", got["merge_seconds"], "s", "<= 45", got["merge_seconds"] <= 45,
         **params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
