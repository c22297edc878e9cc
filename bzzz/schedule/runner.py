"""The scheduler: one trio task per schedule that files each slot's issue, mesh-wide once.

Every agent carrying a schedule runs this; at each slot they all try, and the slot's ref
(bzzz/schedule/store.py) lets one win. The winner files the issue and records its number on
the ref; the others log ``schedule_lost``. A winner that dies between the ref and the issue
is repaired by the next agent that looks after the grace (``schedule_repaired``): it takes
the ref over (one winner again), looks for the issue by its marker and files it only when
it is not there. Decisions go to the agent's log: ``schedule_fired``, ``schedule_lost``,
``schedule_waiting``, ``schedule_repaired``, ``schedule_skipped``, ``schedule_error``.

Time: ``clock`` is the wall clock (injected: tests drive it from trio's MockClock); sleeps
are trio sleeps of the wall-clock difference, and each wake-up recomputes the due slot from
the cron and ``clock()``, so early or late wake-ups are harmless.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import trio

from ..kinds import Decision
from ..decisions import DecisionLog
from ..github.client import GitHubError
from .core import (DEFAULT_GRACE, MARKER_KIND, Action, Cron, Record, State, due_slot,
                   labels_for, on_record, parse_key, render_body, render_title, slot_key)
from .store import SlotStore

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from ..config import Config, ScheduleConfig

log = logging.getLogger("bzzz.schedule")

KEEP = 5  # slot refs kept per schedule (older ones are deleted by whoever files a slot)


@dataclass(frozen=True)
class Schedule:
    """A validated schedule (from bzzz.config.ScheduleConfig)."""
    name: str
    cron: Cron
    repo: str
    title: str
    body: str | None = None
    command: str | None = None
    labels: tuple[str, ...] = ()
    priority: str = "normal"

    @classmethod
    def from_config(cls, c: ScheduleConfig) -> "Schedule":
        return cls(c.name, Cron(c.cron, c.timezone), c.repo, c.title, c.body, c.command,
                   tuple(c.labels), c.priority)


@dataclass
class _Progress:
    handled: datetime | None = None  # the last slot settled (filed by anyone)
    skipped: datetime | None = None  # the last slot a skip was logged for
    recheck: float | None = None  # wall time to look again at a slot someone else claimed


@dataclass
class Outcome:
    action: Action
    recheck: float | None = None


@dataclass
class Scheduler:
    schedules: Sequence[Schedule]
    stores: Mapping[str, SlotStore]  # repo -> store
    decisions: DecisionLog
    node: str
    clock: Callable[[], float] = time.time
    grace: float = DEFAULT_GRACE
    jitter: float = 2.0  # seconds: agents wake spread over this much after a slot
    keep: int = KEEP
    started_at: float | None = None
    fired: int = 0
    lost: int = 0
    errors: int = 0
    progress: dict[str, _Progress] = field(default_factory=dict)

    def _decide(self, kind: Decision, s: Schedule, **extra: Any) -> None:
        self.decisions.append({"type": kind, "schedule": s.name, "repo": s.repo, **extra})

    def _offset(self) -> float:
        digest = hashlib.sha256(self.node.encode()).digest()
        return self.jitter * int.from_bytes(digest[:4], "big") / 2 ** 32

    def grace_for(self, s: Schedule, slot: datetime) -> float:
        """How long a claimed slot is left to its claimant: the grace, but at most a quarter
        of the schedule's period, so a dead claimant's slot is repaired before the next."""
        period = s.cron.next_after(slot.timestamp()).timestamp() - slot.timestamp()
        return min(self.grace, period / 4)

    async def run(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self.started_at is None:
            self.started_at = self.clock()
        async with trio.open_nursery() as nursery:
            for s in self.schedules:
                nursery.start_soon(self._loop, s)
            task_status.started()

    async def _loop(self, s: Schedule) -> None:
        delay, offset = 1.0, 0.0
        while True:
            try:
                wake = await self.tick(s)
                delay, offset = 1.0, self._offset()
            except GitHubError as exc:  # an outage or a refusal: log it, back off, retry
                self.errors += 1
                self._decide(Decision.SCHEDULE_ERROR, s, error=str(exc)[:300])
                log.warning("schedule: GitHub refused or is unreachable; retrying",
                            extra={"schedule": s.name, "error": str(exc), "retry_in": delay})
                wake, offset = self.clock() + delay, 0.0
                delay = min(60.0, delay * 2)
            await trio.sleep(max(0.0, wake - self.clock()) + offset)

    async def tick(self, s: Schedule) -> float:
        """Look at the due slot once; the wall time to look again."""
        prog = self.progress.setdefault(s.name, _Progress())
        store = self.stores[s.repo]
        now = self.clock()
        next_slot = s.cron.next_after(now).timestamp()
        latest = s.cron.latest(now)
        if prog.handled is not None and prog.handled >= latest and prog.recheck is None:
            return next_slot
        keys = await store.list(s.name)
        known = [k for k in (parse_key(x) for x in keys) if k is not None]
        slot, why = due_slot(s.cron, now, known, self.started_at)
        if slot is None:
            if prog.skipped != latest:
                prog.skipped = latest
                self._decide(Decision.SCHEDULE_SKIPPED, s, slot=slot_key(latest), reason=why)
            prog.handled, prog.recheck = latest, None
            return next_slot
        if prog.handled is not None and slot <= prog.handled and prog.recheck is None:
            return next_slot
        outcome = await self._settle(s, store, slot, slot_key(slot) in keys, now)
        if outcome.action is Action.WAIT:
            prog.recheck = outcome.recheck
            return min(next_slot, outcome.recheck or next_slot)
        prog.handled, prog.recheck = slot, None
        return next_slot

    async def _settle(self, s: Schedule, store: SlotStore, slot: datetime, exists: bool,
                      now: float) -> Outcome:
        key = slot_key(slot)
        grace = self.grace_for(s, slot)
        if not exists:
            sha = await store.create(s.name, key, Record(s.name, key, State.CLAIMED, self.node, now))
            if sha is not None:
                await self._file(s, store, slot, sha, now, takeover=False)
                return Outcome(Action.DONE)
        current = await store.read(s.name, key)
        if current is None:  # pruned: newer slots are filed
            return Outcome(Action.DONE)
        sha, record = current
        action = on_record(record, now, grace)
        if action is Action.DONE:
            assert record is not None  # DONE and WAIT come only from a readable record
            self.lost += 1
            self._decide(Decision.SCHEDULE_LOST, s, slot=key, holder=record.node, issue=record.issue)
            return Outcome(Action.DONE)
        if action is Action.WAIT:
            assert record is not None
            self._decide(Decision.SCHEDULE_WAITING, s, slot=key, holder=record.node)
            return Outcome(Action.WAIT, record.at + grace)
        # the claimant died between the ref and the issue (or wrote something unreadable)
        new = Record(s.name, key, State.CLAIMED, self.node, now, takeover=True)
        taken = await store.advance(s.name, key, sha, new)
        if taken is None:
            self._decide(Decision.SCHEDULE_WAITING, s, slot=key, holder="(a concurrent takeover)")
            return Outcome(Action.WAIT, now + grace)
        found = await store.find_issue((MARKER_KIND, f"{s.name}@{key}"), slot.timestamp())
        if found is not None:
            await store.advance(s.name, key, taken,
                                Record(s.name, key, State.FILED, self.node, self.clock(), found))
            self._decide(Decision.SCHEDULE_REPAIRED, s, slot=key, issue=found, filed=False,
                         holder=record.node if record else None)
            return Outcome(Action.DONE)
        await self._file(s, store, slot, taken, now, takeover=True,
                         holder=record.node if record else None)
        return Outcome(Action.DONE)

    async def _file(self, s: Schedule, store: SlotStore, slot: datetime, sha: str,
                    claimed_at: float, *, takeover: bool, holder: str | None = None) -> None:
        key = slot_key(slot)
        if self.clock() - claimed_at > self.grace_for(s, slot) / 2:
            # slow so far: make sure nobody took the slot over before filing
            current = await store.read(s.name, key)
            if current is None or current[0] != sha:
                self._decide(Decision.SCHEDULE_LOST, s, slot=key, holder="(taken over)", issue=None)
                return
        title = render_title(s.title, s.cron, slot)
        body = render_body(s.name, s.cron, slot, self.node, body=s.body, command=s.command)
        number = await store.file_issue(title, body, labels_for(s.labels, s.priority),
                                        (MARKER_KIND, f"{s.name}@{key}"), slot.timestamp())
        recorded = await store.advance(s.name, key, sha, Record(
            s.name, key, State.FILED, self.node, self.clock(), number))
        self.fired += 1
        self._decide(Decision.SCHEDULE_REPAIRED if takeover else Decision.SCHEDULE_FIRED, s, slot=key,
                     local=s.cron.local(slot), issue=number, recorded=recorded is not None,
                     **({"filed": True, "holder": holder} if takeover else {}))
        log.info("schedule fired", extra={"schedule": s.name, "slot": key, "repo": s.repo,
                                          "issue": number})
        await self._prune(s, store, slot)

    async def _prune(self, s: Schedule, store: SlotStore, slot: datetime) -> None:
        keys = sorted(k for k in await store.list(s.name) if parse_key(k) is not None)
        for k in keys[:-self.keep] if self.keep > 0 else []:
            if k < slot_key(slot):
                await store.delete(s.name, k)


async def run_schedules(config: Config, token: str | None, decisions: DecisionLog,
                        task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """The agent's entry point: a GitHub client of its own, a store per repository."""
    from ..github.client import GitHubClient
    from .store import GitHubSlotStore

    schedules = [Schedule.from_config(c) for c in config.schedules]
    gh = GitHubClient(config.github.url, token, write_interval=config.github.write_interval,
                      write_burst=config.github.write_burst)
    stores = {s.repo: GitHubSlotStore(gh, s.repo) for s in schedules}
    scheduler = Scheduler(schedules, stores, decisions, config.node_id)
    log.info("schedules", extra={"schedules": ",".join(f"{s.name}={s.cron.expr}"
                                                       for s in schedules)})
    try:
        await scheduler.run(task_status)
    finally:
        with trio.CancelScope(shield=True):
            await gh.aclose()
