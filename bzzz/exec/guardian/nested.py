"""Nested text: what a command runs as bash in turn (``sh -c`` strings with ``$1``...,
``eval``, ``trap``, a script it wrote and then runs, a here-document or text piped into a
shell), checked as if it ran where the command runs; and what a shell or an interpreter reads
its program from (a file, stdin, a pipeline, a process substitution), refused when that is a
download or something the Guardian cannot see.

``Nested`` is a part of ``bzzz/exec/guardian/checker.py``'s checker: a nested text is parsed
and pushed on the walk's stack, its variables restored after it.
"""

from __future__ import annotations

import posixpath
import re

from tree_sitter import Node

from .budgets import MAX_NESTED_TEXT, MAX_NESTING, Budget
from .catalog import DECODERS, DOWNLOADERS, WRAPPERS
from .expansions import ansi_c, echo_text
from .marks import PROC_MARK, SELF_MARK, UNK, UNQUOTE, as_text, show
from .state import IO, NODE, RESTORE, Comps, Ctx, State
from .text import hidden
from .wrappers import ASSIGNMENT

_STDIN = ("/dev/stdin", "/dev/fd/0", "/proc/self/fd/0", "-")


class Nested(State):
    """Text run as bash, and where shells and interpreters read their program from (a part
    of the checker)."""

    def nested(self, text: str, ctx: Ctx, label: str, positional: list[str] | None = None,
               strict: bool = True, script: bool = False) -> None:
        """Check ``text`` as bash, as if it ran where ``ctx`` is."""
        if ctx.nest >= MAX_NESTING:
            self.refuse("commands nested too deeply")
            return
        if not text.strip():
            return
        self.nested_chars += len(text)
        if self.nested_chars > MAX_NESTED_TEXT:
            raise Budget("too much nested text to check")
        if hidden(text):
            self.refuse(f"hidden or control characters in the text {label} runs")
            return
        tree = self.parse(text)
        if tree is None:
            if strict:
                self.refuse(f"cannot parse the text {label} runs")
            return
        snap = self.snapshot()
        self.stack.append((RESTORE, snap, None))
        if positional is not None:
            self.vars = {k: v for k, v in self.vars.items() if not k.isdigit() and k != "@"}
            for k, v in enumerate(positional[:10]):
                self.vars[str(k)] = v
            if len(positional) > 1:
                self.vars["@"] = " ".join(positional[1:])
        if script:
            self.vars["0"] = SELF_MARK
        self.stack.append((NODE, tree.root_node,
                           Ctx(0, ctx.nest + 1, ctx.cond, False, None, False, False, None)))

    def shell_code(self, code: str, ctx: Ctx, label: str,
                   positional: list[str] | None = None) -> None:
        """Shell code taken from a word (an option's value, an alias, a trap)."""
        if UNK in code or code.startswith(PROC_MARK):
            self.refuse(f"{label} runs text only known at run time (command output or a "
                        f"variable): what runs would not be what was checked")
            return
        self.nested(as_text(code), ctx, label, positional)

    def run_file(self, comps: Comps, word: str, ctx: Ctx, lang: str) -> None:
        """Run a file the command wrote: its text checked, a download or opaque file refused."""
        kind, content = self.files[comps]
        shown = show(word)
        if kind == "download":
            self.refuse(f"runs {shown}, which it downloaded ({content})")
        elif kind == "opaque":
            self.refuse(f"runs {shown}, written by {content}: the script is not visible")
        elif lang == "shell" and not content.startswith("#!") or \
                re.match(r"#!\s*\S*\b(ba|da|z|k)?sh\b", content):
            if UNK in content:
                self.refuse(f"runs {shown}, a script only known at run time")
            else:
                self.nested(as_text(content), ctx, shown, script=True)
        else:
            self.scan_code(lang if lang != "shell" else "script", as_text(content), ctx,
                           shown)

    # ------------------------------------------------------------------ shells

    def shell(self, name: str, args: list[str], io: IO, ctx: Ctx) -> None:
        code_flag, reads_stdin, i = _shell_options(args)
        rest = args[i:]
        if code_flag:
            if not rest:
                return
            self.shell_code(rest[0], ctx, f"{name} -c", positional=rest[1:] or [name])
            return
        if rest and not reads_stdin:
            self.script_arg(name, rest[0], ctx, "shell", positional=rest)
            return
        self.script_stdin(name, io, ctx, "shell")

    def script_arg(self, name: str, script: str, ctx: Ctx, lang: str,
                   positional: list[str] | None = None, io: IO | None = None) -> None:
        if script.startswith(PROC_MARK):
            idx = int(script.strip(PROC_MARK).split(PROC_MARK)[0])
            node = self.procsubs[idx]
            self.producers(name, [c for c in node.named_children], ctx, lang, "runs")
            return
        if UNK in script:
            self.refuse(f"{name} runs a script only known at run time ({show(script)})")
            return
        if script in _STDIN:
            self.script_stdin(name, io or {}, ctx, lang)
            return
        comps = self.abs_comps(script)
        if comps is not None and comps in self.files:
            self.run_file(comps, script, ctx, lang)

    def script_stdin(self, name: str, io: IO, ctx: Ctx, lang: str) -> None:
        stdin = io.get("stdin")
        if stdin is not None:
            if stdin[0] == "text":
                if lang == "shell":
                    self.shell_code(stdin[1], ctx, f"the here-document given to {name}")
                else:
                    self.scan_code(lang, as_text(stdin[1]), ctx, name)
            else:
                self.script_arg(name, stdin[1], ctx, lang)
            return
        if ctx.up:
            self.producers(name, list(ctx.up), ctx, lang, "pipes")

    # ------------------------------------------------------------------ pipelines

    def producers(self, name: str, stages: list[Node], ctx: Ctx, lang: str, verb: str) -> None:
        """A shell or interpreter reads its program from the output of ``stages``."""
        progs = self.stage_programs(stages)
        if any(p in DOWNLOADERS for p, _ in progs):
            what = "pipes a download into" if verb == "pipes" else "runs a download with"
            self.refuse(f"{what} {name}")
            return
        last = self.stage_programs(stages[-1:])
        if len(last) == 1 and self.produced_text(name, last[0], ctx, lang):
            return
        shown = ", ".join(dict.fromkeys(p for p, _ in progs)) or "a command"
        if lang == "shell":
            self.refuse(f"{verb} the output of {shown} into {name}: the script is not visible"
                        if verb == "pipes" else
                        f"{name} runs the output of {shown}: the script is not visible")
        elif any(p in DECODERS for p, _ in last):
            self.refuse(f"{verb} decoded or generated text ({shown}) into {name}")

    def produced_text(self, name: str, last: tuple[str, list[str] | None], ctx: Ctx,
                      lang: str) -> bool:
        """Check the text the last stage prints, where it is known (echo, printf, cat of a
        file the command wrote); False when it is not."""
        prog, argv = last
        if prog == "echo" and argv is not None:
            text = echo_text(argv)
        elif prog == "printf" and argv:
            text = ansi_c(argv[0])
        elif prog == "cat" and argv is not None and argv and "-" not in argv:
            for f in argv:
                comps = self.abs_comps(f)
                if comps is not None and comps in self.files:
                    self.run_file(comps, f, ctx, lang)
            return True
        else:
            return False
        if lang == "shell":
            self.shell_code(text, ctx, f"the text piped into {name}")
        else:
            self.scan_code(lang, as_text(text), ctx, name)
        return True

    def stage_programs(self, stages: list[Node]) -> list[tuple[str, list[str] | None]]:
        """(program, static argv or None) of the commands in pipeline stages."""
        out: list[tuple[str, list[str] | None]] = []
        todo = list(reversed(stages))
        seen = 0
        while todo and seen < 200:
            node = todo.pop()
            seen += 1
            if node.type != "command":
                todo.extend(reversed([c for c in node.named_children]))
                continue
            if node.child_by_field_name("name") is None:
                continue
            found = _program_of(self.stage_words(node))
            if found is not None:
                out.append(found)
        return out

    def stage_words(self, node: Node) -> list[str]:
        """The words of a command node in a pipeline (assignments and redirections left out)."""
        words: list[str] = []
        for c in node.children:
            if c.type == "command_name":
                words.extend(self.fields(c.children[0] if c.child_count else c))
            elif c.is_named and c.type not in ("variable_assignment", "file_redirect",
                                               "herestring_redirect"):
                words.extend(self.fields(c))
        return words


