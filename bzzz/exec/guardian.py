"""The Guardian: decides whether a task's shell command may run (a core, no I/O).

It is a policy over the *parsed* command, not a substring list. The command is checked for
hidden characters and look-alikes, tokenised the way the shell would (shlex with shell
punctuation), split into simple commands at ``;``, ``&&``, ``||``, ``|``, ``&`` and new
lines, and every simple command is examined with its wrappers (``env``, ``nohup``,
``timeout``, ``xargs``, ``sh -c '...'``: the inner command is checked too). Refused:

- hidden or look-alike characters (zero-width, bidi overrides, control characters,
  compatibility forms such as fullwidth letters, non-ASCII letters in program names);
- command substitution, process substitution, ``eval``/``source``: what runs would not be
  what was checked;
- privilege escalation (sudo, su, doas, setuid bits, chown to root, ...);
- disk and filesystem tools (mkfs, fdisk, dd to a device, mount, wipefs, ...);
- recursive deletion outside the task's workspace (or of ``/``, ``~``, globs at the root);
- fork bombs;
- piping a download into a shell or interpreter;
- writing to paths outside the workspace (``/tmp`` and ``/dev/null`` aside), by
  redirection or by tools such as cp, mv, tee, chmod;
- stopping the machine or every process (shutdown, reboot, ``kill -1``, ...), and changing
  the kernel or firewall (modprobe, sysctl -w, iptables, ...).

In allow-list mode only the listed programs may run at all (and the rules still apply).
Every refusal carries reasons a person can read on the issue.
"""

from __future__ import annotations

import os.path
import re
import shlex
import unicodedata
from dataclasses import dataclass, field

MAX_COMMAND = 16 * 1024
MAX_NESTING = 3

OPERATORS = {";", "&&", "||", "|", "&", "|&", ";;", "\n"}
REDIRECTS = {">", ">>", "<", "<<", "<<<", ">&", "<&", "&>", "&>>", ">|", "<>"}
WRAPPERS = {"env", "nohup", "nice", "ionice", "time", "timeout", "stdbuf", "command",
            "builtin", "exec", "xargs", "setsid", "unbuffer", "chronic", "caffeinate"}
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "busybox"}
INTERPRETERS = SHELLS | {"python", "python3", "python2", "perl", "ruby", "node", "php", "lua",
                         "pwsh", "powershell"}
DOWNLOADERS = {"curl", "wget", "fetch", "aria2c", "http", "httpie", "lwp-request", "nc",
               "ncat", "socat"}
ESCALATION = {"sudo", "su", "doas", "pkexec", "runuser", "chroot", "setpriv", "capsh",
              "setcap", "nsenter", "unshare"}
DISK_TOOLS = {"fdisk", "sfdisk", "cfdisk", "gdisk", "sgdisk", "parted", "partprobe", "wipefs",
              "mount", "umount", "swapon", "swapoff", "mkswap", "losetup", "cryptsetup",
              "blkdiscard", "hdparm", "debugfs", "tune2fs", "resize2fs", "e2fsck", "fsck",
              "lvremove", "vgremove", "pvremove", "zpool", "mdadm", "dmsetup"}
POWER = {"shutdown", "reboot", "halt", "poweroff", "init", "telinit", "killall5"}
KERNEL = {"modprobe", "insmod", "rmmod", "kexec", "iptables", "ip6tables", "nft", "ufw",
          "firewall-cmd", "crontab", "visudo", "passwd", "useradd", "userdel", "usermod",
          "groupadd", "chpasswd"}
WRITERS = {"cp", "mv", "ln", "install", "rsync", "tee", "truncate", "touch", "mkdir", "rmdir",
           "chmod", "chown", "chgrp", "chattr", "sed", "patch", "unzip", "tar", "cpio", "shred"}
SAFE_DEVICES = {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/zero", "/dev/urandom",
                "/dev/random", "/dev/tty"}
SCRATCH = ("/tmp/", "/var/tmp/")

_HIDDEN = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FORK_BOMB = re.compile(r"([\w:.]+)\s*\(\s*\)\s*\{[^}]*?\1\s*\|\s*\1")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass
class Verdict:
    allowed: bool
    reasons: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)

    def explain(self) -> str:
        if self.allowed:
            return "allowed"
        return "refused: " + "; ".join(dict.fromkeys(self.reasons))


