"""A simple command: its words expanded (once for every alternative of the variables it
uses), its redirections, the wrappers around it peeled off, the program it runs found
(through links, copies and files the command wrote), and that program's rules applied.

``Commands`` is a part of ``bzzz/exec/guardian/checker.py``'s checker. The wrappers are in
``bzzz/exec/guardian/wrappers.py``, the rules by program in
``bzzz/exec/guardian/programs.py``, shells and interpreters in
``bzzz/exec/guardian/nested.py`` and ``bzzz/exec/guardian/interpreters.py``.
"""

from __future__ import annotations

import fnmatch
import posixpath

from tree_sitter import Node

from .budgets import MAX_ALTERNATIVES, MAX_SIMPLE, MAX_WORDS, Budget
from .catalog import DISK_TOOLS, DOWNLOADERS, ENV_CODE, ENV_FORBIDDEN, NOOP_BUILTINS, SHELLS, \
    WRAPPERS, category
from .expansions import ansi_c, echo_text
from .interpreters import interpreter_for
from .marks import GLOB, PROC_MARK, SELF_MARK, UNK, UNQUOTE, show
from .paths import DISK_DEVICE
from .programs import KNOWN, PROGRAM_RULES
from .state import IO, Ctx, Cwds, State
from .syntax import node_bytes, node_str
from .wrappers import unwrap

_REDIRECTS = ("file_redirect", "herestring_redirect", "heredoc_redirect")