def _shell_options(args: list[str]) -> tuple[bool, bool, int]:
    """(-c given, reads its script from stdin, index past the options) of a shell's args."""
    i, n = 0, len(args)
    code_flag = reads_stdin = False
    while i < n:
        a = args[i]
        if a == "--" or a == "-":
            i += 1
            reads_stdin = reads_stdin or a == "-"
            break
        if a in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if a.startswith("--"):
            i += 1
            continue
        if a[:1] in "-+" and len(a) > 1:
            if "c" in a[1:]:
                code_flag = True
            if "s" in a[1:]:
                reads_stdin = True
            i += 1
            continue
        break
    return code_flag, reads_stdin, i


def _program_of(words: list[str]) -> tuple[str, list[str] | None] | None:
    """(program, static argv or None) of a command's words, wrappers skipped."""
    if not words:
        return None
    k = 0
    while k < len(words) and posixpath.basename(words[k]) in WRAPPERS:
        k += 1
        while k < len(words) and (words[k].startswith("-") or ASSIGNMENT.match(words[k]) or
                                  re.fullmatch(r"[\d.]+[smhd]?", words[k])):
            k += 1
    if k >= len(words):
        return None
    prog = posixpath.basename(words[k].translate(UNQUOTE))
    argv = words[k + 1:]
    return prog, None if any(UNK in a for a in argv) else [a.translate(UNQUOTE) for a in argv]
