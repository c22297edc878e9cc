"""Duplicate issues per schedule slot: 3 agents carrying one every-minute schedule over 100
slots, on a fake clock (trio's MockClock, autojump) and an in-memory GitHub with the
compare-and-set of git refs, random delays per request, clock skew of a few seconds and
random wake-up jitter. Target: 0.

Run as `python bench/schedules.py [--quick]` (--quick: 20 slots, 2 seeds).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bzzz.decisions import MemoryDecisionLog  # noqa: E402
from bzzz.schedule.core import Cron  # noqa: E402
from bzzz.schedule.memory import MemoryHub, MemorySlotStore  # noqa: E402
from bzzz.schedule.runner import Schedule, Scheduler  # noqa: E402

T0 = datetime(2026, 12, 2, 0, 0, 30, tzinfo=timezone.utc).timestamp()


def skewed_clock(start: float, skew: float) -> Callable[[], float]:
    """Wall-clock time as one agent sees it: trio's clock from ``start``, off by ``skew``."""
    return lambda: start + skew + trio.current_time()


async def one_run(agents: int, slots: int, seed: int) -> dict:
    rng = random.Random(seed)
    hub = MemoryHub(delay=rng.uniform(0.1, 2.0), rng=rng)
    sched = Schedule("tick", Cron("* * * * *"), "o/r", "Tick {slot}", command="echo tick")
    start = T0 - trio.current_time()
    skews = [rng.uniform(-4, 4) for _ in range(agents)]  # each agent's clock is off by its own
    schedulers = [Scheduler([sched], {"o/r": MemorySlotStore(hub)}, MemoryDecisionLog(), f"a{i}",
                            clock=skewed_clock(start, skew), jitter=2.0)
                  for i, skew in enumerate(skews)]
    with trio.move_on_after(slots * 60 + 10):
        async with trio.open_nursery() as nursery:
            for s in schedulers:
                nursery.start_soon(s.run)
    per_slot = MemorySlotStore(hub).issues_for("tick")
    return {"issues": len(hub.issues), "slots_filed": len(per_slot),
            "duplicates": sum(len(v) - 1 for v in per_slot.values()),
            "lost": sum(s.lost for s in schedulers), "writes": hub.writes}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    agents, slots, seeds = 3, (20 if args.quick else 100), (2 if args.quick else 5)
    results = []
    started = time.perf_counter()
    for seed in range(seeds):
        results.append(trio.run(one_run, agents, slots, seed,
                                clock=trio.testing.MockClock(autojump_threshold=0)))
    duplicates = sum(r["duplicates"] for r in results)
    missing = sum(slots - r["slots_filed"] for r in results)
    print(json.dumps({"bench": "schedules", "figure": "schedule_duplicates_per_slot",
                      "metric": "schedule_duplicates_per_slot", "agents": agents, "slots": slots,
                      "value": duplicates / (slots * seeds), "unit": "issues", "target": 0,
                      "ok": duplicates == 0 and missing == 0,
                      "params": {"seeds": seeds, "fake_clock": True, "skew_s": 4, "jitter_s": 2,
                                 "missing_slots": missing,
                                 "writes_per_slot": round(sum(r["writes"] for r in results)
                                                          / (slots * seeds), 2),
                                 "wall_s": round(time.perf_counter() - started, 2)}}), flush=True)
    return 0 if duplicates == 0 and missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