@dataclass
class Policy:
    """``allow``: None for deny-list mode, else the programs that may run."""

    allow: frozenset[str] | None = None
    max_length: int = MAX_COMMAND

    @classmethod
    def allow_list(cls, programs: list[str]) -> "Policy":
        return cls(allow=frozenset(programs))


def _program(word: str) -> str:
    return os.path.basename(word)


def _inside(path: str, workspace: str, cwd: str | None) -> bool:
    """Whether ``path`` (relative to ``cwd``) stays inside the workspace. ``cwd`` is None
    after a ``cd`` to somewhere unknowable: only absolute paths can be judged then."""
    if path.startswith("~") or "$" in path:
        return False
    if cwd is None and not path.startswith("/"):
        return False
    full = os.path.normpath(os.path.join(cwd or "/", path))
    ws = os.path.normpath(workspace)
    return full == ws or full.startswith(ws + os.sep)


def _write_ok(path: str, workspace: str, cwd: str | None) -> bool:
    if path in SAFE_DEVICES or path.startswith("/dev/fd/"):
        return True
    if path.startswith(SCRATCH) and ".." not in path.split("/"):
        return True
    if "$" in path or "*" in path and path.startswith("/"):
        return False  # cannot know where a variable or a root glob points
    return _inside(path, workspace, cwd)


