"""Which peers to dial and when (a core, no I/O): candidates from every source, with backoff.

Sources: mDNS sightings, bootstrap addresses, DHT lookups, capability announcements. A peer
that cannot be dialled is retried after an exponentially growing, jittered delay (1 s up to
30 s); a peer that was connected and went away is retried the same way, so a peer that comes
back is found again without waiting for discovery.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

BASE_DELAY = 0.5
MAX_DELAY = 30.0
FORGET_AFTER = 600.0  # stop retrying a peer we have not reached or heard of for this long
ALONE_RETRY = 2.0  # seconds between dials of a bootstrap peer while connected to nobody


@dataclass
class Candidate:
    peer_id: str
    addrs: tuple[str, ...] = ()
    failures: int = 0
    next_try: float = 0.0
    last_heard: float = 0.0
    sources: set[str] = field(default_factory=set)
    dialing: bool = False
    failed_at: float = 0.0


class DialPlan:
    def __init__(self, self_id: str, rng: random.Random | None = None) -> None:
        self.self_id = self_id
        self._rng = rng or random.Random()
        self._peers: dict[str, Candidate] = {}
        self._pinned: set[str] = set()  # bootstrap peers: never forgotten

    def __len__(self) -> int:
        return len(self._peers)

    def offer(self, peer_id: str, addrs: tuple[str, ...] | list[str], source: str, now: float,
              pinned: bool = False) -> bool:
        """Record a sighting; True if it makes the peer due for a dial now."""
        if peer_id == self.self_id or not addrs:
            return False
        c = self._peers.get(peer_id)
        if c is None:
            c = self._peers[peer_id] = Candidate(peer_id, tuple(addrs), next_try=now)
        elif tuple(addrs) != c.addrs:
            # New addresses (a restart on another port, say): try them at once.
            c.addrs = tuple(addrs)
            c.failures = 0
            c.next_try = now
        c.last_heard = now
        c.sources.add(source)
        if pinned:
            self._pinned.add(peer_id)
        return c.next_try <= now

    def addrs(self, peer_id: str) -> tuple[str, ...] | None:
        """The addresses we would dial the peer at (None: never heard of it)."""
        c = self._peers.get(peer_id)
        return c.addrs if c is not None else None

    def due(self, now: float, connected: set[str]) -> list[Candidate]:
        """Peers to dial now: not connected and past their backoff."""
        out = []
        for pid, c in list(self._peers.items()):
            if pid in connected:
                c.failures = 0
                c.last_heard = now
                continue
            if pid not in self._pinned and now - c.last_heard > FORGET_AFTER:
                del self._peers[pid]
                continue
            if c.dialing:
                continue
            due_at = c.next_try
            if not connected and pid in self._pinned:
                due_at = min(due_at, c.failed_at + ALONE_RETRY)
            if due_at <= now:
                out.append(c)
        return out

    def started(self, peer_id: str, now: float) -> None:
        """A dial began: do not hand it out again until it ends."""
        c = self._peers.get(peer_id)
        if c is not None:
            c.dialing = True

    def succeeded(self, peer_id: str, now: float) -> None:
        c = self._peers.get(peer_id)
        if c is not None:
            c.dialing = False
            c.failures = 0
            c.next_try = now + BASE_DELAY

    def failed(self, peer_id: str, now: float) -> float:
        c = self._peers.get(peer_id)
        if c is None:
            return 0.0
        c.dialing = False
        c.failed_at = now
        c.failures += 1
        delay: float = min(MAX_DELAY, BASE_DELAY * 2 ** c.failures)
        delay *= 0.5 + self._rng.random()  # jitter: 50 % to 150 %
        c.next_try = now + delay
        return delay

    def disconnected(self, peer_id: str, now: float) -> None:
        """A live connection dropped: retry soon, then back off."""
        c = self._peers.get(peer_id)
        if c is not None:
            c.next_try = min(c.next_try, now + BASE_DELAY)
