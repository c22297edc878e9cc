"""Every decision an agent takes goes through one interface (ARCHITECTURE.md principle 5).

``DecisionLog.append(entry)`` takes a dict with at least ``type``; a timestamp is added. The
signed Hypercore-compatible log plugs in here; until it lands, :class:`JsonlDecisionLog`
keeps an append-only JSON-lines file in ``data_dir`` (each line flushed and fsynced).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Protocol


class DecisionLog(Protocol):
    def append(self, entry: dict[str, Any]) -> int: ...

    @property
    def length(self) -> int: ...


class MemoryDecisionLog:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def append(self, entry: dict[str, Any]) -> int:
        self.entries.append({"ts": round(time.time(), 3), **entry})
        return len(self.entries) - 1

    @property
    def length(self) -> int:
        return len(self.entries)


class JsonlDecisionLog:
    FILE = "decisions.jsonl"

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / self.FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._length = 0
        if self.path.exists():
            with open(self.path, "rb") as fh:
                data = fh.read()
            # a torn last line (crash mid-write) is cut off, never half-read
            good = data[: data.rfind(b"\n") + 1]
            if len(good) != len(data):
                with open(self.path, "r+b") as fh:
                    fh.truncate(len(good))
            self._length = good.count(b"\n")
        self._fh = open(self.path, "ab")

    def append(self, entry: dict[str, Any]) -> int:
        line = json.dumps({"ts": round(time.time(), 3), **entry}, sort_keys=True,
                          default=str).encode() + b"\n"
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._length += 1
        return self._length - 1

    @property
    def length(self) -> int:
        return self._length

    def close(self) -> None:
        self._fh.close()
