"""One attempt at a task, as a state machine: its phases, the one table of the moves between
them, and the typed values an attempt ends with.

The phases' values are the ``state`` strings of the status API's ``tasks`` (CONTRACT), so an
attempt's phase is shown as it is. ``DONE`` is the sentinel end state: every attempt ends
there (claim lost, abandoned, waiting for approval, handed over, reported, crashed), and it
is never shown (the attempt leaves the running set as it gets there). A move not in
:data:`TRANSITIONS` raises :class:`IllegalTransition`, as h11's ``_state.py`` does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Phase(enum.Enum):
    CLAIMING = "claiming"  # acquiring the lock
    CLAIMED = "claimed"  # holding it: fresh read, eligibility, trust, marking the issue
    PREPARING = "preparing"  # checkout, feedback, the task's directories
    RUNNING = "running"  # the executor runs the task
    ASKING_FOR_HELP = "asking for help"  # it failed here: the mesh may take it
    REPORTING = "reporting"  # result, question or delivery, on GitHub
    DONE = "done"  # sentinel: the attempt is over


# the one table: from each phase, where an attempt may go next
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.CLAIMING: frozenset({Phase.CLAIMED, Phase.DONE}),
    Phase.CLAIMED: frozenset({Phase.PREPARING, Phase.DONE}),
    Phase.PREPARING: frozenset({Phase.RUNNING, Phase.DONE}),
    Phase.RUNNING: frozenset({Phase.ASKING_FOR_HELP, Phase.REPORTING, Phase.DONE}),
    Phase.ASKING_FOR_HELP: frozenset({Phase.REPORTING, Phase.DONE}),
    Phase.REPORTING: frozenset({Phase.DONE}),
    Phase.DONE: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A move the table does not have: a bug in the attempt's driver."""


def next_phase(current: Phase, to: Phase) -> Phase:
    if to not in TRANSITIONS[current]:
        raise IllegalTransition(f"an attempt cannot go from {current.value!r} to {to.value!r}")
    return to


class Status(enum.StrEnum):
    """How an attempt ended, as its log entries and the ``bzzz_tasks_finished_total{status}``
    metric name it (the first five are an executor's result statuses)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    REFUSED = "refused"
    CANCELLED = "cancelled"
    ASKED = "asked"  # the task asked a person (no result yet)


HELPABLE = frozenset({Status.FAILED, Status.TIMEOUT})  # endings a peer may do better with


class Stop(enum.Enum):
    """Why a running task was stopped from outside its executor."""

    LEASE_LOST = "lease lost"
    ISSUE_CLOSED = "issue closed"
    UNLABELLED = "label removed"
    CANCELLED = "cancel command"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class StopReason:
    kind: Stop
    by: str = ""  # who, for a cancel command

    def __str__(self) -> str:  # the sentence the log entry and the comment give
        return {Stop.LEASE_LOST: "its claim was taken over (lease lost)",
                Stop.ISSUE_CLOSED: "the issue was closed",
                Stop.UNLABELLED: "the bzzz label was removed",
                Stop.CANCELLED: f"cancelled by @{self.by}",
                Stop.SHUTDOWN: "the agent is shutting down"}[self.kind]


SHUTTING_DOWN = StopReason(Stop.SHUTDOWN)
