"""Budgets: what one task, and one repository in one day, may spend through the gateway
(a core: no I/O).

Spent are model tokens (in and out, every model), requests (model requests, proxied requests
and tunnels), bytes (both ways, everything through the gateway) and, for endpoints with a
price, an estimated cost (``price_in`` / ``price_out`` per million tokens). A limit left out
is no limit. The first limit passed is the stop: the gateway refuses what comes next with
the sentence ``over()`` gives, and the task is stopped with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Budget", "Spend"]


@dataclass(frozen=True)
class Budget:
    tokens: int | None = None
    requests: int | None = None
    bytes: int | None = None
    cost: float | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in asdict(self).values())


@dataclass
class Spend:
    tokens: int = 0
    requests: int = 0
    bytes: int = 0
    cost: float = 0.0

    def add(self, *, tokens: int = 0, requests: int = 0, bytes_: int = 0,
            cost: float = 0.0) -> None:
        self.tokens += tokens
        self.requests += requests
        self.bytes += bytes_
        self.cost += cost

    def over(self, budget: Budget, what: str) -> str | None:
        """The first limit of ``budget`` this spend is past, as a sentence; None within."""
        checks: list[tuple[str, float, float | int | None, str]] = [
            ("model tokens", self.tokens, budget.tokens, "{:,.0f}"),
            ("requests", self.requests, budget.requests, "{:,.0f}"),
            ("bytes", self.bytes, budget.bytes, "{:,.0f}"),
            ("estimated cost (USD)", self.cost, budget.cost, "{:,.4f}")]
        for name, used, limit, fmt in checks:
            if limit is not None and used > limit:
                return (f"{what} budget for {name} spent: {fmt.format(used)} used of "
                        f"{fmt.format(limit)}")
        return None

    def doc(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "requests": self.requests, "bytes": self.bytes,
                "cost": round(self.cost, 6)}
