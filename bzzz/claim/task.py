"""Tasks: GitHub issues labelled ``bzzz``, parsed, filtered and ranked (a core, no I/O).

Ranking: priority label (critical > high > normal > low; normal when absent), then age
(oldest first), then repository and number for a total order. A task is eligible for a node
when it is open, labelled ``bzzz``, not a pull request, not already done or failed, and every ``needs:<capability>`` label is among the node's capabilities (``needs:ollama``
is met by any ``ollama:<model>``; ``needs:ollama:llama3`` needs that model).

With peers, a node picks its share from a window of the best tasks (``free slots x mesh
size`` of them) in a per-node hashed order, so that agents spread over tasks instead of all
racing for the first one; priority classes still go strictly first, and age order is relaxed
only inside that window.

A node may *defer* a task to a peer that announces it can run it with a strictly lower
load, but only for ``defer_window`` seconds after it first saw the task: a task is never
left untaken because everyone defers.
"""

from __future__ import annotations

from ..errors import InputError
import bisect
import calendar
import hashlib
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..p2p.capabilities import PeerView, capability_met
from .trust import clean_title

TASK_LABEL = "bzzz"
PRIORITIES = ("critical", "high", "normal", "low")
STATE_LABELS = {"claimed": "bzzz:claimed", "done": "bzzz:done", "failed": "bzzz:failed",
                "needs-input": "bzzz:needs-input", "needs-approval": "bzzz:needs-approval",
                "review": "bzzz:review",
                # no live node offers what the task needs (bzzz/claim/waiting.py)
                "waiting": "bzzz:waiting"}
# not claimable until someone acts (a retry, an answer, review feedback)
FINISHED = {STATE_LABELS["done"], STATE_LABELS["failed"], STATE_LABELS["needs-input"],
            STATE_LABELS["review"]}
MAX_COMMAND = 16 * 1024
MAX_BODY = 256 * 1024

EXECUTORS = ("shell", "container", "llm", "agent")
# one line each: an opening ```bzzz line, and a fence line that may close a block
_OPENER = re.compile(r"(?P<fence>`{3,}|~{3,})[ \t]*bzzz(?:[ \t]+(?P<info>[^\r\n`]*?))?[ \t]*\r?")
_CLOSER = re.compile(r"(`{3,}|~{3,})[ \t]*\r?")
_OPTION = re.compile(r"^([a-z][a-z0-9_-]{0,31})=(\S{1,256})$")


def label_names(doc: Mapping[str, Any]) -> set[str]:
    """The names of an issue's labels, as GitHub's issue JSON lists them."""
    return {name for x in doc.get("labels") or []
            if isinstance(x, dict) and isinstance(name := x.get("name"), str)}


class TaskError(InputError, ValueError):
    """An issue that cannot be a task (malformed fields)."""


