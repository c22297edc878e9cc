"""GitHub's rate limits and devhub's fault injection (cores: no I/O, time passed in)."""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import dataclass, field

HOURLY_LIMIT = 5000
ANONYMOUS_LIMIT = 60
WINDOW = 3600


@dataclass
class Budget:
    limit: int
    used: int = 0
    reset: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


class RateLimits:
    """Per-token hourly budgets and a per-token secondary limit on content creation."""

    def __init__(self, hourly: int = HOURLY_LIMIT, anonymous: int = ANONYMOUS_LIMIT,
                 secondary_per_minute: int | None = None) -> None:
        self.hourly = hourly
        self.anonymous = anonymous
        self.secondary_per_minute = secondary_per_minute
        self._budgets: dict[str, Budget] = {}
        self._writes: dict[str, deque[float]] = {}
        self._forced_secondary: dict[str, int] = {}  # key -> remaining forced refusals

    def budget(self, key: str, authenticated: bool, now: float) -> Budget:
        b = self._budgets.get(key)
        limit = self.hourly if authenticated else self.anonymous
        if b is None or now >= b.reset:
            b = self._budgets[key] = Budget(limit, 0, int(now) + WINDOW)
        b.limit = limit
        return b

    def spend(self, key: str, authenticated: bool, now: float) -> tuple[bool, Budget]:
        """Spend one request; False (and nothing spent) when the budget is exhausted."""
        b = self.budget(key, authenticated, now)
        if b.remaining <= 0:
            return False, b
        b.used += 1
        return True, b

    def refund(self, key: str, authenticated: bool, now: float) -> Budget:
        """A 304 to a conditional request does not count (GitHub's rule)."""
        b = self.budget(key, authenticated, now)
        b.used = max(0, b.used - 1)
        return b

    def exhaust(self, key: str, authenticated: bool, now: float) -> None:
        b = self.budget(key, authenticated, now)
        b.used = b.limit

    def force_secondary(self, key: str, count: int) -> None:
        self._forced_secondary[key] = count

    def secondary(self, key: str, now: float) -> int | None:
        """For a content-creating request: None if allowed, else seconds to retry after."""
        forced = self._forced_secondary.get(key, 0) or self._forced_secondary.get("*", 0)
        if forced > 0:
            which = key if self._forced_secondary.get(key, 0) else "*"
            self._forced_secondary[which] = forced - 1
            return 60
        if self.secondary_per_minute is None:
            return None
        q = self._writes.setdefault(key, deque())
        while q and now - q[0] >= 60:
            q.popleft()
        if len(q) >= self.secondary_per_minute:
            return max(1, int(60 - (now - q[0])) + 1)
        q.append(now)
        return None


@dataclass
class Fault:
    pattern: str  # regex matched against "METHOD /path"
    latency_ms: tuple[float, float] = (0.0, 0.0)
    error_rate: float = 0.0
    error_status: int = 502
    secondary_burst: int = 0  # the next N matching requests get a secondary-limit 403
    compiled: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.compiled = re.compile(self.pattern)


class Faults:
    def __init__(self, rng: random.Random | None = None) -> None:
        self.rules: list[Fault] = []
        self.rng = rng or random.Random()

    def add(self, fault: Fault) -> None:
        self.rules.append(fault)

    def clear(self) -> None:
        self.rules.clear()

    def decide(self, method: str, path: str) -> tuple[float, int | None, bool]:
        """Latency to add (s), an error status to answer with (or None), and whether to
        answer with a secondary-limit refusal."""
        key = f"{method} {path}"
        delay, status, secondary = 0.0, None, False
        for rule in self.rules:
            if rule.compiled.search(key):
                lo, hi = rule.latency_ms
                delay += self.rng.uniform(lo, hi) / 1000 if hi > 0 else 0.0
                if rule.secondary_burst > 0 and not secondary:
                    rule.secondary_burst -= 1
                    secondary = True
                if status is None and rule.error_rate > 0 and self.rng.random() < rule.error_rate:
                    status = rule.error_status
        return delay, status, secondary
