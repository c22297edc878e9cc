"""Words: what a word of the command expands to, the way bash would expand it where the
value is known (quoting, variables, ``${x:-y}``, ``$IFS`` splitting, braces, ``~``, a few
well-known ``$(...)``), and the variables assignments set.

``Words`` is a part of ``bzzz/exec/guardian/checker.py``'s checker: it reads and sets
``vars``, reads ``cwds``/``oldcwds``, ``ws`` and ``places``, and records process
substitutions in ``procsubs``. The expansions of static text are in
``bzzz/exec/guardian/expansions.py``.
"""

from __future__ import annotations

import re

from tree_sitter import Node

from ...errors import ExecError
from .budgets import MAX_ALTERNATIVES, MAX_VALUE
from .catalog import ENV_CODE, ENV_FORBIDDEN
from .expansions import (ansi_c, arith, expand_braces, split_fields, unescape,
                         unescape_double)
from .marks import HOME_DIR, PPID_MARK, PROC_MARK, QUOTE_ALL, QUOTE_BRACES, UNK, UNQUOTE
from .state import Ctx, State, Value
from .syntax import node_bytes, node_str

Segment = tuple[str, bool]  # a piece of a word: (its text, split at $IFS)

# what the sandbox gives every command: known values of variables nobody assigned
_GIVEN = {"TMPDIR": "/tmp", "IFS": " \t\n", "$": "4242", "BASHPID": "4242", "?": "0",
          "0": "bash", "CI": "true", "PATH": "/usr/local/bin:/usr/bin:/bin"}
_KNOWN_NAMES = ("PWD", "HOME", "BZZZ_WORKSPACE", "TMPDIR", "IFS", "CI", "PATH", "0", "$", "?")


