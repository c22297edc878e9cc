"""The decisions a node writes to its signed log, as one enum (a core: no I/O).

Agents write them (bzzz/claim/, bzzz/help/, bzzz/schedule/), the monitor and the bridge read
them (bzzz/monitor/state.py, bzzz/monitor/jobs.py, bzzz/monitor/index.py). A ``StrEnum``: each
member is its wire name, so an entry decoded from any peer's log compares equal to it, and a
name this node does not know (a newer peer's) is still indexed and shown as it came.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Decision", "HOLDING"]


class Decision(StrEnum):
    # a node's life
    STARTED = "started"
    TASK_FILED = "task_filed"  # the monitor's new-task form
    # GitHub as the agent sees it
    RATE_LIMITED = "rate_limited"
    GITHUB_UNAVAILABLE = "github_unavailable"
    GITHUB_RECOVERED = "github_recovered"
    # trust and commands
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    COMMAND = "command"
    # claiming and holding a task
    CLAIMED = "claimed"
    TAKEN_OVER = "taken_over"
    CONTENTION_LOST = "contention_lost"
    CLAIM_ABANDONED = "claim_abandoned"
    RENEWED = "renewed"
    LEASE_LOST = "lease_lost"
    CHECKOUT_FAILED = "checkout_failed"
    RUNNING = "running"
    LLM_ANSWER = "llm_answer"
    PROGRESS = "progress"  # a long run's latest lines (an agent's steps), bounded, rate-limited
    GUARDIAN_REFUSED = "guardian_refused"
    EGRESS = "egress"  # what the task reached through the gateway, and what was refused
    SETUP = "setup"  # the repository's own setup before the executor: its steps, the cache
    SELF_CHECK = "self_check"  # the repository's own check after the executor (#23)
    NEEDS_INPUT = "needs_input"
    ASKED = "asked"
    INPUT_TIMED_OUT = "input_timed_out"
    ATTEMPT_FAILED = "attempt_failed"
    ATTEMPT_CRASHED = "attempt_crashed"
    CANCELLED = "cancelled"
    WAITING = "waiting"  # no live node can take the task: the mesh said so on the issue
    # what a task ends in
    RESULT = "result"
    PULL_REQUEST = "pull_request"
    FOLLOW_UPS = "follow_ups"
    REPORTED = "reported"
    REPORT_FAILED = "report_failed"
    REPORT_DROPPED = "report_dropped"
    MERGED = "merged"
    PULL_CLOSED = "pull_closed"
    # CI rounds on the agents' pull requests (bzzz/claim/ciround.py)
    CI_GREEN = "ci_green"
    CI_ROUND = "ci_round"
    CI_FAILED = "ci_failed"
    # help
    HELP_REQUESTED = "help_requested"
    HELP_OFFERED = "help_offered"
    HELP_FORWARDED = "help_forwarded"
    HELP_DECLINED = "help_declined"
    HELP_UNANSWERED = "help_unanswered"
    HELP_HANDED_OVER = "help_handed_over"
    HELP_HANDOFF_RECEIVED = "help_handoff_received"
    HELP_ADOPTED = "help_adopted"
    HELP_ADOPT_FAILED = "help_adopt_failed"
    HELP_EXHAUSTED = "help_exhausted"
    # schedules
    SCHEDULE_FIRED = "schedule_fired"
    SCHEDULE_REPAIRED = "schedule_repaired"
    SCHEDULE_SKIPPED = "schedule_skipped"
    SCHEDULE_WAITING = "schedule_waiting"
    SCHEDULE_LOST = "schedule_lost"
    SCHEDULE_ERROR = "schedule_error"


# decisions that say their node holds the task
HOLDING = frozenset({Decision.CLAIMED, Decision.TAKEN_OVER, Decision.HELP_ADOPTED,
                     Decision.RUNNING, Decision.RENEWED})