class _Checker:
    def __init__(self, policy: Policy, workspace: str) -> None:
        self.policy = policy
        self.workspace = workspace
        self.reasons: list[str] = []
        self.commands: list[list[str]] = []
        self.cwd: str | None = workspace  # None once a `cd` goes somewhere unknowable

    def inside(self, path: str) -> bool:
        return _inside(path, self.workspace, self.cwd)

    def write_ok(self, path: str) -> bool:
        return _write_ok(path, self.workspace, self.cwd)

    def refuse(self, reason: str) -> None:
        self.reasons.append(reason)

    # ------------------------------------------------------------------ text level

    def check_text(self, text: str, depth: int = 0) -> None:
        if depth > MAX_NESTING:
            self.refuse("commands nested too deeply")
            return
        if _HIDDEN.search(text):
            self.refuse("hidden characters (zero-width or bidirectional controls)")
            return
        if _CONTROL.search(text):
            self.refuse("control characters in the command")
            return
        if unicodedata.normalize("NFKC", text) != text:
            self.refuse("look-alike characters (compatibility forms such as fullwidth letters)")
            return
        if "$(" in text or "`" in text:
            self.refuse("command substitution ($(...) or backticks): what runs would not be "
                        "what was checked")
        if "<(" in text or ">(" in text:
            self.refuse("process substitution")
        if _FORK_BOMB.search(text.replace("\n", " ")):
            self.refuse("fork bomb")
        for line in text.replace("\\\n", " ").split("\n"):
            try:
                tokens = _tokens(line)
            except ValueError as exc:
                self.refuse(f"cannot parse the command ({exc})")
                return
            for simple in self._split(tokens):
                self.check_simple(simple, depth)

    @staticmethod
    def _split(tokens: list[str]) -> list[list[str]]:
        """Simple commands; one that reads a pipe starts with a "|" marker."""
        out: list[list[str]] = [[]]
        for tok in tokens:
            if tok in OPERATORS:
                out.append(["|"] if tok in ("|", "|&") else [])
            elif tok in ("(", ")", "{", "}"):
                out.append([])
            else:
                out[-1].append(tok)
        return [cmd for cmd in out if cmd and cmd != ["|"]]

    # ------------------------------------------------------------------ simple commands

    def check_simple(self, words: list[str], depth: int) -> None:
        piped = bool(words) and words[0] == "|"
        if piped:
            words = words[1:]
        args: list[str] = []
        i = 0
        while i < len(words):
            w = words[i]
            if w in REDIRECTS or (w and w[-1] in "<>" and w.rstrip("<>&").isdigit()):
                target = words[i + 1] if i + 1 < len(words) else ""
                if ">" in w and target and not target.startswith("&") and \
                        not self.write_ok(target):
                    self.refuse(f"writes to {target} (outside the workspace)")
                i += 2
                continue
            args.append(w)
            i += 1
        while args and _ASSIGNMENT.match(args[0]):
            name = args[0].split("=", 1)[0]
            if name in ("LD_PRELOAD", "LD_LIBRARY_PATH", "PATH", "BASH_ENV", "ENV", "IFS"):
                self.refuse(f"sets {name}")
            args = args[1:]
        if not args:
            return
        self.commands.append(args)
        self.check_program(args, piped, depth)

    def check_program(self, args: list[str], piped: bool, depth: int) -> None:
        prog = _program(args[0])
        if any(ord(ch) > 127 for ch in prog):
            self.refuse(f"non-ASCII program name {args[0]!r} (look-alike?)")
            return
        if prog in ("eval", "source", "."):
            self.refuse(f"{prog}: runs text the Guardian cannot see")
            return
        if prog in WRAPPERS:
            rest = self._unwrap(prog, args[1:])
            if rest:
                self.check_program(rest, piped, depth)
            return
        if self.policy.allow is not None and prog not in self.policy.allow:
            self.refuse(f"{prog} is not on the allow list")
        if prog in ESCALATION:
            self.refuse(f"privilege escalation ({prog})")
        if prog in DISK_TOOLS or prog.startswith(("mkfs", "mke2fs")):
            self.refuse(f"disk or filesystem tool ({prog})")
        if prog in POWER or (prog == "systemctl" and set(args[1:]) &
                             {"poweroff", "reboot", "halt", "kexec", "emergency", "rescue"}):
            self.refuse(f"stops the machine ({prog})")
        if prog in KERNEL or (prog == "sysctl" and ("-w" in args or any("=" in a for a in args))):
            self.refuse(f"changes the system configuration ({prog})")
        if prog in ("cd", "pushd"):
            target = next((a for a in args[1:] if not a.startswith("-")), "~")
            if target.startswith("~") or "$" in target or self.cwd is None:
                self.cwd = None
            else:
                self.cwd = os.path.normpath(os.path.join(self.cwd, target))
        if prog in ("kill", "pkill", "killall"):
            self._check_kill(prog, args[1:])
        if prog == "dd":
            for a in args[1:]:
                if a.startswith("of=") and not self.write_ok(a[3:]):
                    self.refuse(f"dd writes to {a[3:]}")
        if prog == "rm":
            self._check_rm(args[1:])
        if prog == "find" and ("-delete" in args or ("-exec" in args and
                                                     "rm" in map(_program, args))):
            roots = [a for a in args[1:] if not a.startswith("-")][:1] or ["."]
            if not all(self.inside(r) for r in roots):
                self.refuse("find deletes outside the workspace")
        if prog in WRITERS:
            self._check_writer(prog, args[1:])
        if prog in SHELLS or prog in INTERPRETERS:
            self._check_interpreter(prog, args[1:], piped, depth)
        if prog in ("chmod",) and any(re.search(r"(^|[ugoa,+])[+=]?[rwx]*s", a)
                                      for a in args[1:] if not a.startswith("/")):
            self.refuse("sets a setuid/setgid bit")
        if prog in ("chown", "chgrp") and any(a.split(":")[0] in ("root", "0") for a in args[1:]):
            self.refuse("gives files to root")

    def _unwrap(self, prog: str, rest: list[str]) -> list[str]:
        """The command a wrapper runs (skipping the wrapper's own options)."""
        i = 0
        while i < len(rest):
            a = rest[i]
            if a.startswith("-"):
                if prog == "timeout" and a in ("-s", "-k", "--signal", "--kill-after"):
                    i += 1
                i += 1
            elif prog == "env" and _ASSIGNMENT.match(a):
                i += 1
            elif prog == "timeout" and re.match(r"^\d+(\.\d+)?[smhd]?$", a):
                i += 1
            elif prog in ("nice", "ionice") and a.lstrip("-").isdigit():
                i += 1
            else:
                break
        return rest[i:]

    def _check_kill(self, prog: str, args: list[str]) -> None:
        targets = [a for a in args if not a.startswith("-") or a == "-1"]
        if prog == "kill" and any(t in ("-1", "1") for t in targets):
            self.refuse("kills every process (or init)")
        if prog in ("pkill", "killall") and any(a in ("-u", "--user") for a in args):
            self.refuse(f"{prog} by user")

    def _check_rm(self, args: list[str]) -> None:
        flags = "".join(a.lstrip("-") for a in args if a.startswith("-") and not a.startswith("--"))
        recursive = "r" in flags.lower() or "--recursive" in args
        if "--no-preserve-root" in args:
            self.refuse("rm --no-preserve-root")
        paths = [a for a in args if not a.startswith("-")]
        for p in paths:
            if p in ("/", "/*", "*", ".*", "~", "~/") or p.startswith("~"):
                if recursive or p in ("/", "/*"):
                    self.refuse(f"deletes {p}")
            elif not self.inside(p) or "$" in p:
                if recursive:
                    self.refuse(f"recursive delete outside the workspace ({p})")
                elif not p.startswith(SCRATCH):
                    self.refuse(f"deletes {p} (outside the workspace)")

    def _check_writer(self, prog: str, args: list[str]) -> None:
        paths = [a for a in args if not a.startswith("-")]
        if prog in ("sed",):
            if not any(a.startswith("-i") or a == "--in-place" for a in args):
                return
            paths = paths[1:]  # the script comes first
        elif prog in ("cp", "mv", "ln", "install", "rsync"):
            paths = paths[-1:]  # the destination
        elif prog in ("chmod", "chown", "chgrp", "chattr"):
            paths = paths[1:]  # the mode or owner comes first
        elif prog in ("tar",):
            dest = None
            for i, a in enumerate(args):
                if a in ("-C", "--directory") and i + 1 < len(args):
                    dest = args[i + 1]
                elif a.startswith("--directory="):
                    dest = a.split("=", 1)[1]
            paths = [dest] if dest else []
        elif prog in ("unzip",):
            paths = [args[args.index("-d") + 1]] if "-d" in args and \
                args.index("-d") + 1 < len(args) else []
        for p in paths:
            if not self.write_ok(p):
                self.refuse(f"{prog} writes to {p} (outside the workspace)")

    def _check_interpreter(self, prog: str, args: list[str], piped: bool, depth: int) -> None:
        """``sh -c '...'``: the inner command is checked like the outer one."""
        if prog in SHELLS and "-c" in args:
            idx = args.index("-c")
            self.check_text(args[idx + 1] if idx + 1 < len(args) else "", depth + 1)


