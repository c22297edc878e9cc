"""Schedules, the core (no I/O, no clock read: ``now`` is passed in).

A schedule has slots, the instants its cron expression names in its time zone. A slot is
named by its UTC time (``20261202T020000Z``), so every agent computes the same name from
the cron whatever its own clock says; the slot's record on GitHub is the git ref
``refs/bzzz/schedules/<name>/<slot>`` (created once: the compare-and-set), pointing at a
commit whose message is a :class:`Record` (claimed by a node at a time, or filed as an
issue number).

Which slot is due at ``now`` (:func:`due_slot`): the latest slot at or before ``now``, so a
mesh that was down across several slots files only the latest one when it returns; none
when a newer slot already has a record (this agent's clock is behind the mesh's); none
before the schedule's first start (a schedule no agent has filed yet begins with the first
slot after its agent started, not with a slot in the past).

What to do with a slot that has a record (:func:`on_record`): filed: nothing; claimed a
short while ago: wait (the claimant is filing it); claimed longer ago than the grace: take
it over (the claimant died between the ref and the issue), then look for the issue by its
marker before filing, so a claimant that did file is never duplicated.
"""

from __future__ import annotations

from ..errors import InputError
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from ..github.markers import marker

KEY_FORMAT = "%Y%m%dT%H%M%SZ"
REF_PREFIX = "refs/bzzz/schedules"
MARKER_KIND = "schedule"
DEFAULT_GRACE = 120.0  # seconds a claimed slot is left to its claimant before a takeover
_KEY_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")


class CronError(InputError, ValueError):
    """A cron expression or time zone that cannot be used."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise CronError(f"{name!r} is not an IANA time zone") from None


class Cron:
    """A cron expression in a time zone (croniter does the arithmetic, DST included)."""

    def __init__(self, expr: str, tz: str = "UTC") -> None:
        fields = expr.split()
        if len(fields) not in (5, 6):
            raise CronError(f"{expr!r}: a cron expression has five fields "
                            "(minute hour day month weekday)")
        expr = " ".join(fields)
        if not croniter.is_valid(expr):
            raise CronError(f"{expr!r} is not a valid cron expression")
        self.expr = expr
        self.tz = zone(tz)
        self.seconds = len(fields) == 6

    def latest(self, now: float) -> datetime:
        """The latest slot at or before ``now`` (aware, UTC)."""
        start = datetime.fromtimestamp(now, self.tz) + timedelta(microseconds=1)
        slot: datetime = croniter(self.expr, start).get_prev(datetime)
        return slot.astimezone(timezone.utc)

    def next_after(self, now: float) -> datetime:
        """The first slot strictly after ``now`` (aware, UTC)."""
        start = datetime.fromtimestamp(now, self.tz)
        slot: datetime = croniter(self.expr, start).get_next(datetime)
        return slot.astimezone(timezone.utc)

    def local(self, slot: datetime) -> str:
        """The slot as its schedule's people read it, e.g. ``2026-12-02 03:00``."""
        return slot.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S" if self.seconds
                                                 else "%Y-%m-%d %H:%M")


def slot_key(slot: datetime) -> str:
    return slot.astimezone(timezone.utc).strftime(KEY_FORMAT)


def parse_key(key: str) -> datetime | None:
    if not _KEY_RE.match(key):
        return None
    try:
        return datetime.strptime(key, KEY_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def slot_ref(name: str, slot: datetime) -> str:
    return f"{REF_PREFIX}/{name}/{slot_key(slot)}"


def slot_marker(name: str, slot: datetime) -> str:
    return marker(MARKER_KIND, f"{name}@{slot_key(slot)}")


def due_slot(cron: Cron, now: float, known: Iterable[datetime],
             started_at: float | None) -> tuple[datetime | None, str]:
    """The slot to file at ``now`` and why (see the module text). ``known``: the slots that
    have a record; ``started_at``: when this agent started carrying the schedule."""
    latest = cron.latest(now)
    known = list(known)
    if any(k > latest for k in known):
        return None, "a newer slot has a record"
    if not known and started_at is not None and latest.timestamp() < started_at:
        return None, "before the schedule's first start"
    return latest, "due"


class State(enum.Enum):
    CLAIMED = "claimed"
    FILED = "filed"


@dataclass(frozen=True)
class Record:
    """What a slot's ref points at: the message of its commit."""
    schedule: str
    slot: str  # the key
    state: State
    node: str
    at: float  # when the node claimed (its clock) or filed
    issue: int | None = None
    takeover: bool = False

    def message(self) -> str:
        lines = [f"bzzz schedule {self.schedule}@{self.slot}", "", f"state: {self.state.value}",
                 f"node: {self.node}", f"at: {self.at:.3f}"]
        if self.issue is not None:
            lines.append(f"issue: {self.issue}")
        if self.takeover:
            lines.append("takeover: yes")
        return "\n".join(lines) + "\n"


def parse_record(message: str) -> Record | None:
    """A slot commit's message, or None when it is not one (then it is treated as a claim
    that died: taken over after the grace, and the issue looked for before filing)."""
    lines = (message or "").splitlines()
    if not lines:
        return None
    head = re.match(r"^bzzz schedule ([a-z0-9-]+)@([0-9TZ]+)$", lines[0].strip())
    if head is None:
        return None
    fields = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    try:
        state = State(fields.get("state", ""))
        at = float(fields.get("at", ""))
        issue = int(fields["issue"]) if "issue" in fields else None
    except (ValueError, KeyError):
        return None
    if state is State.FILED and issue is None:
        return None
    return Record(head[1], head[2], state, fields.get("node", "?"), at, issue,
                  fields.get("takeover") == "yes")


class Action(enum.Enum):
    DONE = "done"  # filed already
    WAIT = "wait"  # claimed recently: the claimant is filing it
    TAKE_OVER = "take_over"  # claimed long ago (or unreadable): the claimant died


def on_record(record: Record | None, now: float, grace: float = DEFAULT_GRACE) -> Action:
    if record is not None and record.state is State.FILED:
        return Action.DONE
    if record is not None and now - record.at < grace:
        return Action.WAIT
    return Action.TAKE_OVER


def render_title(template: str, cron: Cron, slot: datetime) -> str:
    return template.replace("{slot}", cron.local(slot))


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render_body(name: str, cron: Cron, slot: datetime, node: str, *, body: str | None,
                command: str | None) -> str:
    """The issue text: the schedule's body (or its command as a ```bzzz shell block), a line
    saying which slot it is, and the hidden marker that finds the issue again."""
    if command is not None:
        fence = _fence(command)
        text = f"{fence}bzzz\n{command.rstrip()}\n{fence}"
    else:
        text = (body or "").rstrip()
    local = cron.local(slot)
    tz = cron.tz.key
    return (f"{text}\n\n---\n<sub>Filed by the schedule `{name}` for {local} ({tz}), "
            f"by {node}.</sub>\n{slot_marker(name, slot)}\n")


def labels_for(labels: Iterable[str], priority: str) -> list[str]:
    out = ["bzzz"]
    if priority != "normal":
        out.append(f"priority:{priority}")
    out += [x for x in labels if x and x not in out]
    return out
