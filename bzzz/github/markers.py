"""Hidden markers in what the agents write on GitHub (a core, no I/O).

Every comment an agent writes carries an HTML comment ``<!-- bzzz:<kind>:<key> -->`` naming
its kind and key, so an agent whose POST had an uncertain outcome can look for its marker
before posting again (bzzz/github/issues.py), and readers find the agents' words
(bzzz/follow.py, the monitor). Text that came from a task is defused first: it cannot carry
one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = "<!-- bzzz:{kind}:{key} -->"
_MARKER_RE = re.compile(r"<!-- bzzz:(?P<kind>[a-z-]+):(?P<key>[^ ]+) -->")


def marker(kind: str, key: str) -> str:
    return MARKER.format(kind=kind, key=key)


def find_markers(body: str) -> set[tuple[str, str]]:
    return {(m["kind"], m["key"]) for m in _MARKER_RE.finditer(body or "")}


def defuse_markers(text: str) -> str:
    """Text from a task, made unable to carry markers (an agent writes it under its login)."""
    return text.replace("<!-- bzzz:", "<!-- bzzz :")


# GitHub's closing keywords: close/closes/closed, fix/fixes/fixed, resolve/resolves/resolved,
# an optional colon, then ``#N``, ``owner/repo#N`` or an issue's URL (case-insensitive)
CLOSING = re.compile(
    r"\b(?P<keyword>close[sd]?|fix(?:e[sd])?|resolve[sd]?)(?P<gap>:[ \t]*|[ \t]+)"
    r"(?P<ref>(?:(?P<repo>[\w.-]+/[\w.-]+)#|https?://[^\s/]+/(?P<url_repo>[\w.-]+/[\w.-]+)"
    r"/issues/|#)(?P<number>\d+)\b)", re.IGNORECASE)


def defuse_closing(text: str) -> str:
    """Text from a task (its summary, its commits' messages), made unable to close issues
    when the pull request is merged: ``Fixes #7`` becomes ``Fixes issue #7``, which GitHub
    reads as a mention. Only the delivery's own ``Fixes #<issue>`` closes an issue."""
    return CLOSING.sub(lambda m: f"{m['keyword']}{m['gap']}issue {m['ref']}", text)


@dataclass(frozen=True)
class Comment:
    kind: str
    key: str  # unique per task attempt, e.g. "<node>:<claim generation>"
    body: str
