"""What a Bzzz log holds: one msgpack map per block.

Every entry has ``type`` (str) and ``ts`` (float, Unix seconds); the other fields depend on
the type (see docs/log.md). A string field longer than ``INLINE_MAX`` bytes is not stored
inline: the entry holds ``<field>_blob`` (the BLAKE2b-256 of the bytes, hex) and
``<field>_size``, and the bytes go to the log directory's ``blobs/`` store, named by hash, so
the signed log commits to them without carrying them.
"""

from __future__ import annotations

from ..errors import InputError
import hashlib
import os
from pathlib import Path
from typing import Any

import msgpack

from ..fsutil import write_synced

INLINE_MAX = 1024
MAX_ENTRY = 64 * 1024


class EntryError(InputError, ValueError):
    pass


class BlobStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def put(self, data: bytes) -> str:
        digest = hashlib.blake2b(data, digest_size=32).hexdigest()
        target = self.path / digest[:2] / digest
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_synced(target, data)
        return digest

    def get(self, digest: str) -> bytes | None:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            return None
        try:
            data = (self.path / digest[:2] / digest).read_bytes()
        except OSError:
            return None
        # a blob is only what its hash says: a damaged one is as good as missing
        return data if hashlib.blake2b(data, digest_size=32).hexdigest() == digest else None


def encode(entry: dict[str, Any], blobs: BlobStore | None = None) -> bytes:
    if not isinstance(entry.get("type"), str) or not entry["type"]:
        raise EntryError("an entry needs a type")
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if isinstance(value, str) and len(value.encode()) > INLINE_MAX and blobs is not None:
            data = value.encode()
            out[f"{key}_blob"] = blobs.put(data)
            out[f"{key}_size"] = len(data)
        else:
            out[key] = value
    try:
        packed: bytes = msgpack.packb(out, use_bin_type=True, default=str)
    except (TypeError, ValueError) as exc:
        raise EntryError(f"entry cannot be encoded: {exc}") from exc
    if len(packed) > MAX_ENTRY:
        raise EntryError(f"entry of {len(packed)} bytes is over {MAX_ENTRY}")
    return packed


def decode(block: bytes) -> dict[str, Any] | None:
    """The entry in a block; None when the block is not one (raw data, or damaged)."""
    try:
        value = msgpack.unpackb(block, raw=False, strict_map_key=True)
    except Exception:  # msgpack raises many types on bad input: not an entry
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    return value