class Commands(State):
    """Simple commands and the programs they run (a part of the checker)."""

    # ------------------------------------------------------------------ words and redirections

    def command(self, node: Node, ctx: Ctx) -> None:
        prefix, words, redirects = self.command_parts(node)
        if prefix:
            self.prefix_assignments(prefix, ctx)
        for env in self.variants(node):
            saved = self.vars
            if env:
                self.vars = {**saved, **env}
            try:
                argv: list[str] = []
                for w in words:
                    argv.extend(self.fields(w))
                    if len(argv) > MAX_WORDS:
                        raise Budget("too many words in one command")
                io = self.io(redirects)
            finally:
                if env:
                    self.vars = saved
            if argv:
                self.simple(argv, io, ctx)

    @staticmethod
    def command_parts(node: Node) -> tuple[list[Node], list[Node], list[Node]]:
        """(assignments before it, its words, its redirections) of a command node."""
        prefix: list[Node] = []
        words: list[Node] = []
        redirects: list[Node] = []
        for c in node.children:
            t = c.type
            if t == "variable_assignment":
                prefix.append(c)
            elif t in _REDIRECTS:
                redirects.append(c)
            elif t == "command_name":
                words.append(c.children[0] if c.child_count else c)
            elif c.is_named and t != "comment":
                words.append(c)
        parent = node.parent
        if parent is not None and parent.type == "redirected_statement":
            redirects.extend(c for c in parent.children if c.type in _REDIRECTS)
        return prefix, words, redirects

    def prefix_assignments(self, prefix: list[Node], ctx: Ctx) -> None:
        """``X=... cmd``: the variables that change every program, or carry code."""
        for a in prefix:
            n = a.child_by_field_name("name")
            name = node_str(n) if n is not None else ""
            if name in ENV_FORBIDDEN:
                self.refuse(f"sets {name} ({ENV_FORBIDDEN[name]})")
            elif name in ENV_CODE:
                v = a.child_by_field_name("value")
                if v is not None:
                    val = self.fields(v, assignment=True)[0]
                    if UNK not in val:
                        self.nested(val.translate(UNQUOTE), ctx, f"${name}", strict=False)

    def variants(self, node: Node) -> list[dict[str, str]]:
        """One environment for every combination of the alternatives the command uses."""
        multi = [k for k, v in self.vars.items() if isinstance(v, tuple)]
        if not multi:
            return [{}]
        text = node_bytes(node)
        used = [k for k in multi if ("$" + k).encode() in text or ("${" + k).encode() in text]
        envs: list[dict[str, str]] = [{}]
        for k in used:
            envs = [{**e, k: alt} for e in envs for alt in self.vars[k]][:MAX_ALTERNATIVES]
        return envs

    def io(self, redirects: list[Node]) -> IO:
        io: IO = {}
        for r in redirects:
            t = r.type
            if t == "herestring_redirect":
                kids = [c for c in r.children if c.is_named]
                if kids:
                    io["stdin"] = ("text", " ".join(self.fields(kids[-1])) + "\n")
            elif t == "heredoc_redirect":
                io["stdin"] = ("text", self.heredoc_text(r))
                for c in r.children:
                    if c.type == "file_redirect":
                        self.io_file(c, io)
            elif t == "file_redirect":
                self.io_file(r, io)
        return io

    def io_file(self, r: Node, io: IO) -> None:
        desc: str | None = None
        op: str | None = None
        dest = r.child_by_field_name("destination")
        for c in r.children:
            if c.type == "file_descriptor":
                desc = node_bytes(c).decode()
            elif not c.is_named and op is None:
                op = c.type
        if dest is None or op is None:
            return
        found = self.fields(dest)
        target = found[0] if found else ""
        if op == "<" and desc in (None, "0"):
            io["stdin"] = ("file", target)
        elif op in (">", ">>", ">|", "&>", "&>>") and desc in (None, "1"):
            io["stdout"] = (target, op in (">>", "&>>"))
        elif op == ">&" and dest.type != "number" and target != "-" and desc in (None, "1"):
            io["stdout"] = (target, False)

    # ------------------------------------------------------------------ the program

    def simple(self, argv: list[str], io: IO, ctx: Ctx) -> None:
        self.simples += 1
        if self.simples > MAX_SIMPLE:
            raise Budget("too many commands to check (over %d)" % MAX_SIMPLE)
        if len(self.commands) < 256:
            self.commands.append([show(a) for a in argv])
        i = 0
        cwds_saved: Cwds | None = None
        for _ in range(64):
            if i >= len(argv):
                return
            word = argv[i]
            if UNK in word or word.startswith(PROC_MARK):
                if word == UNK and i == len(argv) - 1 and i > 0:
                    return  # `exec $x`-like with nothing known: refused below by the wrapper
                self.refuse(f"the program's name is only known at run time ({show(word)})")
                return
            name = posixpath.basename(word.translate(UNQUOTE)) or word
            name = self.hashed.get(name, name)
            if name in WRAPPERS:
                j = unwrap(self, name, argv, i, io, ctx)
                if j is None:
                    return
                if isinstance(j, tuple):  # env: (where the command starts, its -C)
                    j, cwd = j
                    if cwd is not None:
                        cwds_saved = cwds_saved or self.cwds
                        self.cd_to(cwd, ctx)
                i = j
                continue
            break
        else:
            self.refuse("wrappers nested too deeply")
            return
        try:
            self.program(argv[i], argv[i + 1:], io, ctx)
        finally:
            if cwds_saved is not None:
                self.cwds = cwds_saved

    def program(self, word: str, args: list[str], io: IO, ctx: Ctx) -> None:
        raw = word.translate(UNQUOTE)
        name = posixpath.basename(raw) or raw
        name = self.hashed.get(name, name)
        if any(ord(ch) > 127 for ch in name):
            self.refuse(f"non-ASCII program name {name!r} (look-alike?)")
            return
        if "/" in raw or word.startswith(SELF_MARK):
            if word.startswith(SELF_MARK):
                if ctx.spawn:
                    self.refuse("fork bomb (the script starts itself in a pipeline or the "
                                "background)")
                return
            name = self.program_at(word, name, ctx)
        if GLOB.search(name):
            self.pattern_program(word, name, args, io, ctx)
            return
        self.rules(name, args, io, ctx, word)

    def program_at(self, word: str, name: str, ctx: Ctx) -> str:
        """The program a path runs: a copy or link of a known one, a script the command
        wrote (checked here), or the file's own name outside the workspace."""
        link = self.where(word, follow_last=False).comps
        w = self.where(word)
        comps = w.comps if w.kind != "unknown" else None
        if link is not None and link in self.programs:
            name = self.programs[link]
        elif comps is not None:
            if comps in self.programs:
                name = self.programs[comps]
            elif comps in self.files:
                self.run_file(comps, word, ctx, "shell")
            elif w.kind != "ws" and comps:
                name = comps[-1]
        return name

    def pattern_program(self, word: str, name: str, args: list[str], io: IO,
                        ctx: Ctx) -> None:
        """A program named by a glob: the rules of every known program it may match."""
        names = [n for n in KNOWN if fnmatch.fnmatchcase(n, name)]
        if self.policy.allow is not None:
            self.refuse(f"the program's name is a pattern ({show(word)})")
        for n in names[:8]:
            before = len(self.reasons)
            self.rules(n, args, io, ctx, word)
            for k in range(before, len(self.reasons)):
                self.reasons[k] = f"the pattern {show(word)} may run {n}: {self.reasons[k]}"

    def rules(self, name: str, args: list[str], io: IO, ctx: Ctx, word: str) -> None:
        policy = self.policy
        if policy.allow is not None and name not in policy.allow and name not in NOOP_BUILTINS:
            self.refuse(f"{name} is not on the allow list")
        if ctx.func is not None:
            self.functions.setdefault(ctx.func, []).append((name, ctx.spawn))
        self.check_arguments(name, args)
        stdin = io.get("stdin")
        if stdin and stdin[0] == "file":
            self.check_read(stdin[1], name)
        out = io.get("stdout")
        if out:
            self.track_output(name, args, out, stdin)
        handler = PROGRAM_RULES.get(name)
        if handler is not None:
            handler(self, name, args, io, ctx)
        reason = category(name, args)
        if reason:
            self.refuse(reason)
        if name in SHELLS:
            self.shell(name, args, io, ctx)
            return
        found = interpreter_for(name)
        if found is not None:
            lang, code_opts, value_opts = found
            self.interpreter(name, lang, code_opts, value_opts, args, io, ctx)

    def check_arguments(self, name: str, args: list[str]) -> None:
        """Paths in any program's arguments: secrets, network devices, disks."""
        for a in args:
            if "/" in a or a.startswith(("~", UNK)):
                val = a.split("=", 1)[1] if a.startswith("-") and "=" in a else a
                s = self.secret(val) if "/" in val else None
                if s:
                    self.refuse(f"reads secrets ({s})")
                elif "/dev/tcp/" in val or "/dev/udp/" in val:
                    self.refuse(f"opens a network connection through {show(val)}")
                elif DISK_DEVICE.match(val) and name != "dd" and not (
                        name in DISK_TOOLS or name.startswith(("mkfs", "mke2fs", "mkswap"))):
                    self.refuse(f"{name} uses a disk device ({show(val)})")

    # ------------------------------------------------------------------ output tracking

    def track_output(self, name: str, args: list[str], out: tuple[str, bool],
                     stdin: tuple[str, str] | None) -> None:
        """Remember what a redirection wrote: known text, a download, or something opaque."""
        target, append = out
        comps = self.abs_comps(target)
        if comps is None:
            return
        if name in DOWNLOADERS and name not in ("ssh", "openssl"):
            self.files[comps] = ("download", name)
            return
        text = None
        if name == "echo":
            text = echo_text(args)
        elif name == "printf" and args:
            text = ansi_c(args[0]) if UNK not in args[0] else None
        elif name == "cat" and not [a for a in args if a != "-"] and stdin and \
                stdin[0] == "text":
            text = stdin[1]
        if text is None:
            self.files[comps] = ("opaque", name)
        elif append and comps in self.files:
            kind, old = self.files[comps]
            self.files[comps] = ("text", old + text) if kind == "text" else (kind, old)
        else:
            self.files[comps] = ("text", text)
