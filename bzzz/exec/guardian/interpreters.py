"""Interpreters (python, perl, ruby, node, php, lua, awk, pwsh...): where their code comes
from (an option, a script file, stdin, a pipe), and a scan of that code for obvious patterns.
The code is not parsed: shell-outs have their string literals checked as commands, literal
paths outside the workspace are refused for deletes and writes, code built at run time is
refused.

``Interpreters`` is a part of ``bzzz/exec/guardian/checker.py``'s checker.
"""

from __future__ import annotations

import re

from .budgets import MAX_COMMAND
from .marks import HOME_DIR, UNK
from .paths import DISK_DEVICE
from .state import IO, Ctx, State

# interpreters: name pattern -> (language, options with inline code, options taking a value)
_INTERPRETERS = [
    (re.compile(r"(?:python|pypy)[0-9.]*"), "python", "c", "WXm"),
    (re.compile(r"perl[0-9.]*"), "perl", "eE", "IMmxCdD"),
    (re.compile(r"ruby[0-9.]*|jruby|irb"), "ruby", "e", "IrCEF"),
    (re.compile(r"node(?:js)?[0-9.]*|bun|deno|qjs"), "node", "ep", "r"),
    (re.compile(r"php[0-9.]*"), "php", "rR", "dc"),
    (re.compile(r"lua(?:jit)?[0-9.]*"), "lua", "e", "l"),
    (re.compile(r"Rscript|julia|osascript|expect|tclsh[0-9.]*|wish"), "script", "ec", ""),
    (re.compile(r"pwsh|powershell(?:\.exe)?"), "pwsh", "c", ""),
    (re.compile(r"[gmn]?awk|busybox-awk"), "awk", "", "vfF"),
]
_LONG_CODE = {"--eval", "--print", "--command", "-Command", "-command"}
_STR = re.compile(r"'((?:[^'\\\n]|\\.)*)'|\"((?:[^\"\\\n]|\\.)*)\"")
_CODEGEN = re.compile(r"\b(?:exec|eval|compile|__import__|getattr|globals|b64decode|b32decode|"
                      r"a85decode|fromhex|unhexlify|decompress|fromCharCode|atob|Function|"
                      r"pack|unpack|codecs|marshal|pickle|instance_eval|class_eval|"
                      r"create_function|assert)\b|\\x[0-9a-fA-F]{2}|\bchr\s*\(")
_SHELLOUT = re.compile(r"\b(?:system|popen|Popen|spawn\w*|exec[lv]p?e?|execSync|execFile\w*|"
                       r"check_output|check_call|getoutput|getstatusoutput|shell_exec|passthru|"
                       r"proc_open|pcntl_exec|Open3|child_process|subprocess|pty|qx|readpipe|"
                       r"IO\.popen|Runtime|ProcessBuilder|os\.execute|io\.popen)\b|`|%x[({\[]")
_AWK_SHELLOUT = re.compile(r"\bsystem\s*\(|\|\s*getline|\|\s*\"|\|&")
_DESTROY = re.compile(r"\b(?:rmtree|remove|unlink|rmdir|removedirs|rm_rf|rm_r|rmSync|rm|"
                      r"unlinkSync|rmdirSync|truncate|delete|deleteSync|rimraf|shred)\b")
_WRITE = re.compile(r"open\s*\([^)]*['\"][wax+]|write_text|write_bytes|writeFile|appendFile|"
                    r"File\.write|IO\.write|file_put_contents|fopen|>>?\s*['\"]?/|copyfile|"
                    r"copy2?|copytree|move|rename|chmod|chown|symlink|\blink\b|mkdir|makedirs|"
                    r"touch|writeSync|createWriteStream")
_PRIV = re.compile(r"\bset(?:e|re)?[ug]id\b|\bsudo\b|\bsetcap\b|\bchroot\b")
_FORK = re.compile(r"\bfork\b")
_SOCKET = re.compile(r"\bsocket\b|TCPSocket|\bnet\.connect|IO::Socket|fsockopen")
_REVSHELL = re.compile(r"\bdup2?\b|\bpty\b|/bin/(?:ba)?sh|\bsubprocess\b|spawn|\bexec\b")


def interpreter_for(name: str) -> tuple[str, str, str] | None:
    """(language, options with inline code, options taking a value) of an interpreter."""
    for pattern, lang, code_opts, value_opts in _INTERPRETERS:
        if pattern.fullmatch(name):
            return lang, code_opts, value_opts
    return None


def _awk_args(args: list[str]) -> tuple[str | None, str | None]:
    """(inline program, -f script) of awk's arguments."""
    i, n = 0, len(args)
    code = script = None
    while i < n:
        a = args[i]
        if a == "--":
            i += 1
            break
        if a in ("-f", "--file"):
            script = args[i + 1] if i + 1 < n else None
            i += 2
            break
        if a.startswith("-") and len(a) > 1:
            i += 2 if a in ("-v", "-F") else 1
            continue
        break
    if script is None and i < n:
        code = args[i]
    return code, script


def _short_options(letters: str, code_opts: str, value_opts: str,
                   lang: str) -> tuple[int, str | None, bool, bool]:
    """One cluster of short options (``-Wc``...): (what it consumes, 0 unknown / 1 / 2
    words, inline code or None, whether it runs a module)."""
    for k, ch in enumerate(letters):
        if ch in code_opts:
            return (1 if letters[k + 1:] else 2), letters[k + 1:] or None, False, True
        if ch in value_opts:
            return (1 if letters[k + 1:] else 2), None, ch == "m" and lang == "python", False
    return 0, None, False, False


