"""Guardian benchmarks. One JSON object per line.

  check_time_p50, check_time_p99  time of one check over the probe inputs (70 CI commands,
                                  the shell-trick corpus) and random strings up to 16 KiB
                                  (shell tokens, metacharacters, printable ASCII, arbitrary
                                  Unicode; lengths log-uniform); each input's best of N runs
  worst_input_time                the slowest single input, the hostile ones included (deep
                                  nesting, 1 MiB, 1,500 wrappers, ...)
  ci_refused                      ordinary CI commands refused (of 70)
  tricks_caught                   known shell tricks refused (of N), reported
  hostile_refused                 hostile inputs answered with a refusal (of N)
  check_async_deadline            check_async on a stuck check: time to its refusal

Run as `python bench/guardian.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import string
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import trio  # noqa: E402

from bzzz.exec import guardian  # noqa: E402
from bzzz.exec.guardian import MAX_COMMAND, Verdict, check, check_async  # noqa: E402
from guardian_cases import CI_COMMANDS, HOSTILE, TRICKS, WORKSPACE  # noqa: E402

TOKENS = ["rm", "-rf", "/", "ls", ";", "&&", "||", "|", "&", "sh", "-c", "curl", "x", "'", '"',
          "$(", ")", "`", ">", ">>", "<", "<<", "EOF", "/etc/x", "sudo", "\n", "~", "*", "{",
          "}", "(", "((", "))", "[[", "]]", "$", "${", "x=", "if", "then", "fi", "for", "in",
          "do", "done", "while", "case", "esac", ";;", "eval", "env", "find", "-exec", "xargs",
          "\\", "<(", "$((", "1", "!", "#", "=", "cd", "..", "make", "pytest", "echo", "a.txt"]
META = "$(){}[]|&;<>\"'`\\ \n\tabcxyz019-_./*?~!#="


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "guardian", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def random_inputs(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = int(math.exp(rng.uniform(0, math.log(MAX_COMMAND))))
        kind = rng.randrange(4)
        if kind == 0:
            s = " ".join(rng.choice(TOKENS) for _ in range(length // 3 + 1))
        elif kind == 1:
            s = "".join(rng.choice(META) for _ in range(length))
        elif kind == 2:
            s = "".join(rng.choice(string.printable) for _ in range(length))
        else:
            s = "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(length))
        out.append(s[:MAX_COMMAND])
    return out


def timed(command: str) -> float:
    start = time.perf_counter()
    check(command, WORKSPACE)
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def async_deadline() -> float:
    release = threading.Event()
    real = guardian.check

    def stuck(command, workspace, policy=None, places=None):
        release.wait(5)
        return Verdict(True)

    guardian.check = stuck
    try:
        start = time.perf_counter()
        verdict = await check_async("make", WORKSPACE, deadline=0.05)
        elapsed = time.perf_counter() - start
        assert not verdict.allowed
    finally:
        guardian.check = real
        release.set()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_random = 300 if args.quick else 3000
    repeats = 2 if args.quick else 3

    tricks = [c for cases in TRICKS.values() for c in cases]
    probes = CI_COMMANDS + tricks
    randoms = random_inputs(n_random, seed=7)
    check("ls", WORKSPACE)  # load the grammar once

    # one time per input: the best of `repeats` runs (the Guardian's cost, not the machine's)
    times = {}
    for name, c in [(f"probe {i}", c) for i, c in enumerate(probes)] + \
            [(f"random {i} ({len(c)} chars)", c) for i, c in enumerate(randoms)] + \
            [(f"hostile: {k}", c) for k, c in HOSTILE.items()]:
        times[name] = min(timed(c) for _ in range(repeats if len(c) > 64 else 1))
    typical = [t for k, t in times.items() if not k.startswith("hostile")]
    p50, p99 = statistics.median(typical), percentile(typical, 0.99)
    params = {"inputs": len(typical), "probe_inputs": len(probes), "random_inputs": len(randoms),
              "max_len": MAX_COMMAND, "runs_per_input": repeats}
    emit("check_time_p50", round(p50 * 1000, 3), "ms", "<= 1", p50 <= 0.001, **params)
    emit("check_time_p99", round(p99 * 1000, 3), "ms", "<= 5", p99 <= 0.005, **params)

    worst_name = max(times, key=times.get)
    worst = times[worst_name]
    emit("worst_input_time", round(worst * 1000, 3), "ms", "<= 50", worst <= 0.05,
         input=worst_name, hostile_inputs=len(HOSTILE), runs=f"best of {repeats}")

    refused = [c for c in CI_COMMANDS if not check(c, WORKSPACE).allowed]
    emit("ci_refused", len(refused), "commands", "<= 2", len(refused) <= 2,
         of=len(CI_COMMANDS), refused=refused)

    caught = {cat: sum(not check(c, WORKSPACE).allowed for c in cases)
              for cat, cases in TRICKS.items()}
    missed = [c for c in tricks if check(c, WORKSPACE).allowed]
    emit("tricks_caught", sum(caught.values()), "tricks", "reported", True, of=len(tricks),
         by_category={cat: f"{caught[cat]}/{len(cases)}" for cat, cases in TRICKS.items()},
         missed=missed)

    hostile = sum(not check(c, WORKSPACE).allowed for c in HOSTILE.values())
    emit("hostile_refused", hostile, "inputs", "reported", True, of=len(HOSTILE))

    elapsed = trio.run(async_deadline)
    emit("check_async_deadline", round(elapsed * 1000, 1), "ms", "<= 100 (deadline 50)",
         elapsed <= 0.1, deadline_ms=50)


if __name__ == "__main__":
    main()