def check(command: str, workspace: str, policy: Policy | None = None) -> Verdict:
    """Decide whether ``command`` may run in ``workspace``."""
    policy = policy or Policy()
    if not isinstance(command, str) or not command.strip():
        return Verdict(False, ["no command"])
    if len(command) > policy.max_length:
        return Verdict(False, [f"command longer than {policy.max_length} characters"])
    checker = _Checker(policy, workspace)
    checker.check_text(command)
    _check_download_pipes(command, checker)
    return Verdict(not checker.reasons, checker.reasons, checker.commands)


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def _check_download_pipes(command: str, checker: _Checker) -> None:
    """A download piped (directly or via other stages) into a shell or interpreter."""
    tokens: list[str] = []
    for line in command.replace("\\\n", " ").split("\n"):
        try:
            tokens += _tokens(line) + [";"]
        except ValueError:
            return  # already refused as unparsable
    stages: list[list[str]] = [[]]
    downloading = False
    for tok in tokens + [";"]:
        if tok in ("|", "|&"):
            stages.append([])
            continue
        if tok in OPERATORS or tok in ("(", ")"):
            downloading = False
            for st in stages:
                prog = _first_program(st)
                if prog in DOWNLOADERS:
                    downloading = True
                elif downloading and prog in INTERPRETERS:
                    rest = [a for a in st[1:] if not a.startswith("-")]
                    if not rest or rest == ["-"] or prog in SHELLS and "-s" in st:
                        checker.refuse(f"pipes a download into {prog}")
            stages = [[]]
            continue
        stages[-1].append(tok)


def _first_program(words: list[str]) -> str:
    args = [w for w in words if not _ASSIGNMENT.match(w)]
    while args and _program(args[0]) in WRAPPERS:
        args = args[1:]
        while args and (args[0].startswith("-") or re.match(r"^\d+[smhd]?$", args[0])):
            args = args[1:]
    return _program(args[0]) if args else ""
