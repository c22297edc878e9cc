"""What the Guardian answers (``Verdict``) and what it is asked to enforce (``Policy``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .budgets import MAX_COMMAND, TIME_BUDGET


@dataclass
class Verdict:
    allowed: bool
    reasons: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was run but not seen through

    def explain(self) -> str:
        if self.allowed:
            if self.notes:
                return "allowed (not seen through: " + "; ".join(dict.fromkeys(self.notes)) + ")"
            return "allowed"
        return "refused: " + "; ".join(dict.fromkeys(self.reasons))


@dataclass
class Policy:
    """``allow``: None for deny-list mode, else the programs that may run."""

    allow: frozenset[str] | None = None
    max_length: int = MAX_COMMAND
    time_budget: float = TIME_BUDGET

    @classmethod
    def allow_list(cls, programs: list[str]) -> "Policy":
        return cls(allow=frozenset(programs))
