"""How a resolved word is written: markers for what only run time knows, quoted glob
characters, and how to show such a word to a person or hand it back as shell text.

NUL and private-use characters are refused in the input (``bzzz/exec/guardian/text.py``), so
they are free to mark things inside resolved words.
"""

from __future__ import annotations

import re

UNK = "\x00"          # a part only known at run time
PPID_MARK = "\x01"    # $PPID: the agent
PROC_MARK = "\x03"    # <(...) / >(...): PROC_MARK + index + PROC_MARK
SELF_MARK = "\x06"    # $0 inside a script the command runs: the script itself
HOME_DIR = "/home/~"  # what ~ and $HOME stand for: outside the workspace, whatever HOME is
QUOTED = {"*": "\ue001", "?": "\ue002", "[": "\ue003", "{": "\ue004", "}": "\ue005",
          ",": "\ue006"}
QUOTE_ALL = str.maketrans(QUOTED)
QUOTE_BRACES = str.maketrans({k: v for k, v in QUOTED.items() if k in "{},"})
UNQUOTE = str.maketrans({v: k for k, v in QUOTED.items()})
GLOB = re.compile(r"[*?\[]")  # an active (unquoted) glob character


def show(s: str) -> str:
    """A resolved word as a person would write it."""
    if s.isascii() and not any(m in s for m in (UNK, PPID_MARK, PROC_MARK, SELF_MARK)) \
            and not s.startswith(HOME_DIR):
        return s
    s = s.translate(UNQUOTE).replace(UNK, "$…").replace(PPID_MARK, "$PPID")
    s = re.sub(PROC_MARK + r"\d+" + PROC_MARK, "<(…)", s).replace(SELF_MARK, "$0")
    if s == HOME_DIR or s.startswith(HOME_DIR + "/"):
        s = "~" + s[len(HOME_DIR):]
    return s


def as_text(s: str) -> str:
    """A resolved value as shell text for a nested check (run-time parts stay run-time)."""
    s = s.translate(UNQUOTE).replace(UNK, "${__bzzz_runtime}").replace(PPID_MARK, "$PPID")
    return re.sub(PROC_MARK + r"\d+" + PROC_MARK, "/dev/fd/63", s).replace(SELF_MARK, "$0")
