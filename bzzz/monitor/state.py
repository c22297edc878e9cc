"""What a task's state is, from the decisions in the agents' logs and GitHub's labels (a core,
no I/O).

Each source gives a (state, time) observation; the newest wins, a log's over GitHub's on a
tie (a decision is usually what made GitHub change). Decisions that say nothing about the
task's state (a lost contention, a renewal) leave it as it is.
"""

from __future__ import annotations

from typing import Any

from ..kinds import HOLDING as HOLDING_KINDS
from ..kinds import Decision

STATES = ("waiting", "claimed", "running", "needs_input", "needs_approval", "review",
          "done", "failed")
ALL_STATES = STATES + ("cancelled",)

# GitHub state labels (bzzz/claim/task.py STATE_LABELS) -> monitor state
LABEL_STATES = {"bzzz:claimed": "claimed", "bzzz:done": "done", "bzzz:failed": "failed",
                "bzzz:needs-input": "needs_input", "bzzz:needs-approval": "needs_approval",
                "bzzz:review": "review"}

_DIRECT: dict[str, str] = {
    Decision.CLAIMED: "claimed", Decision.TAKEN_OVER: "claimed", Decision.HELP_ADOPTED: "claimed",
    Decision.RUNNING: "running", Decision.RENEWED: "running", Decision.LLM_ANSWER: "running",
    Decision.NEEDS_INPUT: "needs_input", Decision.ASKED: "needs_input",
    Decision.AWAITING_APPROVAL: "needs_approval", Decision.APPROVED: "waiting",
    Decision.PULL_REQUEST: "review",
    Decision.CANCELLED: "cancelled", Decision.PULL_CLOSED: "cancelled",
    Decision.MERGED: "done",
    Decision.HELP_HANDED_OVER: "waiting", Decision.ATTEMPT_FAILED: "waiting", Decision.ATTEMPT_CRASHED: "waiting",
    Decision.CHECKOUT_FAILED: "failed", Decision.INPUT_TIMED_OUT: "failed", Decision.HELP_EXHAUSTED: "failed",
    Decision.GUARDIAN_REFUSED: "failed",
}
# decisions that put their task in some state (decision_state is not None for them)
STATE_KINDS = frozenset(_DIRECT) | {Decision.REPORTED}
# decisions that name the agent now holding the task
HOLDING = HOLDING_KINDS


def decision_state(entry: dict[str, Any], had_pr: bool) -> str | None:
    """The state a decision puts its task in, or None when it says nothing about it.
    ``had_pr``: a pull request was opened in this round (a successful report then means
    "in review", not "done")."""
    kind = entry.get("type")
    if kind == Decision.REPORTED:
        status = entry.get("status")
        if status == "succeeded":
            return "review" if had_pr else "done"
        if status in ("failed", "timeout", "refused", "error"):
            return "failed"
        return None
    return _DIRECT.get(kind) if isinstance(kind, str) else None


def label_state(labels: list[str], open_: bool) -> str:
    """The state GitHub shows: a state label, else waiting while open (cancelled once closed,
    done when closed as completed with the done label)."""
    for name in labels:
        state = LABEL_STATES.get(name)
        if state is not None and state != "claimed":
            return state
    if not open_:
        return "cancelled"
    return "claimed" if "bzzz:claimed" in labels else "waiting"


SETTLED = ("done", "failed", "cancelled")  # GitHub's final word on a task


def overruled(state: str, ts: float, kind: str, github: tuple[str, float] | None) -> bool:
    """A decision's state that GitHub contradicts: GitHub shows the task settled (done,
    failed, closed) and the decision, dated after that observation, says otherwise. A new
    claim (the task retried) is not overruled; an older decision is history, not a claim
    on the state (``newer`` keeps it from replacing a later observation anyway)."""
    if github is None or github[0] not in SETTLED or state == github[0]:
        return False
    return ts > github[1] and kind not in (Decision.CLAIMED, Decision.TAKEN_OVER)


def newer(a: tuple[str, float, int], b: tuple[str, float, int]) -> bool:
    """Observation ``a`` replaces ``b``: later, or as late and from a stronger source
    (log = 1 over GitHub = 0)."""
    return (a[1], a[2]) >= (b[1], b[2])
