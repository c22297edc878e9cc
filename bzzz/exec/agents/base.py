"""What every coding-agent preset is (a core: no I/O).

A preset knows one CLI: how it runs without a person (:meth:`Preset.invocation`: its argv,
where it takes the instructions, its model and base-URL variables, its turn limit), what it
prints as it works (:meth:`Preset.parser`: its structured output read line by line into
lines a person can follow and a :class:`Verdict`), and the files it leaves in the checkout
that never belong in a pull request (:attr:`Preset.leftovers`, repository-relative globs
that bzzz/repo/workspace.py's snapshot leaves out), and how it resumes a session: the
HOME-relative paths holding its sessions (:attr:`Preset.session_paths`, kept between rounds
by bzzz/exec/agents/sessions.py; none: it cannot resume), where a session kept from another
checkout goes (:meth:`Preset.relocate`), and the invocation given ``Setup.resume``; its
parser says the session's id (``Verdict.session``) and whether the CLI knew the session it
was asked to resume (``Verdict.unknown_session``).

A run is judged by its verdict, not its exit status: Aider exits 0 after its model refused
the key, and Claude Code's result says ``success`` after an edit that failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

__all__ = ["Dialect", "Invocation", "Parser", "Preset", "Setup", "Verdict", "auth_failure",
           "short", "unknown_session"]

Dialect = Literal["anthropic", "openai"]


@dataclass(frozen=True)
class Setup:
    """What a preset is given for one run (paths as the sandbox sees them)."""

    model: str
    base_url: str  # the model route: Anthropic's root, or OpenAI's ending in /v1
    home: Path  # the CLI's HOME: outside the checkout, gone with the task
    workspace: Path
    instructions: Path  # the file holding the prompt
    max_turns: int
    repo_instructions: str = ""  # the repository's own instructions (AGENTS.md ...)
    resume: str | None = None  # the session to resume (its files are in home already)


@dataclass
class Invocation:
    argv: list[str]  # after the executable
    env: dict[str, str] = field(default_factory=dict)
    stdin: bool = False  # the instructions on standard input (else named in argv)
    files: dict[str, str] = field(default_factory=dict)  # HOME-relative path -> text
    # the repository's instructions went to the CLI its own way (a system prompt flag), so
    # the prompt leaves them out; otherwise they end the prompt (bzzz/exec/executor.py)
    repo_instructions_given: bool = False


@dataclass
class Verdict:
    """What the CLI's own output says of the run."""

    failure: str | None = None  # why it failed, in a few words
    fatal: bool = False  # nothing more can come of it: stop the CLI now
    message: str = ""  # the agent's last message to a person
    edits: int = 0  # edits its tools reported made
    failed_edits: dict[str, str] = field(default_factory=dict)  # file -> its last error
    turns: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    session: str | None = None  # the CLI's session id, as it said it
    unknown_session: bool = False  # asked to resume a session, the CLI knew none such

    def fail(self, why: str, *, fatal: bool = False) -> None:
        if self.failure is None:
            self.failure = why
        self.fatal = self.fatal or fatal


class Parser(Protocol):
    verdict: Verdict

    def feed(self, line: str) -> list[str]:
        """One line the CLI printed: the lines a person should see for it (maybe none)."""
        ...

    def finish(self) -> Verdict:
        """The verdict once the CLI has ended."""
        ...


class Preset(Protocol):
    name: str  # as configured and announced (agent:<name>)
    executable: str  # looked up on agent_path, then PATH
    dialect: Dialect
    leftovers: tuple[str, ...]
    # the per-process data limit (RLIMIT_DATA, where no cgroup limits a task's memory) under
    # which the CLI runs badly: a runtime reserving large heaps (opencode's Bun); 0: none
    data_floor: int
    session_paths: tuple[str, ...]  # HOME-relative: what holds its sessions (none: no resume)

    def invocation(self, setup: Setup) -> Invocation: ...

    def parser(self) -> Parser: ...

    def relocate(self, old_cwd: str, new_cwd: str) -> dict[str, str]:
        """HOME-relative paths of a session kept from a run in ``old_cwd`` and where they
        go for a run in ``new_cwd`` (a CLI that files sessions by their checkout)."""
        ...


def short(text: str, limit: int = 160) -> str:
    """One line of at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def json_line(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def auth_failure(status: Any, text: str = "") -> str | None:
    """The sentence for a model refusing the key (401/403), or None."""
    code = status if isinstance(status, int) else None
    low = text.lower()
    if code is None:
        if "401" in low or "unauthorized" in low or "authentication" in low:
            code = 401
        elif "403" in low or "forbidden" in low or "permission denied" in low:
            code = 403
    if code in (401, 403):
        return f"the model refused its key ({code})"
    return None


def limit_failure(status: Any, text: str = "") -> str | None:
    """The sentence for a usage or rate limit (429, quota), or None."""
    low = text.lower()
    if status == 429 or "429" in low or "rate limit" in low or "ratelimit" in low \
            or "quota" in low or "usage limit" in low:
        return "the model's usage or rate limit was reached"
    return None


def unknown_session(verdict: Verdict, line: str, says: str) -> None:
    """A line of the CLI's own (not its JSON) saying ``says``: the session it was asked to
    resume is unknown to it (the runner then starts it afresh)."""
    if says in line:
        verdict.unknown_session = True
        verdict.fail("the session to resume is unknown to it")


EDIT_FAILED = "its edits failed"


def edit_failures(verdict: Verdict) -> None:
    """A file whose last edit failed fails the run (the CLI may well call it a success)."""
    if verdict.failed_edits and verdict.failure is None:
        path, why = next(iter(verdict.failed_edits.items()))
        verdict.fail(f"{EDIT_FAILED} ({path}: {short(why, 120)})")
