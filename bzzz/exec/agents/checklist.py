"""A coding agent's transcript as a checklist a person can follow (a core: no I/O).

The presets' parsers (bzzz/exec/agents/claude_code.py and its siblings) turn a CLI's stream
into transcript lines: ``🔧 Read README.md``, ``🔧 Bash pytest -q``, ``  ✖ Edit: …``,
``✏️ src/x.py`` (Codex, Aider), ``$ make (exit 0)`` (Codex), ``💬 <message>``,
``■ <result>``, and the runner's ``↩ resumed session …`` (bzzz/exec/agents/runner.py).
:class:`Checklist` reads them back into what the agent did (files read,
searched and edited, commands and tests run, its last message) and renders that as the
Markdown of the progress comment (bzzz/claim/report.py ``progress_comment``).

Everything is bounded, whatever the CLI prints: so many steps kept (the newest shown), so
many characters an item, so many in all. Whatever comes from the CLI is shown in code spans
or quoted with mentions and the agents' hidden markers defused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...github.markers import defuse_markers

__all__ = ["Checklist", "MAX_SHOWN", "checklist_markdown"]

MAX_STEPS = 200  # distinct steps remembered (more are counted)
MAX_SHOWN = 30  # the newest steps shown
MAX_ITEM = 100  # characters of a path or command
MAX_MESSAGE = 400  # characters of the last message
MAX_MARKDOWN = 6000

READ_TOOLS = frozenset({"read", "view", "notebookread", "cat"})
SEARCH_TOOLS = frozenset({"glob", "grep", "ls", "list", "find", "search", "websearch",
                          "webfetch", "codesearch"})
EDIT_TOOLS = frozenset({"edit", "multiedit", "write", "notebookedit", "patch", "apply_patch",
                        "str_replace_editor", "create"})
RUN_TOOLS = frozenset({"bash", "shell", "exec", "command", "run", "terminal"})
TEST_WORDS = re.compile(
    r"\b(?:pytest|tox|nox|unittest|jest|vitest|mocha|rspec|phpunit|ctest|(?:cargo|go|npm|"
    r"yarn|pnpm|bun|make|mix|dotnet|gradle|mvn)\s+(?:run\s+)?(?:test|tests|check)\b)|"
    r"(?:^|[\s/])(?:test|tests|check)\.sh\b")
_EXIT = re.compile(r"\s*\(exit (-?\d+|None)\)$")
_APPLIED = re.compile(r"^Applied edit to (.+)$")

VERBS = {"read": "Read", "search": "Searched", "edit": "Edited", "run": "Ran",
         "test": "Ran tests:", "tool": "Used"}


@dataclass
class Step:
    kind: str  # read | search | edit | run | test | tool
    target: str
    ok: bool = True
    note: str = ""  # why it failed


@dataclass
class Checklist:
    """What the agent did, fed its transcript lines one by one."""

    steps: dict[tuple[str, str], Step] = field(default_factory=dict)
    more: int = 0  # distinct steps beyond MAX_STEPS
    message: str = ""
    ended: str | None = None  # its result line, once the CLI has ended
    failed: str | None = None  # why the run failed, once known
    last: Step | None = None
    resumed: str = ""  # the runner's word on the session it resumed (shown first)

    def feed(self, line: str) -> None:
        text = " ".join(str(line).split())
        if not text:
            return
        head, _, rest = text.partition(" ")
        if head == "🔧":
            self._tool(rest)
        elif head == "✖" and str(line).startswith("  ") and self.last is not None:
            self.last.ok, self.last.note = False, rest.partition(": ")[2] or rest
        elif head == "✏️":
            m = _APPLIED.match(rest)
            for path in ([m.group(1)] if m else rest.split(", ")):
                self._step("edit", path)
        elif head == "✖" and "," not in rest and "/" in rest and " " not in rest:
            self._step("edit", rest, ok=False, note="the edit failed")
        elif head == "$":
            m = _EXIT.search(rest)
            cmd = rest[:m.start()] if m else rest
            code = m.group(1) if m else None
            self._step("test" if TEST_WORDS.search(cmd) else "run", cmd,
                       ok=code in (None, "0"), note=f"exit {code}")
        elif head == "💬":
            self.message = rest
        elif head == "■":
            self.ended = rest
        elif head == "↩":
            self.resumed = rest
        elif head == "⋯" and rest.isdigit():
            self.more += int(rest)
        elif head == "[bzzz]" and " failed: " in rest:
            self.failed = rest.split(" failed: ", 1)[1]

    def _tool(self, rest: str) -> None:
        name, _, target = rest.partition(" ")
        target, _, error = target.partition(" ✖ ")
        low = name.lower()
        kind = ("read" if low in READ_TOOLS else "search" if low in SEARCH_TOOLS else
                "edit" if low in EDIT_TOOLS else
                ("test" if TEST_WORDS.search(target) else "run") if low in RUN_TOOLS else "tool")
        if kind == "tool":
            target = f"{name} {target}".strip()
        self._step(kind, target or name, ok=not error, note=error)

    def _step(self, kind: str, target: str, *, ok: bool = True, note: str = "") -> None:
        target = target.strip()
        key = (kind, target)
        step = self.steps.get(key)
        if step is None:
            if len(self.steps) >= MAX_STEPS:
                self.more += 1
                self.last = None
                return
            step = self.steps[key] = Step(kind, target)
        else:  # seen again: shown as of its latest outcome, among the newest
            self.steps[key] = self.steps.pop(key)
        step.ok, step.note = ok, note
        self.last = step

    def markdown(self, *, final: bool = False) -> str:
        """The checklist; ``final``: the run is over, whether or not the CLI said how it
        ended (a run stopped from outside never says)."""
        shown = list(self.steps.values())[-MAX_SHOWN:]
        hidden = len(self.steps) - len(shown) + self.more
        lines = [f"↩ {_quote(self.resumed, 200)}", ""] if self.resumed else []
        if hidden:
            lines.append(f"- … {hidden} earlier step{'s' if hidden != 1 else ''}")
        lines += [_item(s) for s in shown]
        if self.failed is not None:
            lines.append(f"- [ ] Failed: {_quote(self.failed, 200)}")
        elif self.ended is not None:
            lines.append("- [x] Done" + (f": {_quote(self.ended, 200)}"
                                         if self.ended.strip() else ""))
        else:
            lines.append("- [ ] Stopped before it finished" if final else "- [ ] …working")
        if self.message.strip():
            lines += ["", f"💬 {_quote(self.message, MAX_MESSAGE)}"]
        text = "\n".join(lines)
        return text if len(text) <= MAX_MARKDOWN else text[:MAX_MARKDOWN - 1] + "…"

    def lines(self) -> list[str]:
        """Transcript lines that feed a new checklist into this one's state (what the
        executor reports as its progress: bounded, and readable as they are)."""
        out = [f"↩ {_clip(self.resumed, 200)}"] if self.resumed else []
        if len(self.steps) > MAX_SHOWN or self.more:
            out.append(f"⋯ {len(self.steps) - MAX_SHOWN + self.more}")
        for s in list(self.steps.values())[-MAX_SHOWN:]:
            tool = {"read": "Read", "search": "Grep", "edit": "Edit", "run": "Bash",
                    "test": "Bash"}.get(s.kind, "")
            text = _clip(f"{tool} {s.target}".strip(), MAX_ITEM + 10)
            note = f" ✖ {_clip(s.note or 'failed', 120)}" if not s.ok else ""
            out.append(f"🔧 {text}{note}")
        if self.message.strip():
            out.append(f"💬 {_clip(self.message, MAX_MESSAGE)}")
        if self.ended is not None:
            out.append(f"■ {_clip(self.ended, 200)}")
        if self.failed is not None:
            out.append(f"[bzzz] the agent failed: {_clip(self.failed, 200)}")
        return out

    @property
    def empty(self) -> bool:
        return not self.steps and not self.message and self.ended is None


def _item(step: Step) -> str:
    verb = VERBS[step.kind]
    if step.ok:
        return f"- [x] {verb} {_code(step.target)}"
    note = f": {_quote(step.note, 120)}" if step.note else ""
    return f"- [ ] ✖ {verb} {_code(step.target)}{note}"


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _code(text: str) -> str:
    """An inline code span holding ``text`` whatever backticks it has."""
    text = defuse_markers(_clip(text, MAX_ITEM))
    ticks = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (ticks + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _quote(text: str, limit: int) -> str:
    """Prose from the CLI: one line, no mention that pings, no marker, no HTML."""
    text = defuse_markers(_clip(text, limit))
    text = text.replace("@", "@\u200b").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"^[#>\-*+|=]+", lambda m: "\\" + m.group(0), text)


def checklist_markdown(lines: Iterable[str], *, final: bool = False) -> str:
    """The checklist of a transcript (empty when it holds no step, message or result)."""
    c = Checklist()
    for line in lines:
        c.feed(line)
    return "" if c.empty and c.failed is None else c.markdown(final=final)