def _interpreter_args(name: str, lang: str, code_opts: str, value_opts: str,
                      args: list[str]) -> tuple[str | None, str | None, bool, int]:
    """(inline code, script, runs a module, index past the options) of an interpreter's
    arguments."""
    i, n = 0, len(args)
    code: str | None = None
    script: str | None = None
    module = False
    while i < n:
        a = args[i]
        if a == "--":
            i += 1
            break
        if a in _LONG_CODE or (a.startswith("--eval=") or a.startswith("--print=")):
            code = a.split("=", 1)[1] if "=" in a else (args[i + 1] if i + 1 < n else "")
            i += 1 if "=" in a else 2
            break
        if name == "deno" and a == "eval":
            code = args[i + 1] if i + 1 < n else ""
            break
        if a.startswith("--"):
            i += 1
            continue
        if a == "-":
            script = "-"
            i += 1
            break
        if a.startswith("-") and len(a) > 1:
            used, inline, module, has_code = _short_options(a[1:], code_opts, value_opts, lang)
            if has_code:
                code = inline if inline is not None else (args[i + 1] if i + 1 < n else "")
            i += used or 1
            if code is not None or module:
                break
            continue
        script = a
        i += 1
        break
    return code, script, module, i


def _string_literals(code: str) -> list[str]:
    """The quoted strings of some code, unescaped (at most about 200)."""
    literals = []
    for m in _STR.finditer(code):
        lit = m.group(1) if m.group(1) is not None else m.group(2)
        literals.append(lit.replace("\\'", "'").replace('\\"', '"').replace("\\n", "\n")
                        .replace("\\\\", "\\"))
        if len(literals) > 200:
            break
    return literals


class Interpreters(State):
    """Interpreters and the scan of their code (a part of the checker)."""

    def interpreter(self, name: str, lang: str, code_opts: str, value_opts: str,
                    args: list[str], io: IO, ctx: Ctx) -> None:
        if lang == "awk":
            code, script = _awk_args(args)
            if code is not None:
                self.scan_code("awk", code, ctx, name)
            elif script is not None:
                self.script_arg(name, script, ctx, lang)
            return
        code, script, module, i = _interpreter_args(name, lang, code_opts, value_opts, args)
        if code is not None:
            if lang == "perl":
                self.perl_in_place(args, i)
            self.notes.append(f"{name}: inline code is checked only for obvious patterns")
            self.scan_code(lang, code, ctx, name)
            return
        if module:
            return
        if script is not None and script != "-":
            self.script_arg(name, script, ctx, lang)
            return
        self.script_stdin(name, io, ctx, lang)

    def perl_in_place(self, args: list[str], i: int) -> None:
        """``perl -i -e ... files``: the files are written."""
        files = [a for a in args[i:] if not a.startswith("-")]
        if "-i" in "".join(x[:2] for x in args[:i]) or any(
                x.startswith("-") and not x.startswith("--") and "i" in x for x in args[:i]):
            for f in files:
                self.check_write(f, "perl -i")

    def scan_code(self, lang: str, code: str, ctx: Ctx, who: str) -> None:
        """Obvious patterns in an interpreter's code (it is not parsed)."""
        if UNK in code:
            self.refuse(f"{who} runs code only known at run time")
            return
        if len(code) > MAX_COMMAND:
            self.refuse(f"{who}: inline code too long to check")
            return
        literals = _string_literals(code)
        if lang != "awk" and _CODEGEN.search(code):
            self.refuse(f"{who} code builds code at run time (exec/eval/decoding): what runs "
                        f"would not be what was checked")
        if lang == "awk" and re.search(r"\|\s*\"\s*(?:\S*/)?(?:ba|da|z|k)?sh\b", code):
            self.refuse(f"{who} pipes text into a shell")
        shellout = (_AWK_SHELLOUT if lang == "awk" else _SHELLOUT).search(code)
        if shellout and not (lang == "node" and shellout.group() == "`"):
            if not literals:
                self.refuse(f"{who} code runs a command the Guardian cannot see")
            for lit in literals + [" ".join(literals)]:
                self.nested(lit, ctx, f"{who} code", strict=False)
        self.scan_paths(code, literals, who)
        if _PRIV.search(code):
            self.refuse(f"privilege escalation in {who} code")
        if _FORK.search(code):
            self.refuse(f"{who} code forks (a fork bomb?)")
        if _SOCKET.search(code) and _REVSHELL.search(code):
            self.refuse(f"{who} code connects a shell to the network (a reverse shell?)")

    def scan_paths(self, code: str, literals: list[str], who: str) -> None:
        """Literal paths in code that deletes, writes or reads."""
        paths = [lit for lit in literals if lit.startswith(("/", "~", "..")) and "\n" not in lit]
        if _DESTROY.search(code):
            for p in paths:
                p2 = HOME_DIR + p[1:] if p.startswith("~") else p
                if self.where(p2, False).kind not in ("ws", "scratch", "safe"):
                    self.refuse(f"{who} code deletes {p} (outside the workspace)")
        if _WRITE.search(code):
            for p in paths:
                p2 = HOME_DIR + p[1:] if p.startswith("~") else p
                if self.where(p2).kind not in ("ws", "scratch", "safe", "fd"):
                    self.refuse(f"{who} code writes to {p} (outside the workspace)")
        for p in paths:
            p2 = HOME_DIR + p[1:] if p.startswith("~") else p
            s = self.secret(p2)
            if s:
                self.refuse(f"{who} code reads secrets ({p})")
            elif DISK_DEVICE.match(p2):
                self.refuse(f"{who} code opens a disk device ({p})")
