"""hyperlog benchmarks (issue: hyperlog). One JSON object per line.

  appends_single     durable appends/s, one 100-byte block per append (one write + one fsync
                     each: acknowledged means on disk)
  appends_batch_1000 appends/s in batches of 1,000 (one fsync per batch)
  replication_blocks verified blocks/s, two processes over libp2p (Noise, yamux), 100 B
  replication_mb     verified MB/s with 64 KiB blocks
  replication_rss    peak RSS of the reading process while it copies a 1,000,000-block log

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


def hypercore_replication(n: int, size: int) -> dict | None:
    node = shutil.which("node")
    if node is None or not (ROOT / "tests/js/node_modules/hypercore").is_dir():
        return None
    r = subprocess.run([node, str(ROOT / "bench/hypercore_compare.js"), "replicate", str(n),
                        str(size)], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise SystemExit(f"hypercore_compare.js failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


def make_log(path: Path, n: int, size: int) -> str:
    with Hyperlog.create(path, os.urandom(32)) as log:
        batch = max(1, min(1000, (4 << 20) // size))
        for start in range(0, n, batch):
            log.append([os.urandom(size)] * min(batch, n - start))
        return log.key.hex()


def replicate_over_libp2p(path: Path, key: str, into: Path) -> dict:
    helper = str(ROOT / "bench/_log_peer.py")
    server = subprocess.Popen([sys.executable, helper, "serve", str(path)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        addr = server.stdout.readline().strip()
        if not addr:
            raise SystemExit("bench/_log_peer.py serve did not start")
        r = subprocess.run([sys.executable, helper, "fetch", addr, key, str(into)],
                           capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise SystemExit(f"bench/_log_peer.py fetch failed: {r.stderr.strip()[-500:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(10)


def replication(quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bzzz-hl-rep-") as d:
        root = Path(d)
        n = 20_000 if quick else 200_000
        key = make_log(root / "small", n, 100)
        ours_r = replicate_over_libp2p(root / "small", key, root / "small-copy")
        theirs = hypercore_replication(n, 100)
        mine = ours_r["blocks"] / ours_r["seconds"]
        emit("replication_blocks", round(mine), "blocks/s", ">= 5 x hypercore in the same run",
             None if theirs is None else mine >= 5 * theirs["per_second"],
             hypercore=None if theirs is None else round(theirs["per_second"]),
             hypercore_setup="in-process, two cores piped", blocks=n, block_bytes=100,
             setup="two processes over libp2p on loopback (Noise, yamux), every block "
                   "verified against the signed head before it is stored")
        n = 300 if quick else 3000
        key = make_log(root / "big", n, 65536)
        ours_r = replicate_over_libp2p(root / "big", key, root / "big-copy")
        theirs = hypercore_replication(n, 65536)
        mine = ours_r["bytes"] / ours_r["seconds"] / 1e6
        emit("replication_mb", round(mine, 1), "MB/s", ">= hypercore in the same run",
             None if theirs is None else mine >= theirs["mb_per_second"],
             hypercore=None if theirs is None else round(theirs["mb_per_second"], 1),
             blocks=n, block_bytes=65536)
        n = 100_000 if quick else 1_000_000
        key = make_log(root / "huge", n, 100)
        ours_r = replicate_over_libp2p(root / "huge", key, root / "huge-copy")
        emit("replication_rss", ours_r["peak_rss_mb"], "MB", "<= 200 MB for 1,000,000 blocks",
             ours_r["peak_rss_mb"] <= 200 if n == 1_000_000 else None, blocks=n,
             seconds=round(ours_r["seconds"], 2),
             blocks_per_s=round(ours_r["blocks"] / ours_r["seconds"]))


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
    replication(args.quick)


if __name__ == "__main__":
    main()
