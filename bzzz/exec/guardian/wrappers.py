"""Wrappers: programs that run another (``env``, ``nohup``, ``timeout``, ``command``,
``exec``, ``nice``, ``busybox``, ``flock``, ``watch``, ``sudo``...), as a table from the
wrapper's name to the function that finds where the wrapped command starts.

Each function takes the checker (``bzzz/exec/guardian/checker.py``), the wrapper's name, the
words, the wrapper's index, the redirections and the context; it returns the index of the
command the wrapper runs, or None when it runs none (or the command was checked here).
``env`` returns (index, the directory it changes to, or None).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .catalog import ENV_CODE, ENV_FORBIDDEN
from .marks import as_text
from .state import IO, Ctx, State

# where the wrapped command starts (env: and the directory it changes to), or None
Start = int | tuple[int, str | None] | None
Unwrapper = Callable[[State, str, list[str], int, IO, Ctx], Start]

ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# options of the plain wrappers that take a value
_TAKES: dict[str, set[str]] = {
    "nice": {"-n", "--adjustment"}, "ionice": {"-c", "-n", "-p", "-P", "-u"},
    "chrt": set(), "taskset": {"-c", "--cpu-list"}, "stdbuf": {"-i", "-o", "-e"},
    "time": {"-f", "-o", "--format", "--output"},
    "strace": {"-o", "-e", "-p", "-s", "-u", "-E", "-a", "-b", "-I", "-O", "-P", "-S", "-X"},
    "ltrace": {"-o", "-e", "-p", "-s", "-u", "-a", "-n", "-l", "-A", "-D"},
    "timeout": {"-s", "-k", "--signal", "--kill-after"},
    "xvfb-run": {"-n", "-s", "-f", "-e", "-p", "--server-args", "--server-num"}}
_PLAIN = ("nice", "ionice", "chrt", "taskset", "stdbuf", "time", "strace", "ltrace", "timeout",
          "setsid", "nohup", "unbuffer", "chronic", "caffeinate", "xvfb-run",
          "dbus-run-session", "fakeroot", "catchsegv", "nocache", "builtin", "coproc")


def unwrap(chk: State, name: str, argv: list[str], i: int, io: IO, ctx: Ctx) -> Start:
    """Index of the command a wrapper runs; None when it runs none (or it was checked)."""
    how = UNWRAPPERS.get(name)
    if how is None:
        return i + 1
    return how(chk, name, argv, i, io, ctx)


def _escalation(chk: State, name: str, argv: list[str], i: int, io: IO, ctx: Ctx) -> int | None:
    n, j = len(argv), i + 1
    chk.refuse(f"privilege escalation ({name})")
    while j < n and argv[j].startswith("-"):
        if argv[j] in ("-u", "-g", "-C", "-p", "-r", "-t", "-U", "-h", "-D", "-R"):
            j += 1
        j += 1
    return j


def _env(chk: State, name: str, argv: list[str], i: int, io: IO,
         ctx: Ctx) -> tuple[int, str | None]:
    n, j = len(argv), i + 1
    cwd: str | None = None
    while j < n:
        a = argv[j]
        if a in ("-u", "--unset", "-C", "--chdir", "-S", "--split-string"):
            if j + 1 < n and a in ("-C", "--chdir"):
                cwd = argv[j + 1]
            if j + 1 < n and a in ("-S", "--split-string"):
                argv[j + 1:j + 2] = argv[j + 1].split()
                j += 1
                continue
            j += 2
        elif a.startswith("--split-string=") or (a.startswith("-S") and len(a) > 2):
            val = a.split("=", 1)[1] if a.startswith("--") else a[2:]
            argv[j:j + 1] = val.split()
        elif a.startswith("--chdir="):
            cwd = a.split("=", 1)[1]
            j += 1
        elif a == "--":
            j += 1
            break
        elif a.startswith("-"):
            j += 1
        elif ASSIGNMENT.match(a):
            _env_assignment(chk, a, ctx)
            j += 1
        else:
            break
    return (j, cwd)


def _env_assignment(chk: State, a: str, ctx: Ctx) -> None:
    var = a.split("=", 1)[0]
    if var in ENV_FORBIDDEN:
        chk.refuse(f"sets {var} ({ENV_FORBIDDEN[var]})")
    elif var in ENV_CODE:
        chk.nested(as_text(a.split("=", 1)[1]), ctx, f"${var}", strict=False)


def _command(chk: State, name: str, argv: list[str], i: int, io: IO, ctx: Ctx) -> int | None:
    n, j = len(argv), i + 1
    while j < n and argv[j].startswith("-"):
        if argv[j] in ("-v", "-V"):
            return None
        j += 1
    return j


def _busybox(chk: State, name: str, argv: list[str], i: int, io: IO, ctx: Ctx) -> int | None:
    n, j = len(argv), i + 1
    while j < n and argv[j].startswith("-"):
        j += 1
    return j


def _exec(chk: State, name: str, argv: list[str], i: int, io: IO, ctx: Ctx) -> int | None:
    n, j = len(argv), i + 1
    while j < n and argv[j].startswith("-"):
        j += 2 if argv[j] == "-a" else 1
    return j


def _plain(chk: State, name: str, argv: list[str], i: int, io: IO, ctx: Ctx) -> int | None:
    """nice, timeout, strace...: options (some with a value), then the command."""
    n, j = len(argv), i + 1
    takes = _TAKES.get(name, set())
    while j < n:
        a = argv[j]
        if a == "--":
            j += 1
            break
        if a.startswith("-") and len(a) > 1:
            if name == "time" and a in ("-o", "--output") and j + 1 < n:
                chk.check_write(argv[j + 1], "time")
            if name in ("strace", "ltrace") and a == "-o" and j + 1 < n:
                chk.check_write(argv[j + 1], name)
            j += 2 if a in takes else 1
            continue
        break
    if name == "timeout" and j < n and re.fullmatch(r"[\d.]+[smhd]?", argv[j]):
        j += 1
    elif name == "chrt" and j < n and argv[j].isdigit():
        j += 1
    elif name == "taskset" and j < n and re.fullmatch(r"(0x)?[0-9a-fA-F,\-]+", argv[j]) \
            and not any(a in ("-c", "--cpu-list") for a in argv[i + 1:j]):
        j += 1
    return j


def _flock(chk: State, name: str, argv: list[str], i: int, io: IO, ctx: Ctx) -> int | None:
    n, j = len(argv), i + 1
    while j < n and argv[j].startswith("-"):
        if argv[j] in ("-c", "--command") and j + 1 < n:
            chk.shell_code(argv[j + 1], ctx, "flock -c")
            return None
        j += 2 if argv[j] in ("-w", "--timeout", "-E", "--conflict-exit-code") else 1
    j += 1  # the lock file
    if j < n and argv[j] in ("-c", "--command") and j + 1 < n:
        chk.shell_code(argv[j + 1], ctx, "flock -c")
        return None
    return j


def _watch(chk: State, name: str, argv: list[str], i: int, io: IO, ctx: Ctx) -> int | None:
    n, j = len(argv), i + 1
    while j < n and argv[j].startswith("-"):
        j += 2 if argv[j] in ("-n", "--interval", "-d", "-q") and argv[j] != "-d" else 1
    if j < n:
        chk.shell_code(" ".join(argv[j:]), ctx, "watch")
    return None


UNWRAPPERS: dict[str, Unwrapper] = {
    "sudo": _escalation, "doas": _escalation, "env": _env, "command": _command,
    "busybox": _busybox, "toybox": _busybox, "exec": _exec, "flock": _flock,
    "watch": _watch, **{name: _plain for name in _PLAIN}}
