"""Text screening: hidden, look-alike or control characters, and text that is not Unicode.

Applied to the whole command before it is parsed, and (``hidden``) to every text a command
runs in turn (``sh -c`` strings, ``eval``, scripts), from ``bzzz/exec/guardian/nested.py``.
"""

from __future__ import annotations

import re
import unicodedata

HIDDEN_RANGES = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\u00ad\u180e\u034f"
                           "\u115f\u1160\u3164\uffa0\ufe00-\ufe0f\ue000-\uf8ff\U000e0000-"
                           "\U000e01ef\U000f0000-\U0010ffff]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def hidden(text: str) -> bool:
    """Control or hidden characters in a text the command runs (NUL is a marker there)."""
    return bool(CONTROL.search(text.replace("\x00", "")) or HIDDEN_RANGES.search(text))


def text_problem(command: str) -> str | None:
    """Hidden, look-alike or control characters, or text that is not valid Unicode."""
    if command.isascii():
        if CONTROL.search(command):
            return "control characters in the command"
        return None
    try:
        command.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid text (a lone surrogate or other unencodable character)"
    if CONTROL.search(command):
        return "control characters in the command"
    if HIDDEN_RANGES.search(command):
        return "hidden characters (zero-width, bidirectional controls or private-use)"
    problem = _odd_character(command)
    if problem:
        return problem
    if unicodedata.normalize("NFKC", command) != command:
        return "look-alike characters (compatibility forms such as fullwidth letters)"
    return None


def _odd_character(command: str) -> str | None:
    """A non-ASCII character of a category that hides or imitates something."""
    for ch in set(command):
        if ord(ch) < 128:
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cf", "Co", "Cn", "Cs"):
            return "hidden characters (zero-width, bidirectional controls or unassigned)"
        if cat == "Cc":
            return "control characters in the command"
        if cat.startswith("Z"):
            return "look-alike characters (a space that is not a space)"
    return None