class Words(State):
    """Word expansion and variables (a part of the checker)."""

    # ------------------------------------------------------------------ variables

    def var(self, name: str) -> Value:
        """A variable's value: str (may hold UNK) or a tuple of alternatives."""
        v = self.vars.get(name)
        if v is not None:
            return v
        if name == "PPID":
            return PPID_MARK
        if name == "PWD":
            return next(iter(self.cwds)) or UNK if len(self.cwds) == 1 else UNK
        if name == "OLDPWD":
            return next(iter(self.oldcwds)) or UNK if len(self.oldcwds) == 1 else UNK
        if name == "HOME":
            return HOME_DIR
        if name == "BZZZ_WORKSPACE":
            return self.ws
        if name in self.places:
            return self.places[name]
        return _GIVEN.get(name, UNK)

    def one_value(self, name: str) -> str:
        """A variable used where it must have one value (``~+``, ``~-``, ``$(pwd)``: the
        command's variants do not cover it). One with several (``for PWD in ...``) is not
        judged: the check stops, and the command is refused."""
        value = self.var(name)
        if isinstance(value, tuple):
            raise ExecError(f"${name} has several values where it is used as one")
        return value

    def known(self, name: str) -> bool:
        return name in self.vars or name in self.places or name in _KNOWN_NAMES

    def assign(self, name: str, value: str, ctx: Ctx, append: bool = False) -> None:
        if name in ENV_FORBIDDEN:
            self.refuse(f"sets {name} ({ENV_FORBIDDEN[name]})")
        if len(value) > MAX_VALUE:
            value = UNK
        if append:
            old = self.vars.get(name, "")
            old = old[0] if isinstance(old, tuple) else old
            value = old + value
        if ctx.cond or ctx.loop:
            old = self.vars.get(name, UNK if not self.known(name) else self.var(name))
            alts = list(old) if isinstance(old, tuple) else [old]
            if value not in alts:
                alts.append(value)
            self.vars[name] = tuple(alts[:MAX_ALTERNATIVES]) if len(alts) > 1 else alts[0]
        else:
            self.vars[name] = value
        if name in ENV_CODE and value and UNK not in value:
            self.nested(value, ctx, f"${name}", strict=False)

    def assignment(self, node: Node, ctx: Ctx) -> None:
        name_node = node.child_by_field_name("name")
        if name_node is None:
            return
        name = node_str(name_node)
        if name_node.type == "subscript":
            n2 = name_node.child_by_field_name("name")
            name = node_str(n2) if n2 else name
        value_node = node.child_by_field_name("value")
        value = self.fields(value_node, assignment=True)[0] if value_node is not None else ""
        append = any(c.type == "+=" for c in node.children)
        self.assign(name, value.translate(UNQUOTE), ctx, append)

    # ------------------------------------------------------------------ words

    def fields(self, node: Node, assignment: bool = False) -> list[str]:
        """The words ``node`` expands to (one alternative of every variable)."""
        segs: list[Segment] = []
        self.segments(node, False, segs, 0, True)
        if assignment:
            return ["".join(s for s, _ in segs)]
        if len(segs) == 1 and not segs[0][1] and "{" not in segs[0][0]:
            return [segs[0][0]]  # the common case: one piece, nothing to split or expand
        ifs = self.var("IFS")
        ifs = ifs if isinstance(ifs, str) and UNK not in ifs else " \t\n"
        ifs = ifs.translate(QUOTE_BRACES)
        return expand_braces(split_fields(segs, ifs))

    def segments(self, node: Node, quoted: bool, out: list[Segment], depth: int,
                 first: bool) -> None:
        """Append (text, splittable) pieces of a word. Recursion is bounded by ``depth``."""
        if depth > 24:
            out.append((UNK, False))
            return
        t = node.type
        if t == "word" or t == "number":
            text = node_str(node)
            if quoted:
                out.append((text.translate(QUOTE_ALL), False))
            elif first and text.startswith("~"):
                self.tilde_segments(text, out)
            else:
                out.append((unescape(text), False))
        elif t == "raw_string":
            out.append((node_str(node)[1:-1].translate(QUOTE_ALL), False))
        elif t == "ansi_c_string":
            out.append((ansi_c(node_str(node)[2:-1]).translate(QUOTE_ALL), False))
        elif t in ("string", "translated_string"):
            out.append(("", False))  # "" is a word even when empty
            for c in node.children:
                if c.is_named:
                    self.segments(c, True, out, depth + 1, False)
        elif t == "string_content":
            out.append((unescape_double(node_str(node)).translate(QUOTE_ALL), False))
        elif t == "concatenation":
            for i, c in enumerate(node.children):
                self.segments(c, quoted, out, depth + 1, first and i == 0)
        elif t in ("simple_expansion", "expansion"):
            self.expansion_segment(node, quoted, out, depth)
        else:
            self.other_segment(node, quoted, out, depth)

    def other_segment(self, node: Node, quoted: bool, out: list[Segment], depth: int) -> None:
        """Substitutions, arithmetic, arrays; anything else as its own text."""
        t = node.type
        if t == "command_substitution":
            value = self.substitution(node)
            out.append((value.translate(QUOTE_ALL), not quoted and value == UNK))
        elif t == "process_substitution":
            self.procsubs.append(node)
            out.append((PROC_MARK + str(len(self.procsubs) - 1) + PROC_MARK, False))
        elif t == "arithmetic_expansion":
            inner = node_str(node)
            inner = inner[3:-2] if inner.startswith("$((") else inner[2:-1]
            out.append((arith(inner), False))
        elif t == "array":
            parts = []
            for c in node.children:
                if c.is_named:
                    sub: list[Segment] = []
                    self.segments(c, quoted, sub, depth + 1, True)
                    parts.append("".join(s for s, _ in sub))
            out.append((" ".join(parts), not quoted))
        else:
            out.append((node_str(node), False))

    def tilde_segments(self, text: str, out: list[Segment]) -> None:
        """A bare word that starts with ``~``: the directory it stands for, then the rest."""
        head, sep, rest = text.partition("/")
        home = self.tilde(head)
        if home is not None:
            out.append((home.translate(QUOTE_ALL), False))
            text = sep + rest
        out.append((unescape(text), False))

    def tilde(self, head: str) -> str | None:
        """What ``~``, ``~+``, ``~-`` or ``~user`` stands for; None if it is not one."""
        if head == "~":
            return HOME_DIR
        if head == "~+":
            return self.one_value("PWD")
        if head == "~-":
            return self.one_value("OLDPWD")
        if re.fullmatch(r"~[A-Za-z0-9_.-]+", head):
            return "/home/" + head[1:]
        return None

    def expansion_segment(self, node: Node, quoted: bool, out: list[Segment],
                          depth: int) -> None:
        value = self.expansion(node, depth)
        if isinstance(value, tuple):
            value = value[0]
        if quoted and not (node.type == "expansion" and re.search(rb"\[[@*]\]", node_bytes(node))):
            out.append((value.translate(QUOTE_ALL), False))
        else:
            out.append((value.translate(QUOTE_BRACES), True))

    def expansion(self, node: Node, depth: int) -> Value:
        """The value of $x or ${x...}: str, a tuple of alternatives, or UNK."""
        kids = [c for c in node.children if c.type not in ("$", "${", "}")]
        if not kids:
            return "$"
        name_node = kids[0]
        if name_node.type == "subscript":
            name_node = name_node.child_by_field_name("name") or name_node
        if name_node.type not in ("variable_name", "special_variable_name"):
            return UNK  # ${#x}, ${!x}: lengths, indirection
        name = node_str(name_node)
        rest = kids[1:]
        if not rest:
            return self.var(name)
        op = node_str(rest[0])
        arg = rest[1] if len(rest) > 1 else None
        if op in (":-", "-", ":=", "="):
            if self.known(name):
                value = self.var(name)
                if not (op.startswith(":") and value == ""):
                    return value
            return "" if arg is None else self.quoted_value(arg, depth)
        if op in (":+", "+"):
            if not self.known(name):
                return UNK
            value = self.var(name)
            if value == "" or arg is None:
                return ""
            return self.quoted_value(arg, depth)
        return UNK

    def quoted_value(self, node: Node, depth: int) -> str:
        sub: list[Segment] = []
        self.segments(node, True, sub, depth + 1, True)
        return "".join(s for s, _ in sub).translate(UNQUOTE)

    def substitution(self, node: Node) -> str:
        """The value of a few well-known $(...); UNK for the rest."""
        body = [c for c in node.named_children]
        if len(body) != 1 or body[0].type != "command":
            return UNK
        words = [node_str(c) for c in body[0].named_children]
        if not words:
            return UNK
        prog = words[0]
        if prog == "pwd":
            return self.one_value("PWD")
        if prog == "nproc" or words[:2] == ["getconf", "_NPROCESSORS_ONLN"]:
            return "4"
        if prog == "mktemp":
            return "/tmp/tmp.mktemp"
        if words[:3] == ["git", "rev-parse", "--show-toplevel"]:
            return self.ws
        if prog in ("whoami", "id") or prog == "date" or prog == "uname":
            return "x"
        return UNK

    def heredoc_text(self, r: Node) -> str:
        """The text a here-document gives (expanded unless its delimiter is quoted)."""
        body = next((c for c in r.children if c.type == "heredoc_body"), None)
        if body is None:
            return ""
        start = next((c for c in r.children if c.type == "heredoc_start"), None)
        raw = node_str(body)
        quoted = start is not None and re.search(rb"['\"\\]", node_bytes(start)) is not None
        if quoted or body.named_child_count == 0:
            return raw
        pieces: list[str] = []
        pos = base = body.start_byte
        src = node_bytes(body)
        for c in body.named_children:
            pieces.append(src[pos - base:c.start_byte - base].decode("utf-8", "surrogatepass"))
            if c.type == "heredoc_content":
                pieces.append(node_str(c))
            else:
                segs: list[Segment] = []
                self.segments(c, True, segs, 0, False)
                pieces.append("".join(s for s, _ in segs).translate(UNQUOTE))
            pos = c.end_byte
        pieces.append(src[pos - base:].decode("utf-8", "surrogatepass"))
        return "".join(pieces)
