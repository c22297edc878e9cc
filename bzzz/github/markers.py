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


@dataclass(frozen=True)
class Comment:
    kind: str
    key: str  # unique per task attempt, e.g. "<node>:<claim generation>"
    body: str
