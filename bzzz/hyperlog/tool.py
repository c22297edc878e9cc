"""``bzzz log ...``: look at, check, export and write logs on disk."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import IO

from ..fsutil import write_synced
from .entries import decode
from .store import Hyperlog, LogError, export, verify_dir

APPEND_BATCH = 1000


def _open(path: str) -> Hyperlog:
    return Hyperlog.open(path)


def show(path: str, as_json: bool, out: IO[str]) -> int:
    with _open(path) as log:
        head = log.head
        if as_json:
            blocks = []
            for i in range(log.length):
                data = log.get(i)
                entry = decode(data)
                blocks.append({"index": i, "entry": entry} if entry is not None
                              else {"index": i, "hex": data.hex()})
            json.dump({"key": log.key.hex(), "public_key": log.public_key.hex(),
                       "length": log.length, "fork": head.fork if head else 0,
                       "tree_hash": head.tree_hash.hex() if head else None,
                       "blocks": blocks}, out, default=str)
            out.write("\n")
            return 0
        out.write(f"key        {log.key.hex()}\nlength     {log.length}\n")
        if head is not None:
            out.write(f"tree hash  {head.tree_hash.hex()}\n")
        for i in range(log.length):
            data = log.get(i)
            entry = decode(data)
            if entry is None:
                text = data.decode("utf-8", errors="replace")
                out.write(f"{i:>7}  {text if text.isprintable() else data.hex()}\n")
                continue
            ts = entry.pop("ts", None)
            kind = entry.pop("type")
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if isinstance(
                ts, (int, float)) else "-"
            fields = " ".join(f"{k}={v}" for k, v in entry.items())
            out.write(f"{i:>7}  {when}  {kind:<18} {fields}\n")
    return 0


def verify(path: str, out: IO[str], err: IO[str]) -> int:
    report = verify_dir(path)
    if report.ok:
        out.write(f"ok: {report.length} blocks verified, key {report.key.hex()}\n")
        return 0
    err.write(f"bzzz: log verify {path}: {report.error}\n")
    return 1


def export_json(path: str, out: IO[str]) -> int:
    with _open(path) as log:
        json.dump(export(log), out)
    out.write("\n")
    return 0


def append(path: str, source: IO[bytes], out: IO[str]) -> int:
    """Each line of ``source`` becomes one block (without its newline); a new log gets its
    own key, kept in ``secret`` (mode 0600)."""
    p = Path(path)
    if not (p / "log").exists():
        p.mkdir(parents=True, exist_ok=True)
        seed = os.urandom(32)
        write_synced(p / "secret", seed, mode=0o600)
        log = Hyperlog.create(p, seed)
    else:
        log = Hyperlog.open(p, writable=True)
    with log:
        batch: list[bytes] = []
        for line in source:
            batch.append(line.rstrip(b"\n"))
            if len(batch) >= APPEND_BATCH:
                log.append(batch)
                batch = []
        if batch:
            log.append(batch)
        out.write(f"{log.length}\n")
    return 0


def main(action: str, path: str, as_json: bool = False) -> int:
    try:
        if action == "show":
            return show(path, as_json, sys.stdout)
        if action == "verify":
            return verify(path, sys.stdout, sys.stderr)
        if action == "export":
            return export_json(path, sys.stdout)
        if action == "append":
            return append(path, sys.stdin.buffer, sys.stdout)
    except (LogError, OSError) as exc:
        sys.stderr.write(f"bzzz: log {action} {path}: {exc}\n")
        return 1
    raise ValueError(action)
