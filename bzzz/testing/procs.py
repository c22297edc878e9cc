"""Finding and waiting for processes by what they run (tests of sandboxes and executors).

A sandboxed task's pids are its own namespace's, so tests find its processes on the host by
a unique argument instead: ``sleep 314159`` with a number no other process uses.
"""

from __future__ import annotations

import os
import random

from .wait import WaitTimeout, wait_until


def unique_seconds() -> str:
    """A ``sleep`` duration (in seconds, 3-4 days) to recognise a task's process by."""
    return str(random.randint(300_000, 399_999))


def with_arg(arg: str) -> list[int]:
    """Pids of live (not zombie) processes with ``arg`` as one of their arguments."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
            with open(f"/proc/{name}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if arg.encode() in args[1:] and state != "Z":
            found.append(int(name))
    return found


async def gone(arg: str, seconds: float = 5.0) -> bool:
    """Whether every process with ``arg`` is gone within ``seconds``."""
    try:
        return await wait_until(lambda: not with_arg(arg), seconds)
    except WaitTimeout:
        return False


def kill_all(arg: str) -> None:
    for pid in with_arg(arg):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
