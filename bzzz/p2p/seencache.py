"""A seen-message cache with no per-entry Python objects (a core, no I/O; time passed in).

py-libp2p's ``LastSeenCache`` keeps one small bytes object per message id for 120 s (and a
sweeper thread per cache). Those long-lived ids are allocated between the kilobytes of
short-lived objects each message creates, so every pymalloc arena keeps a few live ids and
can never be returned: a daemon receiving 100,000 messages grew by ~300 MB until the ids
expired. Here ids are reduced to 64-bit fingerprints stored in preallocated ``array('Q')``
open-addressing tables, in two generations that rotate every ``ttl`` seconds, so an id is
remembered for between ``ttl`` and ``2 * ttl`` seconds (``has`` refreshes it, as
``LastSeenCache`` does).

Fingerprints use Python's per-process randomised ``hash`` of the id (SipHash), so a peer
cannot aim collisions at us; a false "seen" needs a 64-bit collision.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable

_EMPTY = 0
_MASK64 = (1 << 64) - 1
_MAX_LOAD = 0.7


def _fingerprint(key: bytes) -> int:
    fp = hash(key) & _MASK64
    return fp or 1  # 0 marks an empty slot


class _Table:
    __slots__ = ("slots", "mask", "count")

    def __init__(self, capacity: int) -> None:
        self.slots = array("Q", bytes(8 * capacity))
        self.mask = capacity - 1
        self.count = 0

    def find(self, fp: int) -> bool:
        slots, mask = self.slots, self.mask
        i = fp & mask
        while True:
            v = slots[i]
            if v == fp:
                return True
            if v == _EMPTY:
                return False
            i = (i + 1) & mask

    def insert(self, fp: int) -> bool:
        """Insert; False if it was already there. The caller keeps the load below _MAX_LOAD."""
        slots, mask = self.slots, self.mask
        i = fp & mask
        while True:
            v = slots[i]
            if v == fp:
                return False
            if v == _EMPTY:
                slots[i] = fp
                self.count += 1
                return True
            i = (i + 1) & mask

    def grown(self) -> "_Table":
        bigger = _Table(2 * (self.mask + 1))
        for v in self.slots:
            if v != _EMPTY:
                bigger.insert(v)
        return bigger


class SeenCache:
    """Drop-in for py-libp2p's LastSeenCache (``add``, ``has``, ``length``, ``stop``)."""

    def __init__(self, ttl: float, sweep_interval: float = 0, *, initial_capacity: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if initial_capacity & (initial_capacity - 1):
            raise ValueError("initial_capacity must be a power of two")
        self.ttl = ttl
        self._clock = clock
        self._initial = initial_capacity
        self._current = _Table(initial_capacity)
        self._previous = _Table(initial_capacity)
        self._rotated_at = clock()

    def _rotate_if_due(self) -> None:
        now = self._clock()
        if now - self._rotated_at < self.ttl:
            return
        if now - self._rotated_at >= 2 * self.ttl:  # idle for two spans: forget everything
            self._previous = _Table(self._initial)
        else:
            self._previous = self._current
        # Size the new generation for the traffic the last one saw.
        capacity = self._initial
        while self._previous.count > capacity * _MAX_LOAD / 2:
            capacity *= 2
        self._current = _Table(capacity)
        self._rotated_at = now

    def _insert(self, fp: int) -> bool:
        if self._current.count + 1 > (self._current.mask + 1) * _MAX_LOAD:
            self._current = self._current.grown()
        return self._current.insert(fp)

    def add(self, key: bytes) -> bool:
        """Remember ``key``; True if it was not already remembered."""
        self._rotate_if_due()
        fp = _fingerprint(key)
        known = self._previous.find(fp)
        return self._insert(fp) and not known

    def has(self, key: bytes) -> bool:
        """Whether ``key`` was seen; seeing it again keeps it for another span."""
        self._rotate_if_due()
        fp = _fingerprint(key)
        if self._current.find(fp):
            return True
        if self._previous.find(fp):
            self._insert(fp)
            return True
        return False

    def length(self) -> int:
        return self._current.count + self._previous.count

    __len__ = length

    def memory_bytes(self) -> int:
        return 8 * (self._current.mask + 1 + self._previous.mask + 1)

    def stop(self) -> None:
        """Nothing to stop (no sweeper thread); kept for LastSeenCache compatibility."""
