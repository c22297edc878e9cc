"""The claim locks behind one protocol: what the service asks of a lock, and what a lock
can do besides, said by capability flags instead of its class.

Two implementations: the git-ref lock (``gitlock.ClaimLock``, the default) and the weaker
assignment lock (``assignlock.AssignLock``, for tokens without contents write). They differ
in what they can do, and the service asks:

- ``supports_handoff``: the claim can be handed to a peer and adopted by it (``handoff``,
  ``adopt``, ``record_help``: the help requests a task made travel in its claim).
- ``names_holder``: acquiring already tells the issue who holds it (the lock assigns its
  login and writes its own claim comment), so the service neither assigns nor comments.

``command_lock()`` gives what decides which agent does a comment command's once-only part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeGuard

from ..github.client import GitHubClient
from .assignlock import AssignLock
from .gitlock import ClaimLock, Held, Lost
from .intake import CommandLock, EveryoneActs


class TaskLock(Protocol):
    supports_handoff: bool
    names_holder: bool

    async def acquire(self, number: int, probe_first: bool = False) -> Held | Lost: ...

    async def renew(self, held: Held) -> Held | Lost: ...

    async def release(self, held: Held) -> bool: ...

    def command_lock(self) -> CommandLock | EveryoneActs: ...


class HandoffLock(TaskLock, Protocol):
    """A lock whose ``supports_handoff`` is true."""

    async def handoff(self, held: Held, node: str, peer: str, login: str,
                      help_entry: str) -> Held | Lost: ...

    async def adopt(self, number: int, sha: str) -> Held | Lost: ...

    async def record_help(self, held: Held, entry: str) -> Held | Lost: ...


def can_hand_off(lock: TaskLock) -> TypeGuard[HandoffLock]:
    """Whether ``lock`` is a :class:`HandoffLock` (its ``supports_handoff`` says so)."""
    return lock.supports_handoff


def make_lock(mode: str, gh: GitHubClient, repo: str, node: str, peer: str, login: str, *,
              lease: float, grace: float, settle: float,
              clock: Callable[[], float]) -> TaskLock:
    """The lock of ``claim_mode``: "assign" (assignlock.py), else the git-ref lock."""
    if mode == "assign":
        return AssignLock(gh, repo, node, peer, login, lease=lease, grace=grace,
                          settle=settle, clock=clock)
    return ClaimLock(gh, repo, node, peer, login, lease=lease, grace=grace, clock=clock)