def _ts(value: Any) -> float:
    if not isinstance(value, str):
        raise TaskError("timestamp missing")
    try:
        return float(calendar.timegm(time.strptime(value.replace("Z", "")[:19],
                                                   "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        raise TaskError(f"bad timestamp {value!r}") from None


@dataclass(frozen=True)
class TaskSpec:
    """The first ```` ```bzzz [EXECUTOR] [key=value ...] ```` block (CONTRACT.md, "Task spec")."""

    executor: str
    options: Mapping[str, str]
    code: str


def spec_from_body(body: str | None) -> TaskSpec | None:
    """The task spec of an issue body, or None when it has no ``bzzz`` block; TaskError when
    the info string is malformed (an unknown executor, a word that is not key=value)."""
    found = _first_block(body[:MAX_BODY]) if body else None
    if found is None:
        return None
    info, code = found
    words = info.split()
    executor = "shell"
    if words and "=" not in words[0]:
        executor = words.pop(0).lower()
        if executor not in EXECUTORS:
            raise TaskError(f"unknown executor {executor!r} (one of {', '.join(EXECUTORS)})")
    options: dict[str, str] = {}
    for word in words:
        om = _OPTION.match(word)
        if om is None:
            raise TaskError(f"{word[:40]!r} in the bzzz block's first line is not key=value")
        options[om.group(1)] = om.group(2)
    return TaskSpec(executor, options, code)


def _first_block(body: str) -> tuple[str, str] | None:
    """The info string and code of the first ```bzzz block: an opening line, at least one
    line of code (possibly empty), and the first later line that is the same fence.

    Line by line, in O(n log n): a regular expression over the whole body backtracks
    quadratically on thousands of unclosed openers (a 240 KB body took 50 s), and the body
    is text anyone who can open an issue writes."""
    starts = [0]
    lines = body.split("\n")
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    closers: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        m = _CLOSER.fullmatch(line)
        if m:
            closers.setdefault(m.group(1), []).append(i)
    for i, line in enumerate(lines):
        m = _OPENER.fullmatch(line)
        if m is None:
            continue
        candidates = closers.get(m.group("fence"), [])
        k = bisect.bisect_left(candidates, i + 2)
        if k == len(candidates):
            continue
        end = starts[candidates[k]] - 1  # the newline before the closing fence
        code = body[starts[i + 1]:end]
        return m.group("info") or "", code[:-1] if code.endswith("\r") else code
    return None


def task_timeout(spec: TaskSpec | None, limit: float) -> float:
    """The spec's ``timeout=`` (seconds), never beyond the node's ``exec_timeout``."""
    if spec is None:
        return limit
    try:
        asked = float(spec.options.get("timeout", limit))
    except ValueError:
        return limit
    return min(limit, asked) if asked > 0 else limit


def command_from_body(body: str | None) -> str | None:
    """The code of the first fenced ```bzzz block of an issue body, or None."""
    try:
        spec = spec_from_body(body)
    except TaskError:
        return None
    return spec.code if spec else None


@dataclass(frozen=True)
class Task:
    repo: str
    number: int
    title: str
    body: str
    labels: frozenset[str]
    created_at: float
    updated_at: float
    state: str = "open"
    assignees: tuple[str, ...] = ()
    is_pull: bool = False
    author: str = ""
    author_id: int = 0  # GitHub's user id (a co-author's no-reply address needs it)

    @property
    def key(self) -> str:
        return f"{self.repo}#{self.number}"

    @property
    def priority(self) -> str:
        found = [p for p in PRIORITIES if f"priority:{p}" in self.labels]
        return found[0] if found else "normal"

    @property
    def needs(self) -> frozenset[str]:
        return frozenset(label[len("needs:"):] for label in self.labels
                         if label.startswith("needs:") and len(label) > len("needs:"))

    @property
    def command(self) -> str | None:
        spec = self._parsed_spec[0]
        return spec.code if spec else None

    @cached_property
    def _parsed_spec(self) -> tuple[TaskSpec | None, TaskError | None]:
        """Parsed once per Task (ranking asks for every task on every poll)."""
        try:
            return spec_from_body(self.body), None
        except TaskError as exc:
            return None, exc

    @property
    def spec(self) -> TaskSpec | None:
        """The task spec; TaskError when its first line is malformed."""
        spec, error = self._parsed_spec
        if error is not None:
            raise error
        return spec

    def rank_key(self) -> tuple[int, float, str, int]:
        return (PRIORITIES.index(self.priority), self.created_at, self.repo, self.number)


def parse_issue(repo: str, doc: Mapping[str, Any]) -> Task:
    """A Task from GitHub's issue JSON; TaskError if the fields are not what GitHub sends."""
    if not isinstance(doc, Mapping):
        raise TaskError("issue is not an object")
    number = doc.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        raise TaskError("issue number missing")
    labels = doc.get("labels") or []
    if not isinstance(labels, list):
        raise TaskError("labels is not a list")
    found = frozenset(x.get("name") if isinstance(x, Mapping) else x for x in labels)
    names = frozenset(n for n in found if isinstance(n, str))
    if len(names) != len(found):
        raise TaskError("label without a name")
    assignees = doc.get("assignees") or []
    title, body = doc.get("title"), doc.get("body") or ""
    if not isinstance(title, str) or not isinstance(body, str):
        raise TaskError("title or body is not text")
    return Task(
        repo=repo, number=number, title=clean_title(title)[:1024], body=body[:MAX_BODY], labels=names,
        created_at=_ts(doc.get("created_at")), updated_at=_ts(doc.get("updated_at")),
        state=str(doc.get("state", "open")),
        assignees=tuple(a.get("login", "") for a in assignees if isinstance(a, Mapping)),
        is_pull="pull_request" in doc,
        author=str(user.get("login", "")) if isinstance(user := doc.get("user"), Mapping) else "",
        author_id=_user_id(doc.get("user")),
    )


def _user_id(user: object) -> int:
    uid = user.get("id") if isinstance(user, Mapping) else None
    return uid if isinstance(uid, int) and not isinstance(uid, bool) and uid > 0 else 0


def ineligible_reason(task: Task, capabilities: Iterable[str]) -> str | None:
    """Why this node must not take the task (None: it may)."""
    if task.state != "open":
        return "closed"
    if task.is_pull:
        return "pull request"
    if TASK_LABEL not in task.labels:
        return "not labelled bzzz"
    if task.labels & FINISHED:
        return "already finished"
    # `bzzz:claimed` is the visible marker, not the lock: a claimed task stays eligible so
    # that an expired lease (a crashed holder) is taken over; the lock decides.
    caps = list(capabilities)
    try:
        missing = sorted(n for n in required(task) if not capability_met(n, caps))
    except TaskError as exc:
        return f"malformed task ({exc})"
    if missing:
        return "needs " + ", ".join(missing)
    return None


def required(task: Task) -> set[str]:
    """What a node must offer to run ``task``: its ``needs:`` labels, the executor its block
    names (container, llm, agent), and an llm block's model itself. Raises TaskError for a
    malformed block."""
    spec = task.spec
    needs = set(task.needs)
    if spec is not None and spec.executor != "shell":
        needs.add(spec.executor)  # container, llm, agent: a node that has that executor
    if spec is not None and spec.executor == "llm" and spec.options.get("model"):
        needs.discard("llm")
        needs.add(f"llm:{spec.options['model']}")  # the model itself
    return needs


def able(task: Task, capabilities: Iterable[str]) -> bool:
    """Whether a node offering ``capabilities`` could run ``task`` (a malformed one: no)."""
    caps = list(capabilities)
    try:
        return all(capability_met(n, caps) for n in required(task))
    except TaskError:
        return False


@dataclass
class Choice:
    take: list[Task] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # task key -> reason


def _h(who: str, task: Task) -> bytes:
    return hashlib.sha256(f"{who}/{task.key}".encode()).digest()[:8]


UNKNOWN_SPREAD = 8  # with no peers known, choose among this many candidates per free slot


def choose(tasks: Sequence[Task], capabilities: Sequence[str], running: int, max_tasks: int,
           peers: Sequence[PeerView] = (), first_seen: Mapping[str, float] | None = None,
           now: float = 0.0, defer_window: float = 10.0, node_id: str = "",
           me: str = "") -> Choice:
    """Which tasks to try to claim now, best first, and why the others are skipped.

    Within a priority, the first candidates are spread so that agents collide rarely:
    with peers known, each task of the window belongs to one node (rendezvous hashing over
    the nodes able to run it, ``me`` being this node's peer id as the others know it), and a
    node tries its own first; with no peers known, each node orders the window by its own
    hash, so agents that do not know each other still mostly pick different tasks."""
    choice = Choice()
    free = max(0, max_tasks - running)
    my_load = running / max_tasks if max_tasks else 1.0
    first_seen = first_seen or {}
    ranked = sorted(tasks, key=Task.rank_key)
    who = me or node_id
    if who and free:
        eligible = [t for t in ranked if ineligible_reason(t, capabilities) is None]
        size = free * (len(peers) + 1) if peers else free * UNKNOWN_SPREAD
        window = {t.key for t in eligible[:size]}

        def owner(t: Task) -> str:
            nodes = [who] + [p.peer_id for p in peers
                             if p.max_tasks > 0 and able(t, p.capabilities)]
            return max(nodes, key=lambda n: _h(n, t))

        def spread(t: Task) -> tuple[int, int, tuple[int, float, str, int] | bytes]:
            prio = PRIORITIES.index(t.priority)
            if t.key not in window:
                return (prio, 2, t.rank_key())
            mine = 0 if not peers or owner(t) == who else 1
            return (prio, mine, _h(who, t))
        ranked.sort(key=spread)
    for task in ranked:
        reason = ineligible_reason(task, capabilities)
        if reason is None and free <= len(choice.take):
            reason = "at capacity"
        if reason is None:
            better = [p for p in peers
                      if p.max_tasks > p.running
                      and p.running / p.max_tasks < my_load
                      and able(task, p.capabilities)]
            seen = first_seen.get(task.key, now)
            if better and now - seen < defer_window:
                reason = f"deferred to less-loaded peer {better[0].peer_id[:16]}"
        if reason is None:
            choice.take.append(task)
        else:
            choice.skipped[task.key] = reason
    return choice
