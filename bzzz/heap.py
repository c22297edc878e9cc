"""Handing freed heap back to the operating system, for the long-running daemons.

glibc keeps freed memory for reuse; after bursts of messages (gossip, log replication, SQLite
writes in worker threads, each with its own arena) a Python daemon can sit on tens of MB it
no longer needs, which reads as RSS growth. ``malloc_trim(0)`` returns it from every arena; it
costs a few ms, so the agent and the monitor call it every ``interval`` seconds.
"""

from __future__ import annotations

import ctypes

import trio

INTERVAL = 30.0


def malloc_trim():
    """glibc's malloc_trim, or None elsewhere (musl, macOS)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


async def trim_every(interval: float = INTERVAL) -> None:
    """Trim the heap every ``interval`` seconds, until cancelled (returns at once without
    glibc)."""
    trim = malloc_trim()
    if trim is None:
        return
    while True:
        await trio.sleep(interval)
        trim(0)
