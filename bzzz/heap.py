"""Keeping a long-running daemon's heap from creeping up (glibc's allocator).

Two habits of glibc read as RSS growth in a daemon that runs for weeks:

- It keeps freed memory for reuse; after bursts of messages (gossip, log replication, HTTP
  bodies) a Python daemon can sit on tens of MB it no longer needs. ``malloc_trim(0)``
  returns it from every arena; it costs a few ms, so the agent and the monitor call it every
  ``interval`` seconds.
- Its mmap threshold is dynamic: once a large block (an HTTP response, a range of log
  blocks) has been freed, blocks up to that size come from the heap instead of their own
  mapping, and a heap that took a few such blocks between small long-lived objects cannot
  shrink. A fixed threshold (``MMAP_THRESHOLD``) keeps large blocks in mappings that are
  returned whole when freed.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import trio

INTERVAL = 30.0
MMAP_THRESHOLD = 128 * 1024  # glibc's own initial value, kept from moving up
_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, from glibc's malloc.h


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None elsewhere (musl, macOS)."""
    trim: Callable[[int], int] | None = getattr(_libc(), "malloc_trim", None)
    return trim


def fix_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Blocks of ``size`` bytes and more get their own mapping, always (False without
    glibc)."""
    mallopt = getattr(_libc(), "mallopt", None)
    return bool(mallopt and mallopt(_M_MMAP_THRESHOLD, size))


async def trim_every(interval: float = INTERVAL) -> None:
    """Fix the mmap threshold, then trim the heap every ``interval`` seconds until
    cancelled (returns at once without glibc)."""
    trim = malloc_trim()
    if trim is None:
        return
    fix_mmap_threshold()
    while True:
        await trio.sleep(interval)
        trim(0)
