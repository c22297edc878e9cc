"""Bash expansions of static text, as plain functions: ``$'...'`` strings, backslash
escapes, ``{a,b}``/``{1..5}`` braces, ``$((...))`` on numbers, ``$IFS`` word splitting and
what ``echo`` prints. They take text and return text; the checker's variables are applied by
``bzzz/exec/guardian/words.py``.
"""

from __future__ import annotations

import re
from itertools import pairwise

from .marks import QUOTE_ALL, UNK

_ARITH = re.compile(r"[\d\s+\-*/%()]{1,40}")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n",
                   "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}


def ansi_c(body: str) -> str:
    """The value of $'...' (without the quotes)."""
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch != "\\" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        text, i = _ansi_c_escape(body, i)
        out.append(text)
    text = "".join(out)
    return text.split("\x00", 1)[0]  # bash stops a $'' string at NUL


def _ansi_c_escape(body: str, i: int) -> tuple[str, int]:
    """The escape at ``body[i]`` (a backslash with something after it): (its text, next i)."""
    n = len(body)
    nxt = body[i + 1]
    if nxt in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[nxt], i + 2
    if nxt in "01234567":
        m = re.match(r"[0-7]{1,3}", body[i + 1:i + 4])
        assert m is not None  # nxt is an octal digit
        return chr(int(m.group(), 8) & 0xFF), i + 1 + len(m.group())
    if nxt in "xuU":
        width = {"x": 2, "u": 4, "U": 8}[nxt]
        m = re.match(r"[0-9a-fA-F]{1,%d}" % width, body[i + 2:i + 2 + width])
        if m:
            code = int(m.group(), 16)
            text = chr(code) if code < 0x110000 and not 0xD800 <= code < 0xE000 else "?"
            return text, i + 2 + len(m.group())
        return "\\" + nxt, i + 2
    if nxt == "c" and i + 2 < n:
        return chr(ord(body[i + 2]) & 0x1F), i + 3
    return "\\" + nxt, i + 2


def unescape(text: str) -> str:
    """Backslashes of an unquoted word removed; the characters they quote stay quoted."""
    if "\\" not in text:
        return text
    buf, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            if text[i + 1] != "\n":
                buf.append(text[i + 1].translate(QUOTE_ALL))
            i += 2
        else:
            buf.append(text[i])
            i += 1
    return "".join(buf)


def unescape_double(text: str) -> str:
    """Backslashes inside double quotes: only before $ ` " \\ and a newline."""
    if "\\" in text:
        text = re.sub(r'\\([$`"\\])', r"\1", text).replace("\\\n", "")
    return text


def arith(text: str) -> str:
    """$((...)) on plain numbers; UNK for anything else."""
    text = text.strip()
    if _ARITH.fullmatch(text) and "**" not in text:
        try:
            return str(int(eval(text.replace("/", "//"), {"__builtins__": {}}, {})))
        except (SyntaxError, ZeroDivisionError, TypeError, ValueError):
            return UNK
    return UNK


def split_fields(segs: list[tuple[str, bool]], ifs: str) -> list[str]:
    """Word splitting: (text, splittable) pieces joined into fields, splittable pieces cut at
    the characters of ``ifs``."""
    out: list[str] = []
    cur: str | None = None
    for text, split in segs:
        if not split or not ifs:
            cur = (cur or "") + text
            continue
        parts = re.split("[" + re.escape(ifs) + "]+", text) if text else [""]
        if len(parts) == 1:
            if text:
                cur = (cur or "") + text
            continue
        if parts[0]:
            cur = (cur or "") + parts[0]
        if cur is not None:
            out.append(cur)
        out.extend(p for p in parts[1:-1] if p)
        cur = parts[-1] or None
    if cur is not None:
        out.append(cur)
    return out


def expand_braces(fields: list[str]) -> list[str]:
    """Brace expansion of every field; a field that makes too many words becomes UNK."""
    expanded: list[str] = []
    for f in fields:
        if "{" in f:
            more = brace_expand(f)
            if more is None:
                expanded.append(UNK)
                continue
            expanded.extend(more)
        else:
            expanded.append(f)
    return expanded


def brace_expand(word: str) -> list[str] | None:
    """Brace expansion of the active (unquoted) braces; None if it makes too many words."""
    if "{" not in word or len(word) > 512 or ("," not in word and ".." not in word):
        return [word]
    out: list[str] = []
    todo = [word]
    while todo:
        if len(out) + len(todo) > 256:
            return None
        w = todo.pop()
        found = _find_brace(w)
        if found is None:
            out.append(w)
            continue
        start, end, parts = found
        todo.extend(w[:start] + p + w[end + 1:] for p in reversed(parts))
    return out


def _find_brace(w: str) -> tuple[int, int, list[str]] | None:
    """The first brace expression of ``w``: (start, end, the words it stands for)."""
    i = w.find("{")
    while i != -1:
        depth, j, commas = 0, i, []
        while j < len(w):
            c = w[j]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            elif c == "," and depth == 1:
                commas.append(j)
            j += 1
        if j < len(w) and w[j] == "}":
            if commas:
                bounds = [i] + commas + [j]
                return i, j, [w[a + 1:b] for a, b in pairwise(bounds)]
            seq = _sequence(w[i + 1:j])
            if seq is not None:
                return i, j, seq
        i = w.find("{", i + 1)
    return None


def _sequence(inner: str) -> list[str] | None:
    """The words of {1..5} or {a..e}; None if ``inner`` is not a sequence."""
    m = re.fullmatch(r"(-?\d{1,4})\.\.(-?\d{1,4})|([a-zA-Z])\.\.([a-zA-Z])", inner)
    if not m:
        return None
    if m.group(1) is not None:
        a, b = int(m.group(1)), int(m.group(2))
        step = 1 if b >= a else -1
        return [str(k) for k in range(a, b + step, step)][:300]
    a, b = ord(m.group(3)), ord(m.group(4))
    step = 1 if b >= a else -1
    return [chr(k) for k in range(a, b + step, step)]


def echo_text(args: list[str]) -> str:
    """What ``echo args`` prints."""
    escapes = False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        escapes = "e" in args[0] or escapes
        args = args[1:]
    text = " ".join(args) + "\n"
    return ansi_c(text) if escapes else text
