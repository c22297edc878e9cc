"""An in-memory :class:`~bzzz.schedule.store.SlotStore` with GitHub's compare-and-set
semantics, shared by many schedulers in one trio run (tests and bench/schedules.py).

Every operation yields to the scheduler (and may wait a random delay, trio time), so
concurrent schedulers interleave between any two steps, as they do against GitHub.
"""

from __future__ import annotations

import builtins
import hashlib
import random
from dataclasses import dataclass, field

import trio

from ..github.markers import find_markers
from .core import Record


@dataclass
class Issue:
    number: int
    title: str
    body: str
    labels: list[str]
    created: float


@dataclass
class MemoryHub:
    """The shared "GitHub": refs (name -> commit sha), commits (sha -> (parent, record)),
    issues. ``delay``: each operation waits up to this many seconds (trio time)."""
    delay: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    refs: dict[str, str] = field(default_factory=dict)
    commits: dict[str, tuple[str | None, Record]] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    writes: int = 0

    async def step(self) -> None:
        if self.delay > 0:
            await trio.sleep(self.rng.random() * self.delay)
        else:
            await trio.lowlevel.checkpoint()

    def commit(self, parent: str | None, record: Record) -> str:
        sha = hashlib.sha1(f"{parent}:{record.message()}:{len(self.commits)}".encode()).hexdigest()
        self.commits[sha] = (parent, record)
        self.writes += 1
        return sha


class MemorySlotStore:
    def __init__(self, hub: MemoryHub, repo: str = "o/r") -> None:
        self.hub = hub
        self.repo = repo

    def _ref(self, name: str, key: str) -> str:
        return f"{self.repo}:{name}/{key}"

    async def list(self, name: str) -> list[str]:
        await self.hub.step()
        prefix = f"{self.repo}:{name}/"
        return [r[len(prefix):] for r in self.hub.refs if r.startswith(prefix)]

    async def read(self, name: str, key: str) -> tuple[str, Record | None] | None:
        await self.hub.step()
        sha = self.hub.refs.get(self._ref(name, key))
        if sha is None:
            return None
        await self.hub.step()
        return sha, self.hub.commits[sha][1]

    async def create(self, name: str, key: str, record: Record) -> str | None:
        await self.hub.step()
        sha = self.hub.commit(None, record)
        await self.hub.step()
        ref = self._ref(name, key)
        self.hub.writes += 1
        if ref in self.hub.refs:
            return None
        self.hub.refs[ref] = sha
        return sha

    async def advance(self, name: str, key: str, parent: str, record: Record) -> str | None:
        await self.hub.step()
        sha = self.hub.commit(parent, record)
        await self.hub.step()
        ref = self._ref(name, key)
        self.hub.writes += 1
        if self.hub.refs.get(ref) != parent:
            return None  # not a fast-forward of what the ref holds now
        self.hub.refs[ref] = sha
        return sha

    async def delete(self, name: str, key: str) -> None:
        await self.hub.step()
        self.hub.writes += 1
        self.hub.refs.pop(self._ref(name, key), None)

    async def find_issue(self, marker_key: tuple[str, str], since: float) -> int | None:
        await self.hub.step()
        for issue in reversed(self.hub.issues):
            if marker_key in find_markers(issue.body):
                return issue.number
        return None

    async def file_issue(self, title: str, body: str, labels: builtins.list[str],
                         marker_key: tuple[str, str], since: float) -> int:
        await self.hub.step()
        self.hub.writes += 1
        issue = Issue(len(self.hub.issues) + 1, title, body, list(labels), since)
        self.hub.issues.append(issue)
        return issue.number

    def issues_for(self, name: str) -> dict[str, builtins.list[int]]:
        """Slot key -> the issues carrying its marker (one each, when all is well)."""
        out: dict[str, list[int]] = {}
        for issue in self.hub.issues:
            for kind, key in find_markers(issue.body):
                if kind == "schedule" and key.startswith(name + "@"):
                    out.setdefault(key.split("@", 1)[1], []).append(issue.number)
        return out
