"""The live peer table: who announced what, and when we last heard (a core, no I/O).

A peer is dropped when it departs or after ``timeout`` seconds of silence (3 announce
intervals). An announcement older than the one held (by sender timestamp, then sequence)
is ignored, so a delayed gossip copy never rolls a peer's state back; nor does one older
than the peer's goodbye bring a departed peer back (the goodbye is remembered until any
announcement sent before it would be refused as stale anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

from .envelope import MAX_AGE, MAX_SKEW, Announcement

GOODBYE_KEPT = MAX_AGE + MAX_SKEW  # seconds: after that, older announcements are stale


@dataclass
class PeerEntry:
    announcement: Announcement
    last_seen: float  # our clock


class PeerTable:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._peers: dict[str, PeerEntry] = {}
        self._departed: dict[str, tuple[float, float]] = {}  # peer -> (its goodbye ts, our now)

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, peer_id: str) -> bool:
        return peer_id in self._peers

    def get(self, peer_id: str) -> PeerEntry | None:
        return self._peers.get(peer_id)

    def update(self, a: Announcement, now: float) -> str:
        """Record an announcement; returns "new", "changed", "refreshed" or "outdated"."""
        entry = self._peers.get(a.peer_id)
        if entry is None:
            gone = self._departed.get(a.peer_id)
            if gone is not None and a.ts <= gone[0]:
                return "outdated"  # said before its goodbye, relayed late
            self._departed.pop(a.peer_id, None)
            self._peers[a.peer_id] = PeerEntry(a, now)
            return "new"
        held = entry.announcement
        if (a.ts, a.seq) < (held.ts, held.seq):
            return "outdated"
        entry.last_seen = now
        changed = (a.capabilities, a.addrs, a.load, a.node_id, a.log_key) != (
            held.capabilities, held.addrs, held.load, held.node_id, held.log_key)
        entry.announcement = a
        return "changed" if changed else "refreshed"

    def depart(self, peer_id: str, ts: float, now: float) -> bool:
        """Remove a peer that said goodbye (unless it announced again after the goodbye)."""
        entry = self._peers.get(peer_id)
        if entry is not None and entry.announcement.ts > ts:
            return False
        held = self._departed.get(peer_id)
        if held is None or held[0] < ts:
            self._departed[peer_id] = (ts, now)
        if entry is None:
            return False
        del self._peers[peer_id]
        return True

    def expire(self, now: float) -> list[str]:
        gone = [pid for pid, e in self._peers.items() if now - e.last_seen > self.timeout]
        for pid in gone:
            del self._peers[pid]
        for pid in [p for p, (_, at) in self._departed.items() if now - at > GOODBYE_KEPT]:
            del self._departed[pid]
        return gone

    def entries(self) -> list[PeerEntry]:
        return sorted(self._peers.values(), key=lambda e: e.announcement.node_id)
