"""Who may give a task, and the comment commands (a core, no I/O).

The rule (shared/CONTRACT.md, "Trust"): a task runs only if its issue's author has write
access (permission admin, maintain or write). Anyone else's task waits: an agent posts the
task's hash in a "waiting for approval" comment, and a writer's ``/bzzz approve <hash>``
covers exactly that task.

What an approval covers is everything the task is given that its author controls: the
issue's title (``BZZZ_TITLE``, the coding agent's instructions, the LLM prompt) and its body
(the spec, the instructions). The hash is ``task_digest``: sha256 over the title's UTF-8, one
NUL byte, the body's UTF-8 (the title as the task gets it, without NUL characters, so the
encoding is unambiguous). An edit of either needs a new approval.

The hash people type is the first 8 hex digits of that sha256: short enough to type, but 32
bits can be collided with a few hours of work. So an approval covers a task only if a
writer's comment (an agent's announcement, hidden marker ``approval:<full sha256>``)
announced that task's *full* hash *before* the approval comment (comment ids only grow).
An outsider who prepares a colliding text and edits it in after the approval gets a new
announcement, later than the approval: it waits again.

Follow-ups: an issue an agent files from a task's ``follow-ups.json`` is authored by the
agents' login, which may push. When the task that filed it ran on a writer's approval (its
author had no write access), the follow-up inherits that: the agent writes the hidden marker
``inherits:<issue>`` into it, and an issue carrying that marker waits for a writer's
approval whoever its author is. The marker only ever withholds trust, so anyone may write
it; nothing an author writes grants any.

Comment commands: ``/bzzz approve <hash>``, ``/bzzz retry``, ``/bzzz cancel``,
``/bzzz answer <text>`` at the start of a line of a writer's comment. Everyone else's are
ignored (and counted).
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..github.markers import find_markers

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
SHORT_HASH = 8
MAX_ARG = 64 * 1024


class Verb(str, Enum):
    APPROVE = "approve"
    RETRY = "retry"
    CANCEL = "cancel"
    ANSWER = "answer"
    FEEDBACK = "feedback"  # any other comment mentioning /bzzz: review feedback, another round


_COMMAND = re.compile(r"^[ \t]*/bzzz[ \t]+(?P<verb>[A-Za-z-]+)\b[ \t]*(?P<rest>.*)$", re.M)
_HEX = re.compile(r"[0-9a-f]{8,64}")
_MENTION = re.compile(r"(?<![\w/])/bzzz\b(?![/-])")


def task_digest(title: str | None, body: str | None) -> str:
    """The full sha256 (hex) of what an approval covers: the title, a NUL byte, the body (a
    title's own NUL characters are dropped, as they are from what the task is given)."""
    return hashlib.sha256(clean_title(title).encode("utf-8", "surrogatepass") + b"\0"
                          + (body or "").encode("utf-8", "surrogatepass")).hexdigest()


def clean_title(title: str | None) -> str:
    """The title a task is given (and an approval covers): without NUL characters."""
    return (title or "").replace("\0", "")


def inherited_from(body: str | None) -> int | None:
    """The issue whose approval a follow-up inherits (its ``inherits`` marker), or None."""
    found = [int(k) for kind, k in find_markers(body or "") if kind == "inherits" and k.isdigit()]
    return min(found) if found else None


def short_hash(digest: str) -> str:
    return digest[:SHORT_HASH]


def is_writer(permission: str | None, role: str | None = None) -> bool:
    """GitHub's permission API answers admin/write/read/none, with the finer role
    (maintain, triage, or a custom role) in ``role_name``."""
    return permission in WRITE_PERMISSIONS or role in WRITE_PERMISSIONS


@dataclass(frozen=True)
class Command:
    repo: str
    issue: int  # the task's issue (a command on its pull request is routed to it)
    comment_id: int
    author: str
    verb: Verb
    arg: str
    source: str = "comment"  # "comment" (issue or pull request conversation) or "review"

    @property
    def key(self) -> str:
        return f"{self.repo}#{self.issue}"


_FENCE_LINE = re.compile(r"^[ \t]*(```|~~~)", re.M)


def _outside_fences(fences: list[int], pos: int) -> bool:
    """Whether ``pos`` is outside fenced code blocks, given the sorted positions of the fence
    lines (a command quoted in a fence, as the agents' own comments show them, is not one)."""
    return bisect.bisect_left(fences, pos) % 2 == 0


def parse_command(text: str | None) -> tuple[Verb, str] | None:
    """The first ``/bzzz <verb> …`` line of a person's comment, or None. For ``answer`` the
    argument is the rest of the comment from the verb on; otherwise the rest of that line.
    Lines inside fenced code blocks and the agents' own comments (they carry a hidden
    ``bzzz`` marker) are never commands."""
    if not text or find_markers(text):
        return None
    text = text[: MAX_ARG * 2]
    fences: list[int] | None = None  # found once, and only for a comment with a command line
    for m in _COMMAND.finditer(text):
        try:
            verb = Verb(m["verb"].lower())
        except ValueError:
            continue
        if fences is None:
            fences = [f.start() for f in _FENCE_LINE.finditer(text)]
        if not _outside_fences(fences, m.start()):
            continue
        if verb is Verb.ANSWER:
            rest = text[m.start("rest"):]
            return verb, rest.strip()[:MAX_ARG]
        if verb is Verb.FEEDBACK:
            break
        return verb, m["rest"].strip()[:1024]
    for m in _MENTION.finditer(text):  # "/bzzz" anywhere else: feedback, the whole comment
        if fences is None:
            fences = [f.start() for f in _FENCE_LINE.finditer(text)]
        if _outside_fences(fences, m.start()):
            return Verb.FEEDBACK, text.strip()[:MAX_ARG]
    return None


def issue_number(comment: Mapping[str, Any]) -> int | None:
    """The issue (or pull request) a comment belongs to, from its ``issue_url``."""
    url = comment.get("issue_url")
    if not isinstance(url, str):
        return None
    tail = url.rstrip("/").rpartition("/")[2]
    return int(tail) if tail.isdigit() else None


def command_from_comment(repo: str, comment: Mapping[str, Any]) -> Command | None:
    """A Command from GitHub's comment JSON (None: not a command, or malformed)."""
    cid, user, number = comment.get("id"), comment.get("user"), issue_number(comment)
    if not isinstance(cid, int) or not isinstance(user, Mapping) or number is None:
        return None
    login = user.get("login")
    body = comment.get("body")
    if not isinstance(login, str) or not isinstance(body, str):
        return None
    parsed = parse_command(body)
    if parsed is None:
        return None
    return Command(repo, number, cid, login, parsed[0], parsed[1])


@dataclass(frozen=True)
class CommentView:
    id: int
    author: str
    body: str


def comment_views(docs: Iterable[Mapping[str, Any]]) -> list[CommentView]:
    out = []
    for d in docs:
        user = d.get("user")
        if isinstance(d.get("id"), int) and isinstance(user, Mapping) \
                and isinstance(user.get("login"), str) and isinstance(d.get("body"), str):
            out.append(CommentView(d["id"], user["login"], d["body"]))
    return sorted(out, key=lambda c: c.id)


def voices(comments: Iterable[CommentView]) -> set[str]:
    """Authors whose permission matters: those whose comments announce or approve."""
    return {c.author for c in comments
            if any(kind == "approval" for kind, _ in find_markers(c.body))
            or (parse_command(c.body) or (None,))[0] is Verb.APPROVE}


@dataclass(frozen=True)
class Approval:
    digest: str  # full task_digest of the title and body as they are now
    approved: bool  # a writer approved this task after it was announced
    announced: bool  # a writer's comment announced this task's hash already
    approvers: tuple[str, ...] = ()

    @property
    def short(self) -> str:
        return short_hash(self.digest)


def approval_state(digest: str, comments: Iterable[CommentView],
                   writers: set[str]) -> Approval:
    """Whether the task as it is now (``digest``: its ``task_digest``) is approved, from the
    issue's comments and the set of their authors who have write access."""
    first_announced: int | None = None
    approvers: list[str] = []
    for c in sorted(comments, key=lambda c: c.id):
        if c.author not in writers:
            continue
        if first_announced is None and ("approval", digest) in find_markers(c.body):
            first_announced = c.id
        parsed = parse_command(c.body)
        if parsed is None or parsed[0] is not Verb.APPROVE or first_announced is None:
            continue
        given = parsed[1].split()[0].lower() if parsed[1] else ""
        if _HEX.fullmatch(given) and digest.startswith(given) and c.id > first_announced:
            approvers.append(c.author)
    return Approval(digest, bool(approvers), first_announced is not None, tuple(approvers))
