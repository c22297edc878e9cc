"""hyperlog benchmarks (issue: hyperlog). One JSON object per line.

  appends_single     durable appends/s, one 100-byte block per append (one write + one fsync
                     each: acknowledged means on disk)
  appends_batch_1000 appends/s in batches of 1,000 (one fsync per batch)

Each is compared with npm hypercore@11 doing the same in the same run
(bench/hypercore_compare.js; Hypercore 11 on hypercore-storage does not fsync per append).
Run as `python bench/hyperlog.py [--quick]`.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bzzz.hyperlog.store import Hyperlog  # noqa: E402

HYPERCORE_DURABILITY = "no fsync per append (hypercore-storage on RocksDB, default write options)"
OURS_DURABILITY = "fsync of the log file before each append returns"


def emit(metric, value, unit, target, ok, **params) -> None:
    print(json.dumps({"bench": "hyperlog", "metric": metric, "value": value, "unit": unit,
                      "target": target, "ok": ok, "params": params}), flush=True)


def hypercore(n: int, batch: int) -> float | None:
    node = shutil.which("node")
    if node is None or not (ROOT / "tests/js/node_modules/hypercore").is_dir():
        if os.environ.get("CI"):
            raise SystemExit("bench/hyperlog.py: node and tests/js packages are required under CI")
        return None
    r = subprocess.run([node, str(ROOT / "bench/hypercore_compare.js"), "appends", str(n),
                        str(batch)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"hypercore_compare.js failed: {r.stderr.strip()}")
    return json.loads(r.stdout)["per_second"]


def ours(n: int, batch: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bzzz-hl-bench-") as d:
        log = Hyperlog.create(d, os.urandom(32))
        block = b"\x01" * 100
        many = [block] * batch
        t0 = time.perf_counter()
        for _ in range(0, n, batch):
            log.append(many)
        seconds = time.perf_counter() - t0
        log.close()
    return n / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    args = ap.parse_args()
    single = 500 if args.quick else 5000
    batched = 20_000 if args.quick else 200_000
    for metric, n, batch in (("appends_single", single, 1),
                             ("appends_batch_1000", batched, 1000)):
        theirs = hypercore(n, batch)
        mine = ours(n, batch)
        emit(metric, round(mine), "appends/s", ">= hypercore in the same run",
             None if theirs is None else mine >= theirs,
             hypercore=None if theirs is None else round(theirs), blocks=n, batch=batch,
             block_bytes=100, durability=OURS_DURABILITY, hypercore_durability=HYPERCORE_DURABILITY)


if __name__ == "__main__":
    main()
