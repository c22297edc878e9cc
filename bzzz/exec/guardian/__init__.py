"""The Guardian: a guardrail that explains why an obviously harmful task command will not run.

It is *not* the security boundary: commands run inside an OS sandbox, and the sandbox is what
stops a determined attacker. The Guardian refuses the obvious before anything starts, and says
why, in words a person can read on the issue. ``check`` is a core (no I/O, no clock except its
own time budget) and never raises; ``check_async`` runs it off the event loop under a deadline.

How it reads a command: with a real bash grammar (tree-sitter-bash), walked iteratively (an
explicit stack, never recursion) under budgets (syntax nodes, depth, nesting, time). It follows
what bash would do, statically:

- words are expanded the way bash does where the value is known: quoting and escapes
  (``r''m``, ``\\rm``, ``"/bin/rm"``, ``$'\\x72m'``), variables assigned in the command
  (``x=rm; $x``), ``${x:-rm}``, ``${IFS}`` word splitting, brace expansion ``{a,b}``, ``~``,
  ``$PWD``, ``for`` lists, ``$(pwd)``/``$(nproc)``/``$(mktemp)``; globs are judged by where
  they point (``rm -rf *`` after ``cd build`` is inside the workspace, ``/*`` and ``.*`` are
  not);
- the inner commands of ``$(...)``, backticks, ``<(...)``/``>(...)``, here-documents into a
  shell, ``sh -c``/``bash -c`` strings (with ``$1``...), ``eval`` of static text, ``trap``,
  ``alias``, ``find -exec``, ``xargs``, ``watch``, ``flock -c``, ``env -S``, wrappers
  (``env``, ``nohup``, ``timeout``, ``command``, ``exec``, ``nice``, ``busybox``...) are
  checked as commands too;
- ``cd``/``pushd`` move the directory relative paths are judged from (in subshells and branches
  too: a ``cd`` that only may happen widens the set of places); symbolic links and copies made
  by the command (``ln -s / x``, ``cp /bin/rm x``) are followed; a file the command writes
  with known text and then runs is checked as a script, one it downloads and runs is refused.

Refused: hidden or look-alike characters (zero-width, bidi controls, control characters,
compatibility forms, non-ASCII program names), text that is not valid Unicode; privilege
escalation (sudo, su, doas, setuid bits, chown to root, privileged containers...); disk and
filesystem tools (mkfs, fdisk, dd to a device, mount...); recursive deletion outside the
workspace (``/``, ``~``, ``/*``, ``..``); fork bombs (by structure: a function that starts itself
in a pipeline or in the background, directly or through others; an endless loop that starts
background jobs); a download piped (or process-substituted, or saved) into a shell or an
interpreter; writes outside the workspace (``/tmp``, ``/var/tmp``, ``/dev/shm`` and ``/dev/null``
aside) by redirection or by tools (cp, mv, tee, chmod, sed -i, tar -C, curl -o...); reading
secrets (``/run/secrets``, ``/proc/*/environ``, ``~/.ssh``...); killing every process, init or
the agent (``$PPID``); stopping the machine; changing the kernel, firewall, services or
packages; program names only known at run time (``$(...) -rf /``, a variable from elsewhere).
In allow-list mode only the listed programs (and builtins that run nothing) may run at all,
and the rules still apply.

What it cannot see (the sandbox's job): what a program does once it runs (make recipes, npm
scripts, ``./ci.sh``, a sourced file), code given to interpreters (``python -c``, ``perl -e``,
``node -e``, awk: scanned only for obvious patterns: shell-outs whose string literals are then
checked, deletes and writes of literal paths outside, code built at run time), values only
known at run time (command output, files read, ``read``; a run-time part of a path is assumed
not to climb out with ``..``), aliases and functions brought in by a sourced file, bash
features that build code from data (arithmetic on array subscripts, ``declare``/``printf -v``
tricks), behaviour that depends on the environment the sandbox gives (PATH shims, HOME: ``~`` is
always treated as outside the workspace), and anything tree-sitter-bash parses differently
from bash (a command it cannot parse is refused).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import threading
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

import trio
import tree_sitter_bash
from tree_sitter import Language, Parser

MAX_COMMAND = 16 * 1024
MAX_NODES = 20_000        # syntax nodes over every parse of one check (nested text included)
MAX_DEPTH = 160           # depth of the syntax tree
MAX_NESTING = 6           # sh -c 'sh -c ...', eval, scripts written then run
MAX_WORDS = 2048          # words of one simple command after expansion
MAX_SIMPLE = 500          # simple commands checked (nested ones included)
MAX_ALTERNATIVES = 8      # values a variable may have (for loops, branches)
MAX_VALUE = 4096          # longest variable value tracked
MAX_NESTED_TEXT = 4 * MAX_COMMAND
WRITABLE_PLACES = ("BZZZ_OUTPUT",)
TIME_BUDGET = 0.030       # CPU seconds of one check; past it the command is refused
PARSE_BUDGET = 0.010      # CPU seconds tree-sitter may take over one parse
# The budgets count the checking thread's own CPU time, not the wall clock: a loaded machine
# (many agents on few cores) must not turn an ordinary command into a refusal.
_cpu = time.thread_time

_LANGUAGE = Language(tree_sitter_bash.language())
_local = threading.local()

# markers inside resolved words (NUL and private-use characters are refused in the input)
UNK = "\x00"          # a part only known at run time
PPID_MARK = "\x01"    # $PPID: the agent
PROC_MARK = "\x03"    # <(...) / >(...): PROC_MARK + index + PROC_MARK
SELF_MARK = "\x06"    # $0 inside a script the command runs: the script itself
HOME_DIR = "/home/~"  # what ~ and $HOME stand for: outside the workspace, whatever HOME is
_QUOTED = {"*": "\ue001", "?": "\ue002", "[": "\ue003", "{": "\ue004", "}": "\ue005",
           ",": "\ue006"}
_QUOTE_ALL = str.maketrans(_QUOTED)
_QUOTE_BRACES = str.maketrans({k: v for k, v in _QUOTED.items() if k in "{},"})
_UNQUOTE = str.maketrans({v: k for k, v in _QUOTED.items()})
_GLOB = re.compile(r"[*?\[]")

WRAPPERS = {"env", "nohup", "nice", "ionice", "time", "timeout", "stdbuf", "command",
            "builtin", "exec", "setsid", "unbuffer", "chronic", "caffeinate", "taskset", "chrt",
            "flock", "strace", "ltrace", "busybox", "toybox", "coproc", "xvfb-run",
            "dbus-run-session", "fakeroot", "watch", "sudo", "doas", "catchsegv", "nocache"}
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "pdksh", "fish", "csh", "tcsh", "ash",
          "yash", "posh", "rbash", "lksh", "oksh"}
DOWNLOADERS = {"curl", "wget", "fetch", "aria2c", "http", "https", "httpie", "lwp-request",
               "GET", "nc", "ncat", "netcat", "socat", "telnet", "ftp", "tftp", "scp", "sftp",
               "ssh", "openssl", "xh", "curlie", "lynx", "w3m", "links"}
DECODERS = {"base64", "base32", "basenc", "xxd", "od", "uudecode", "openssl", "gpg", "rev",
            "tr", "gunzip", "zcat", "gzip", "bzcat", "bzip2", "xz", "xzcat", "unxz", "zstd",
            "zstdcat", "brotli", "python", "python3", "perl", "ruby", "node", "printf", "awk",
            "sed"}
ESCALATION = {"sudo", "su", "doas", "pkexec", "runuser", "chroot", "setpriv", "capsh",
              "setcap", "nsenter", "unshare", "sudoedit", "gosu", "su-exec", "sg", "newgrp",
              "machinectl", "systemd-run", "run0", "suexec", "ksu", "calife", "super"}
DISK_TOOLS = {"fdisk", "sfdisk", "cfdisk", "gdisk", "sgdisk", "parted", "partprobe", "wipefs",
              "mount", "umount", "swapon", "swapoff", "mkswap", "losetup", "cryptsetup",
              "blkdiscard", "hdparm", "debugfs", "tune2fs", "resize2fs", "e2fsck", "fsck",
              "lvremove", "vgremove", "pvremove", "lvcreate", "vgcreate", "pvcreate", "zpool",
              "zfs", "mdadm", "dmsetup", "nvme", "sg_format", "flashrom", "badblocks",
              "xfs_repair", "btrfs", "fstrim", "blockdev", "kpartx", "mount.nfs", "sgdisk"}
POWER = {"shutdown", "reboot", "halt", "poweroff", "init", "telinit", "killall5", "kexec"}
KERNEL = {"modprobe", "insmod", "rmmod", "depmod", "iptables", "ip6tables", "iptables-restore",
          "ip6tables-restore", "ebtables", "arptables", "nft", "ufw", "firewall-cmd",
          "crontab", "at", "batch", "visudo", "passwd", "useradd", "userdel", "usermod",
          "groupadd", "groupdel", "groupmod", "gpasswd", "adduser", "deluser", "chpasswd",
          "chsh", "chfn", "setenforce", "auditctl", "hwclock", "timedatectl", "hostnamectl",
          "update-rc.d", "chkconfig", "launchctl", "ldconfig", "tc", "ifdown", "ifup",
          "sysrq", "swapoff", "vipw", "pwck", "grpck", "pam-auth-update", "update-grub",
          "grub-install", "efibootmgr", "dracut", "mkinitramfs", "update-initramfs"}
PACKAGE_TOOLS = {"apt", "apt-get", "aptitude", "dpkg", "yum", "dnf", "rpm", "apk", "pacman",
                 "zypper", "snap", "flatpak", "emerge", "port", "pkg", "brew"}
PACKAGE_VERBS = {"install", "remove", "purge", "erase", "upgrade", "dist-upgrade", "-i", "-r",
                 "-P", "--install", "--remove", "--purge", "add", "del", "-S", "-R", "-U",
                 "autoremove", "reinstall", "-e", "--erase", "update", "full-upgrade"}
WRITERS = {"cp", "mv", "ln", "install", "rsync", "tee", "truncate", "touch", "mkdir", "rmdir",
           "chmod", "chown", "chgrp", "chattr", "setfacl", "sed", "patch", "unzip", "tar",
           "cpio", "shred", "unlink", "split", "sort", "curl", "wget", "git", "7z", "7za",
           "dd", "perl", "mkfifo", "mknod", "ln", "link", "csplit", "gzip", "gunzip", "xz",
           "bzip2"}
NOOP_BUILTINS = {"cd", "pushd", "popd", "dirs", "export", "set", "unset", "true", "false",
                 ":", "test", "[", "[[", "exit", "return", "shift", "local", "declare",
                 "typeset", "readonly", "wait", "read", "break", "continue", "echo", "printf",
                 "shopt", "umask", "type", "hash", "getopts", "let", "pwd"}
SAFE_DEVICES = {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/zero",
                "/dev/urandom", "/dev/random", "/dev/tty", "/dev/full"}
SCRATCH_ROOTS = (("tmp",), ("var", "tmp"), ("dev", "shm"))
_DISK_DEVICE = re.compile(r"^/dev/(sd|hd|vd|xvd|nvme|mmcblk|loop|dm-|md|mapper/|disk/|nbd|"
                          r"zram|sr|fd\d|mtd|ram|root|mem|kmem|port)")
_SECRETS = [tuple(p.split("/")) for p in (
    "run/secrets", "var/run/secrets", "proc/*/environ", "proc/*/mem", "proc/*/root",
    "proc/*/cwd", "proc/*/map_files", "proc/*/task/*/environ", "proc/kcore", "etc/shadow",
    "etc/gshadow", "etc/sudoers", "etc/sudoers.d", "etc/ssh/ssh_host_*", "root",
    "home/*/.ssh", "home/*/.aws", "home/*/.gnupg", "home/*/.netrc", "home/*/.git-credentials",
    "home/*/.docker", "home/*/.kube", "home/*/.config/gh", "home/*/.pypirc", "home/*/.npmrc",
    "var/lib/docker", "var/run/docker.sock", "run/docker.sock", "sys/firmware", "dev/mem",
    "dev/kmem", "dev/port")]
# programs whose options carry shell code: option -> how to find the code
_CODE_OPTIONS = {
    "tar": ("--to-command=", "--checkpoint-action=exec=", "--use-compress-program=",
            "--info-script=", "--new-volume-script=", "--rsh-command="),
    "rsync": ("--rsh=", "-e"), "zip": ("--unzip-command=", "-TT"), "ssh": ("-oProxyCommand=",
                                                                           "-oLocalCommand="),
    "scp": ("-oProxyCommand=", "-S"), "git": (), "vim": (), "less": (), "man": ("-P",),
}
_ENV_CODE = {"GIT_SSH_COMMAND", "GIT_EXTERNAL_DIFF", "GIT_ASKPASS", "SSH_ASKPASS", "GIT_EDITOR",
             "EDITOR", "VISUAL", "PAGER", "GIT_PAGER", "MANPAGER", "BROWSER", "GIT_SEQUENCE_EDITOR",
             "PROMPT_COMMAND", "LESSOPEN", "LESSCLOSE"}
_ENV_FORBIDDEN = {"LD_PRELOAD": "loads a library into every program",
                  "LD_AUDIT": "loads a library into every program",
                  "BASH_ENV": "runs a file in every shell", "ENV": "runs a file in every shell",
                  "SHELLOPTS": "changes every shell", "BASHOPTS": "changes every shell",
                  "GCONV_PATH": "loads code into every program",
                  "DYLD_INSERT_LIBRARIES": "loads a library into every program"}

_HIDDEN_RANGES = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\u00ad\u180e\u034f"
                            "\u115f\u1160\u3164\uffa0\ufe00-\ufe0f\ue000-\uf8ff\U000e0000-"
                            "\U000e01ef\U000f0000-\U0010ffff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_ARITH = re.compile(r"[\d\s+\-*/%()]{1,40}")

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
_SED_EXEC = re.compile(r"(?:^|[;\n}])\s*(?:\d+|/[^/\n]*/)?\s*e(?:\s|$)|"
                       r"s([^\\\n])(?:\\.|(?!\1)[^\\])*\1(?:\\.|(?!\1)[^\\])*\1"
                       r"[gpiImM0-9]*e")
_SED_WRITE = re.compile(r"(?:^|[;\n])\s*(?:\d+|/[^/\n]*/)?\s*[wW]\s+(\S+)|"
                        r"s([^\\\n])(?:\\.|(?!\2)[^\\])*\2(?:\\.|(?!\2)[^\\])*\2"
                        r"[gpiImM0-9e]*w\s*(\S+)")


@dataclass
class Verdict:
    allowed: bool
    reasons: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was run but not seen through

    def explain(self) -> str:
        if self.allowed:
            if self.notes:
                return "allowed (not seen through: " + "; ".join(dict.fromkeys(self.notes)) + ")"
            return "allowed"
        return "refused: " + "; ".join(dict.fromkeys(self.reasons))


@dataclass
class Policy:
    """``allow``: None for deny-list mode, else the programs that may run."""

    allow: frozenset[str] | None = None
    max_length: int = MAX_COMMAND
    time_budget: float = TIME_BUDGET

    @classmethod
    def allow_list(cls, programs: list[str]) -> "Policy":
        return cls(allow=frozenset(programs))


class _Budget(Exception):
    """A budget (nodes, depth, nesting, time) ran out: the command is refused."""


def _parser() -> Parser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = Parser(_LANGUAGE)
    return parser


def _show(s: str) -> str:
    """A resolved word as a person would write it."""
    if s.isascii() and not any(m in s for m in (UNK, PPID_MARK, PROC_MARK, SELF_MARK)) \
            and not s.startswith(HOME_DIR):
        return s
    s = s.translate(_UNQUOTE).replace(UNK, "$…").replace(PPID_MARK, "$PPID")
    s = re.sub(PROC_MARK + r"\d+" + PROC_MARK, "<(…)", s).replace(SELF_MARK, "$0")
    if s == HOME_DIR or s.startswith(HOME_DIR + "/"):
        s = "~" + s[len(HOME_DIR):]
    return s


def _as_text(s: str) -> str:
    """A resolved value as shell text for a nested check (run-time parts stay run-time)."""
    s = s.translate(_UNQUOTE).replace(UNK, "${__bzzz_runtime}").replace(PPID_MARK, "$PPID")
    return re.sub(PROC_MARK + r"\d+" + PROC_MARK, "/dev/fd/63", s).replace(SELF_MARK, "$0")


def _ansi_c(body: str) -> str:
    """The value of $'...' (without the quotes)."""
    out: list[str] = []
    i, n = 0, len(body)
    simple = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r",
              "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}
    while i < n:
        ch = body[i]
        if ch != "\\" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt in "01234567":
            m = re.match(r"[0-7]{1,3}", body[i + 1:i + 4])
            out.append(chr(int(m.group(), 8) & 0xFF))
            i += 1 + len(m.group())
        elif nxt in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            m = re.match(r"[0-9a-fA-F]{1,%d}" % width, body[i + 2:i + 2 + width])
            if m:
                code = int(m.group(), 16)
                out.append(chr(code) if code < 0x110000 and not 0xD800 <= code < 0xE000
                           else "?")
                i += 2 + len(m.group())
            else:
                out.append("\\" + nxt)
                i += 2
        elif nxt == "c" and i + 2 < n:
            out.append(chr(ord(body[i + 2]) & 0x1F))
            i += 3
        else:
            out.append("\\" + nxt)
            i += 2
    text = "".join(out)
    return text.split("\x00", 1)[0]  # bash stops a $'' string at NUL


def _brace_expand(word: str) -> list[str] | None:
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
            inner = w[i + 1:j]
            if commas:
                bounds = [i] + commas + [j]
                return i, j, [w[a + 1:b] for a, b in zip(bounds, bounds[1:])]
            m = re.fullmatch(r"(-?\d{1,4})\.\.(-?\d{1,4})|([a-zA-Z])\.\.([a-zA-Z])", inner)
            if m:
                if m.group(1) is not None:
                    a, b = int(m.group(1)), int(m.group(2))
                    step = 1 if b >= a else -1
                    seq = [str(k) for k in range(a, b + step, step)][:300]
                else:
                    a, b = ord(m.group(3)), ord(m.group(4))
                    step = 1 if b >= a else -1
                    seq = [chr(k) for k in range(a, b + step, step)]
                return i, j, seq
        i = w.find("{", i + 1)
    return None


class _Ctx:
    """Where a node sits: what the walk needs to know about its surroundings."""

    __slots__ = ("depth", "nest", "cond", "spawn", "func", "loop", "endless", "up", "incmd")

    def __init__(self, depth=0, nest=0, cond=False, spawn=False, func=None, loop=False,
                 endless=False, up=None, incmd=False):
        self.depth, self.nest, self.cond, self.spawn = depth, nest, cond, spawn
        self.func, self.loop, self.endless, self.up, self.incmd = func, loop, endless, up, incmd

    def but(self, **kw) -> "_Ctx":
        new = _Ctx(self.depth, self.nest, self.cond, self.spawn, self.func, self.loop,
                   self.endless, self.up, self.incmd)
        for k, v in kw.items():
            setattr(new, k, v)
        return new


class _Where:
    """Where a path points: kind is ws, scratch, scratchroot, home, device, safe, fd, tcp,
    outside or unknown."""

    __slots__ = ("kind", "comps", "path")

    def __init__(self, kind: str, comps: tuple[str, ...] | None):
        self.kind, self.comps = kind, comps
        self.path = "/" + "/".join(comps) if comps is not None else None


_NODE, _RESTORE, _COMMAND = 0, 1, 2


class _Checker:
    def __init__(self, policy: Policy, workspace: str,
                 places: Mapping[str, str] | None = None) -> None:
        self.policy = policy
        ws = posixpath.normpath(workspace if workspace.startswith("/") else "/" + workspace)
        self.ws = ws
        self.ws_comps = tuple(c for c in ws.split("/") if c)
        # variables naming directories of the task (BZZZ_OUTPUT): known values, and writable
        self.places = {k: posixpath.normpath(v) for k, v in (places or {}).items()
                       if isinstance(v, str) and v.startswith("/")}
        self.place_comps = [tuple(c for c in v.split("/") if c) for k, v in self.places.items()
                            if k in WRITABLE_PLACES]
        self.home_comps = tuple(c for c in HOME_DIR.split("/") if c)
        self.reasons: list[str] = []
        self.notes: list[str] = []
        self.commands: list[list[str]] = []
        self.cwds: frozenset = frozenset([ws])   # None inside: somewhere unknowable
        self.oldcwds: frozenset = frozenset([None])
        self.dirstack: tuple = ()
        self.vars: dict[str, object] = {}
        self.links: dict[tuple, tuple | None] = {}     # symlinks and hard links made
        self.programs: dict[tuple, str] = {}           # copies of programs: path -> program
        self.files: dict[tuple, tuple[str, str]] = {}  # written: (text|opaque|download, s)
        self.functions: dict[str, list[tuple[str, bool]]] = {}
        self.hashed: dict[str, str] = {}
        self.procsubs: list = []
        self.trees: list = []
        self.stack: list = []
        self.nodes = 0
        self.error_line = 0
        self.simples = 0
        self.nested_chars = 0
        self.deadline = _cpu() + policy.time_budget

    # ------------------------------------------------------------------ plumbing

    def refuse(self, reason: str) -> None:
        if len(self.reasons) < 64:
            self.reasons.append(reason)

    def parse(self, text: str):
        """The syntax tree of ``text``, or None where bash syntax is broken (the parse stops
        at the first error; it is cut off past the time budget)."""
        data = text.encode("utf-8", "surrogatepass")
        limit = min(self.deadline, _cpu() + PARSE_BUDGET)
        state = [0, False]

        def progress(offset: int, has_error: bool) -> bool:
            if has_error:
                state[0] = offset
                return True
            if _cpu() > limit:
                state[1] = True
                return True
            return False

        parser = _parser()
        try:
            tree = parser.parse(lambda offset, _point: data[offset:],
                                progress_callback=progress)
        except ValueError:
            parser.reset()
            if state[1]:
                raise _Budget("too complex to parse quickly") from None
            self.error_line = data[:state[0]].count(b"\n") + 1
            return None
        if tree.root_node.has_error:
            self.error_line = 0
            return None
        self.trees.append(tree)
        self.nodes += tree.root_node.descendant_count
        if self.nodes > MAX_NODES:
            raise _Budget("too complex to check (over %d syntax nodes)" % MAX_NODES)
        return tree

    def snapshot(self):
        return (self.cwds, self.oldcwds, self.dirstack, dict(self.vars))

    def restore(self, snap) -> None:
        self.cwds, self.oldcwds, self.dirstack, self.vars = snap

    def run(self, root, ctx: _Ctx) -> None:
        stack = self.stack
        stack.append((_NODE, root, ctx))
        handlers = _HANDLERS
        visited = 0
        while stack:
            kind, item, ctx = stack.pop()
            visited += 1
            if visited & 63 == 0 and _cpu() > self.deadline:
                raise _Budget("the check took too long (the command is too complex)")
            if kind == _RESTORE:
                self.restore(item)
                continue
            if kind == _COMMAND:
                self.command(item, ctx)
                continue
            if ctx.depth > MAX_DEPTH:
                raise _Budget("nested too deeply (over %d levels)" % MAX_DEPTH)
            handler = handlers.get(item.type)
            if handler is None:
                self.push_children(item, ctx)
            else:
                handler(self, item, ctx)

    def push_children(self, node, ctx: _Ctx, **kw) -> None:
        kids = node.children
        if not kids:
            return
        child_ctx = ctx.but(depth=ctx.depth + 1, **kw)
        stack = self.stack
        items = []
        n = len(kids)
        for i, c in enumerate(kids):
            if not c.is_named or (c.child_count == 0 and c.type not in _LEAF_HANDLED):
                continue
            if i + 1 < n and kids[i + 1].type == "&":
                if ctx.endless:
                    self.refuse("fork bomb (an endless loop starting background jobs)")
                items.append((_RESTORE, self.snapshot(), None))
                items.append((_NODE, c, child_ctx.but(spawn=True)))
            else:
                items.append((_NODE, c, child_ctx))
        stack.extend(reversed(items))

    # ------------------------------------------------------------------ words

    def var(self, name: str):
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
        if name == "TMPDIR":
            return "/tmp"
        if name == "IFS":
            return " \t\n"
        if name in ("$", "BASHPID"):
            return "4242"
        if name == "?":
            return "0"
        if name == "0":
            return "bash"
        if name == "CI":
            return "true"
        if name == "PATH":
            return "/usr/local/bin:/usr/bin:/bin"
        return UNK

    def known(self, name: str) -> bool:
        return name in self.vars or name in self.places or name in (
            "PWD", "HOME", "BZZZ_WORKSPACE", "TMPDIR", "IFS",
                                             "CI", "PATH", "0", "$", "?")

    def fields(self, node, assignment: bool = False) -> list[str]:
        """The words ``node`` expands to (one alternative of every variable)."""
        segs: list[tuple[str, bool]] = []
        self.segments(node, False, segs, 0, True)
        if assignment:
            return ["".join(s for s, _ in segs)]
        ifs = self.var("IFS")
        ifs = ifs if isinstance(ifs, str) and UNK not in ifs else " \t\n"
        ifs = ifs.translate(_QUOTE_BRACES)
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
        expanded: list[str] = []
        for f in out:
            if "{" in f:
                more = _brace_expand(f)
                if more is None:
                    expanded.append(UNK)
                    continue
                expanded.extend(more)
            else:
                expanded.append(f)
        return expanded

    def segments(self, node, quoted: bool, out: list, depth: int, first: bool) -> None:
        """Append (text, splittable) pieces of a word. Recursion is bounded by ``depth``."""
        if depth > 24:
            out.append((UNK, False))
            return
        t = node.type
        if t == "word" or t == "number":
            text = node.text.decode("utf-8", "surrogatepass")
            if quoted:
                out.append((text.translate(_QUOTE_ALL), False))
                return
            if first and text.startswith("~"):
                head, sep, rest = text.partition("/")
                if head == "~":
                    home = HOME_DIR
                elif head == "~+":
                    home = self.var("PWD")
                elif head == "~-":
                    home = self.var("OLDPWD")
                elif re.fullmatch(r"~[A-Za-z0-9_.-]+", head):
                    home = "/home/" + head[1:]
                else:
                    home = None
                if home is not None:
                    out.append((home.translate(_QUOTE_ALL), False))
                    text = sep + rest
            if "\\" in text:
                buf, i = [], 0
                while i < len(text):
                    if text[i] == "\\" and i + 1 < len(text):
                        if text[i + 1] != "\n":
                            buf.append(text[i + 1].translate(_QUOTE_ALL))
                        i += 2
                    else:
                        buf.append(text[i])
                        i += 1
                text = "".join(buf)
            out.append((text, False))
        elif t == "raw_string":
            out.append((node.text.decode("utf-8", "surrogatepass")[1:-1].translate(_QUOTE_ALL),
                        False))
        elif t == "ansi_c_string":
            out.append((_ansi_c(node.text.decode("utf-8", "surrogatepass")[2:-1])
                        .translate(_QUOTE_ALL), False))
        elif t in ("string", "translated_string"):
            out.append(("", False))  # "" is a word even when empty
            for c in node.children:
                if c.is_named:
                    self.segments(c, True, out, depth + 1, False)
        elif t == "string_content":
            text = node.text.decode("utf-8", "surrogatepass")
            if "\\" in text:
                text = re.sub(r'\\([$`"\\])', r"\1", text).replace("\\\n", "")
            out.append((text.translate(_QUOTE_ALL), False))
        elif t == "concatenation":
            for i, c in enumerate(node.children):
                self.segments(c, quoted, out, depth + 1, first and i == 0)
        elif t in ("simple_expansion", "expansion"):
            value = self.expansion(node, depth)
            if isinstance(value, tuple):
                value = value[0]
            if quoted and not (t == "expansion" and re.search(rb"\[[@*]\]", node.text)):
                out.append((value.translate(_QUOTE_ALL), False))
            else:
                out.append((value.translate(_QUOTE_BRACES), True))
        elif t == "command_substitution":
            value = self.substitution(node)
            out.append((value.translate(_QUOTE_ALL), not quoted and value == UNK))
        elif t == "process_substitution":
            self.procsubs.append(node)
            out.append((PROC_MARK + str(len(self.procsubs) - 1) + PROC_MARK, False))
        elif t == "arithmetic_expansion":
            inner = node.text.decode("utf-8", "surrogatepass")
            inner = inner[3:-2] if inner.startswith("$((") else inner[2:-1]
            out.append((self.arith(inner), False))
        elif t == "array":
            parts = []
            for c in node.children:
                if c.is_named:
                    sub: list = []
                    self.segments(c, quoted, sub, depth + 1, True)
                    parts.append("".join(s for s, _ in sub))
            out.append((" ".join(parts), not quoted))
        else:
            out.append((node.text.decode("utf-8", "surrogatepass"), False))

    def arith(self, text: str) -> str:
        text = text.strip()
        if _ARITH.fullmatch(text) and "**" not in text:
            try:
                return str(int(eval(text.replace("/", "//"), {"__builtins__": {}}, {})))
            except (SyntaxError, ZeroDivisionError, TypeError, ValueError):
                return UNK
        return UNK

    def expansion(self, node, depth: int):
        kids = [c for c in node.children if c.type not in ("$", "${", "}")]
        if not kids:
            return "$"
        name_node = kids[0]
        if name_node.type == "subscript":
            name_node = name_node.child_by_field_name("name") or name_node
        if name_node.type not in ("variable_name", "special_variable_name"):
            return UNK  # ${#x}, ${!x}: lengths, indirection
        name = name_node.text.decode("utf-8", "surrogatepass")
        rest = kids[1:]
        if not rest:
            return self.var(name)
        op = rest[0].text.decode("utf-8", "surrogatepass")
        arg = rest[1] if len(rest) > 1 else None
        if op in (":-", "-", ":=", "="):
            if self.known(name):
                value = self.var(name)
                if not (op.startswith(":") and value == ""):
                    return value
            if arg is None:
                return ""
            sub: list = []
            self.segments(arg, True, sub, depth + 1, True)
            return "".join(s for s, _ in sub).translate(_UNQUOTE)
        if op in (":+", "+"):
            if not self.known(name):
                return UNK
            value = self.var(name)
            if value == "" or arg is None:
                return ""
            sub = []
            self.segments(arg, True, sub, depth + 1, True)
            return "".join(s for s, _ in sub).translate(_UNQUOTE)
        return UNK

    def substitution(self, node) -> str:
        """The value of a few well-known $(...); UNK for the rest."""
        body = [c for c in node.named_children]
        if len(body) != 1 or body[0].type != "command":
            return UNK
        words = [c.text.decode("utf-8", "surrogatepass") for c in body[0].named_children]
        if not words:
            return UNK
        prog = words[0]
        if prog == "pwd":
            return self.var("PWD")
        if prog == "nproc" or words[:2] == ["getconf", "_NPROCESSORS_ONLN"]:
            return "4"
        if prog == "mktemp":
            return "/tmp/tmp.mktemp"
        if words[:3] == ["git", "rev-parse", "--show-toplevel"]:
            return self.ws
        if prog in ("whoami", "id") or prog == "date" or prog == "uname":
            return "x"
        return UNK

    # ------------------------------------------------------------------ paths

    def where(self, path: str, follow_last: bool = True) -> _Where:
        """Where ``path`` points (for every directory the command may be in: the worst)."""
        if not path:
            return _Where("unknown", None)
        if path.startswith(PROC_MARK):
            return _Where("fd", None)
        if path.startswith(UNK) or path.startswith(SELF_MARK):
            return _Where("unknown", None)
        if path.startswith("/"):
            return self._where_abs(path, follow_last)
        worst: _Where | None = None
        for cwd in self.cwds:
            if cwd is None:
                return _Where("unknown", None)
            w = self._where_abs(cwd + "/" + path, follow_last)
            if worst is None or _RANK[w.kind] > _RANK[worst.kind]:
                worst = w
        return worst or _Where("unknown", None)

    def _where_abs(self, path: str, follow_last: bool) -> _Where:
        trailing = path.endswith("/") or path.endswith("/.")
        raw = [c for c in path.split("/") if c and c != "."]
        comps: list[str] = []
        steps = 0
        todo = list(reversed(raw))
        while todo:
            steps += 1
            if steps > 256:
                return _Where("unknown", None)
            c = todo.pop()
            if c == "." or c == "":
                continue
            if UNK in c or PPID_MARK in c:
                c = UNK if UNK in c else c
            elif _GLOB.search(c) and c.startswith(".") and fnmatch.fnmatchcase("..", c):
                c = ".."
            if c == "..":
                if comps:
                    comps.pop()
                continue
            comps.append(c)
            if self.links and (todo or follow_last or trailing):
                target = self.links.get(tuple(comps))
                if target is not None or tuple(comps) in self.links:
                    if target is None:
                        return _Where("unknown", None)
                    comps = list(target)
        return _Where(self._kind(tuple(comps), path), tuple(comps))

    def _kind(self, comps: tuple[str, ...], path: str) -> str:
        for ws in (self.ws_comps, *self.place_comps):
            if comps[:len(ws)] == ws and not any(_GLOB.search(c) for c in comps[:len(ws)]):
                return "ws"
        if comps and comps[0] == "dev":
            p = "/" + "/".join(comps)
            if p in SAFE_DEVICES or p.startswith("/dev/fd/") or p.startswith("/dev/pts/"):
                return "safe"
            if p.startswith(("/dev/tcp/", "/dev/udp/")):
                return "tcp"
            if comps[:2] == ("dev", "shm"):
                return "scratch" if len(comps) > 2 and not _GLOB.search(comps[2]) \
                    else "scratchroot"
            return "device"
        for root in SCRATCH_ROOTS:
            if comps[:len(root)] == root:
                if len(comps) > len(root) and not _GLOB.search(comps[len(root)]) \
                        and UNK not in comps[len(root)]:
                    return "scratch"
                return "scratchroot"
        if comps[:len(self.home_comps)] == self.home_comps:
            return "home"
        return "outside"

    def secret(self, path: str) -> str | None:
        if "/" not in path:
            return None
        w = self.where(path)
        if w.comps is None:
            return None
        comps = w.comps
        for tmpl in self._secret_templates():
            if len(comps) < len(tmpl):
                continue
            if all(t == "*" or (_GLOB.search(c) and _GLOB.sub("", c) and
                                fnmatch.fnmatchcase(t, c)) or
                   (UNK not in c and PPID_MARK not in c and fnmatch.fnmatchcase(c, t))
                   for t, c in zip(tmpl, comps)):
                return _show(path)
        return None

    def _secret_templates(self):
        home = self.home_comps
        extra = [home + (".ssh",), home + (".aws",), home + (".gnupg",), home + (".netrc",),
                 home + (".git-credentials",), home + (".docker",), home + (".kube",),
                 home + (".config", "gh"), home + (".pypirc",), home + (".npmrc",)]
        return _SECRETS + extra

    def check_write(self, path: str, who: str, follow_last: bool = True) -> None:
        w = self.where(path, follow_last)
        shown = _show(path)
        if w.kind in ("ws", "scratch", "safe", "fd"):
            return
        if w.kind == "tcp":
            self.refuse(f"opens a network connection through {shown}")
        elif w.kind == "device":
            if w.path and _DISK_DEVICE.match(w.path):
                self.refuse(f"{who} writes to a disk device ({shown})")
            else:
                self.refuse(f"{who} writes to {shown} (outside the workspace)")
        elif w.kind == "unknown":
            self.refuse(f"{who} writes to {shown}: where it points is only known at run time")
        else:
            self.refuse(f"{who} writes to {shown} (outside the workspace)")

    def check_read(self, path: str, who: str) -> None:
        s = self.secret(path)
        if s:
            self.refuse(f"reads secrets ({s})")
            return
        w = self.where(path)
        if w.kind == "tcp":
            self.refuse(f"opens a network connection through {_show(path)}")
        elif w.kind == "device" and w.path and _DISK_DEVICE.match(w.path):
            self.refuse(f"{who} reads a raw disk ({_show(path)})")

    def abs_comps(self, path: str) -> tuple | None:
        w = self.where(path)
        return w.comps if w.kind != "unknown" else None

    # ------------------------------------------------------------------ assignments

    def assign(self, name: str, value: str, ctx: _Ctx, append: bool = False) -> None:
        if name in _ENV_FORBIDDEN:
            self.refuse(f"sets {name} ({_ENV_FORBIDDEN[name]})")
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
        if name in _ENV_CODE and value and UNK not in value:
            self.nested(value, ctx, f"${name}", strict=False)

    def assignment(self, node, ctx: _Ctx) -> None:
        name_node = node.child_by_field_name("name")
        if name_node is None:
            return
        name = name_node.text.decode("utf-8", "surrogatepass")
        if name_node.type == "subscript":
            n2 = name_node.child_by_field_name("name")
            name = n2.text.decode("utf-8", "surrogatepass") if n2 else name
        value_node = node.child_by_field_name("value")
        value = self.fields(value_node, assignment=True)[0] if value_node is not None else ""
        append = any(c.type == "+=" for c in node.children)
        self.assign(name, value.translate(_UNQUOTE), ctx, append)

    # ------------------------------------------------------------------ commands

    def command(self, node, ctx: _Ctx) -> None:
        prefix, words, redirects = [], [], []
        for c in node.children:
            t = c.type
            if t == "variable_assignment":
                prefix.append(c)
            elif t in ("file_redirect", "herestring_redirect", "heredoc_redirect"):
                redirects.append(c)
            elif t == "command_name":
                words.append(c.children[0] if c.child_count else c)
            elif c.is_named and t != "comment":
                words.append(c)
        parent = node.parent
        if parent is not None and parent.type == "redirected_statement":
            redirects.extend(c for c in parent.children
                             if c.type in ("file_redirect", "herestring_redirect",
                                           "heredoc_redirect"))
        for a in prefix:
            n = a.child_by_field_name("name")
            name = n.text.decode("utf-8", "surrogatepass") if n is not None else ""
            if name in _ENV_FORBIDDEN:
                self.refuse(f"sets {name} ({_ENV_FORBIDDEN[name]})")
            elif name in _ENV_CODE:
                v = a.child_by_field_name("value")
                if v is not None:
                    val = self.fields(v, assignment=True)[0]
                    if UNK not in val:
                        self.nested(val.translate(_UNQUOTE), ctx, f"${name}", strict=False)
        variants = self.variants(node)
        for env in variants:
            saved = self.vars
            if env:
                self.vars = {**saved, **env}
            try:
                argv: list[str] = []
                for w in words:
                    argv.extend(self.fields(w))
                    if len(argv) > MAX_WORDS:
                        raise _Budget("too many words in one command")
                io = self.io(redirects)
            finally:
                if env:
                    self.vars = saved
            if argv:
                self.simple(argv, io, ctx)

    def variants(self, node) -> list[dict]:
        multi = [k for k, v in self.vars.items() if isinstance(v, tuple)]
        if not multi:
            return [{}]
        text = node.text
        used = [k for k in multi if ("$" + k).encode() in text or ("${" + k).encode() in text]
        envs: list[dict] = [{}]
        for k in used:
            envs = [{**e, k: alt} for e in envs for alt in self.vars[k]][:MAX_ALTERNATIVES]
        return envs

    def io(self, redirects) -> dict:
        io: dict = {}
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

    def io_file(self, r, io: dict) -> None:
        desc, op = None, None
        dest = r.child_by_field_name("destination")
        for c in r.children:
            if c.type == "file_descriptor":
                desc = c.text.decode()
            elif not c.is_named and op is None:
                op = c.type
        if dest is None or op is None:
            return
        target = self.fields(dest)
        target = target[0] if target else ""
        if op == "<" and desc in (None, "0"):
            io["stdin"] = ("file", target)
        elif op in (">", ">>", ">|", "&>", "&>>") and desc in (None, "1"):
            io["stdout"] = (target, op in (">>", "&>>"))
        elif op == ">&" and dest.type != "number" and target != "-" and desc in (None, "1"):
            io["stdout"] = (target, False)

    def heredoc_text(self, r) -> str:
        body = next((c for c in r.children if c.type == "heredoc_body"), None)
        if body is None:
            return ""
        start = next((c for c in r.children if c.type == "heredoc_start"), None)
        raw = body.text.decode("utf-8", "surrogatepass")
        quoted = start is not None and re.search(rb"['\"\\]", start.text) is not None
        if quoted or body.named_child_count == 0:
            return raw
        pieces, pos, base = [], body.start_byte, body.start_byte
        src = body.text
        for c in body.named_children:
            pieces.append(src[pos - base:c.start_byte - base].decode("utf-8", "surrogatepass"))
            if c.type == "heredoc_content":
                pieces.append(c.text.decode("utf-8", "surrogatepass"))
            else:
                segs: list = []
                self.segments(c, True, segs, 0, False)
                pieces.append("".join(s for s, _ in segs).translate(_UNQUOTE))
            pos = c.end_byte
        pieces.append(src[pos - base:].decode("utf-8", "surrogatepass"))
        return "".join(pieces)

    # ------------------------------------------------------------------ simple commands

    def simple(self, argv: list[str], io: dict, ctx: _Ctx) -> None:
        self.simples += 1
        if self.simples > MAX_SIMPLE:
            raise _Budget("too many commands to check (over %d)" % MAX_SIMPLE)
        if len(self.commands) < 256:
            self.commands.append([_show(a) for a in argv])
        i = 0
        cwds_saved = None
        for _ in range(64):
            if i >= len(argv):
                return
            word = argv[i]
            if UNK in word or word.startswith(PROC_MARK):
                if word == UNK and i == len(argv) - 1 and i > 0:
                    return  # `exec $x`-like with nothing known: refused below by the wrapper
                self.refuse(f"the program's name is only known at run time ({_show(word)})")
                return
            name = posixpath.basename(word.translate(_UNQUOTE)) or word
            name = self.hashed.get(name, name)
            if name in WRAPPERS:
                j = self.unwrap(name, argv, i, io, ctx)
                if j is None:
                    return
                if name in ("env",) and isinstance(j, tuple):
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

    def unwrap(self, name: str, argv: list[str], i: int, io: dict, ctx: _Ctx):
        """Index of the command a wrapper runs; None when it runs none (or it was checked)."""
        n = len(argv)
        j = i + 1
        if name in ("sudo", "doas"):
            self.refuse(f"privilege escalation ({name})")
            while j < n and argv[j].startswith("-"):
                if argv[j] in ("-u", "-g", "-C", "-p", "-r", "-t", "-U", "-h", "-D", "-R"):
                    j += 1
                j += 1
            return j
        if name == "env":
            cwd = None
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
                elif _ASSIGNMENT.match(a):
                    var = a.split("=", 1)[0]
                    if var in _ENV_FORBIDDEN:
                        self.refuse(f"sets {var} ({_ENV_FORBIDDEN[var]})")
                    elif var in _ENV_CODE:
                        self.nested(_as_text(a.split("=", 1)[1]), ctx, f"${var}",
                                    strict=False)
                    j += 1
                else:
                    break
            return (j, cwd)
        if name == "command":
            while j < n and argv[j].startswith("-"):
                if argv[j] in ("-v", "-V"):
                    return None
                j += 1
            return j
        if name in ("busybox", "toybox"):
            while j < n and argv[j].startswith("-"):
                j += 1
            return j
        if name == "exec":
            while j < n and argv[j].startswith("-"):
                j += 2 if argv[j] == "-a" else 1
            return j
        if name in ("nice", "ionice", "chrt", "taskset", "stdbuf", "time", "strace", "ltrace",
                    "timeout", "setsid", "nohup", "unbuffer", "chronic", "caffeinate",
                    "xvfb-run", "dbus-run-session", "fakeroot", "catchsegv", "nocache",
                    "builtin", "coproc"):
            takes = {"nice": {"-n", "--adjustment"}, "ionice": {"-c", "-n", "-p", "-P", "-u"},
                     "chrt": set(), "taskset": {"-c", "--cpu-list"}, "stdbuf": {"-i", "-o", "-e"},
                     "time": {"-f", "-o", "--format", "--output"},
                     "strace": {"-o", "-e", "-p", "-s", "-u", "-E", "-a", "-b", "-I", "-O", "-P",
                                "-S", "-X"},
                     "ltrace": {"-o", "-e", "-p", "-s", "-u", "-a", "-n", "-l", "-A", "-D"},
                     "timeout": {"-s", "-k", "--signal", "--kill-after"},
                     "xvfb-run": {"-n", "-s", "-f", "-e", "-p", "--server-args",
                                  "--server-num"}}.get(name, set())
            while j < n:
                a = argv[j]
                if a == "--":
                    j += 1
                    break
                if a.startswith("-") and len(a) > 1:
                    if name == "time" and a in ("-o", "--output") and j + 1 < n:
                        self.check_write(argv[j + 1], "time")
                    if name in ("strace", "ltrace") and a == "-o" and j + 1 < n:
                        self.check_write(argv[j + 1], name)
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
        if name == "flock":
            while j < n and argv[j].startswith("-"):
                if argv[j] in ("-c", "--command") and j + 1 < n:
                    self.shell_code(argv[j + 1], ctx, "flock -c")
                    return None
                j += 2 if argv[j] in ("-w", "--timeout", "-E", "--conflict-exit-code") else 1
            j += 1  # the lock file
            if j < n and argv[j] in ("-c", "--command") and j + 1 < n:
                self.shell_code(argv[j + 1], ctx, "flock -c")
                return None
            return j
        if name == "watch":
            while j < n and argv[j].startswith("-"):
                j += 2 if argv[j] in ("-n", "--interval", "-d", "-q") and argv[j] != "-d" else 1
            if j < n:
                self.shell_code(" ".join(argv[j:]), ctx, "watch")
            return None
        return j

    def cd_to(self, target: str, ctx: _Ctx) -> None:
        new = set()
        for cwd in self.cwds:
            if cwd is None:
                new.add(None)
                continue
            if target.startswith("/"):
                path = target
            else:
                path = cwd + "/" + target
            w = self._where_abs(path, True) if UNK not in target else _Where("unknown", None)
            if w.kind == "unknown" or any(_GLOB.search(c) for c in w.comps or ()):
                new.add(None)
            else:
                new.add(w.path)
        if ctx.loop and not target.startswith("/"):
            new.add(None)
        self.oldcwds = self.cwds
        self.cwds = frozenset(new | set(self.cwds)) if (ctx.cond or ctx.loop) else frozenset(new)

    def program(self, word: str, args: list[str], io: dict, ctx: _Ctx) -> None:
        raw = word.translate(_UNQUOTE)
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
        if _GLOB.search(name):
            names = [n for n in _KNOWN if fnmatch.fnmatchcase(n, name)]
            if self.policy.allow is not None:
                self.refuse(f"the program's name is a pattern ({_show(word)})")
            for n in names[:8]:
                before = len(self.reasons)
                self.rules(n, args, io, ctx, word)
                for k in range(before, len(self.reasons)):
                    self.reasons[k] = f"the pattern {_show(word)} may run {n}: " \
                                      f"{self.reasons[k]}"
            return
        self.rules(name, args, io, ctx, word)

    def rules(self, name: str, args: list[str], io: dict, ctx: _Ctx, word: str) -> None:
        policy = self.policy
        if policy.allow is not None and name not in policy.allow and name not in NOOP_BUILTINS:
            self.refuse(f"{name} is not on the allow list")
        if ctx.func is not None:
            self.functions.setdefault(ctx.func, []).append((name, ctx.spawn))
        for a in args:
            if "/" in a or a.startswith(("~", UNK)):
                val = a.split("=", 1)[1] if a.startswith("-") and "=" in a else a
                s = self.secret(val) if "/" in val else None
                if s:
                    self.refuse(f"reads secrets ({s})")
                elif "/dev/tcp/" in val or "/dev/udp/" in val:
                    self.refuse(f"opens a network connection through {_show(val)}")
                elif _DISK_DEVICE.match(val) and name != "dd" and not (
                        name in DISK_TOOLS or name.startswith(("mkfs", "mke2fs", "mkswap"))):
                    self.refuse(f"{name} uses a disk device ({_show(val)})")
        stdin = io.get("stdin")
        if stdin and stdin[0] == "file":
            self.check_read(stdin[1], name)
        out = io.get("stdout")
        if out:
            self.track_output(name, args, out, stdin)
        handler = _PROGRAM_RULES.get(name)
        if handler is not None:
            handler(self, name, args, io, ctx)
        if name in ESCALATION:
            self.refuse(f"privilege escalation ({name})")
        elif name in DISK_TOOLS or name.startswith(("mkfs", "mke2fs", "mkswap", "fsck.")):
            self.refuse(f"disk or filesystem tool ({name})")
        elif name in POWER:
            self.refuse(f"stops the machine ({name})")
        elif name in KERNEL:
            self.refuse(f"changes the system configuration ({name})")
        elif name in PACKAGE_TOOLS and any(a in PACKAGE_VERBS for a in args):
            self.refuse(f"changes the system's packages ({name})")
        if name in SHELLS:
            self.shell(name, args, io, ctx)
            return
        for pattern, lang, code_opts, value_opts in _INTERPRETERS:
            if pattern.fullmatch(name):
                self.interpreter(name, lang, code_opts, value_opts, args, io, ctx)
                return

    # ------------------------------------------------------------------ output tracking

    def track_output(self, name: str, args: list[str], out: tuple, stdin) -> None:
        target, append = out
        comps = self.abs_comps(target)
        if comps is None:
            return
        if name in DOWNLOADERS and name not in ("ssh", "openssl"):
            self.files[comps] = ("download", name)
            return
        text = None
        if name == "echo":
            text = self.echo_text(args)
        elif name == "printf" and args:
            text = _ansi_c(args[0]) if UNK not in args[0] else None
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

    @staticmethod
    def echo_text(args: list[str]) -> str:
        escapes = False
        while args and re.fullmatch(r"-[neE]+", args[0]):
            escapes = "e" in args[0] or escapes
            args = args[1:]
        text = " ".join(args) + "\n"
        return _ansi_c(text) if escapes else text

    def run_file(self, comps: tuple, word: str, ctx: _Ctx, lang: str) -> None:
        kind, content = self.files[comps]
        shown = _show(word)
        if kind == "download":
            self.refuse(f"runs {shown}, which it downloaded ({content})")
        elif kind == "opaque":
            self.refuse(f"runs {shown}, written by {content}: the script is not visible")
        elif lang == "shell" and not content.startswith("#!") or \
                re.match(r"#!\s*\S*\b(ba|da|z|k)?sh\b", content):
            if UNK in content:
                self.refuse(f"runs {shown}, a script only known at run time")
            else:
                self.nested(_as_text(content), ctx, shown, script=True)
        else:
            self.scan_code(lang if lang != "shell" else "script", _as_text(content), ctx,
                           shown)

    # ------------------------------------------------------------------ nested text

    def nested(self, text: str, ctx: _Ctx, label: str, positional: list[str] | None = None,
               strict: bool = True, script: bool = False) -> None:
        """Check ``text`` as bash, as if it ran where ``ctx`` is."""
        if ctx.nest >= MAX_NESTING:
            self.refuse("commands nested too deeply")
            return
        if not text.strip():
            return
        self.nested_chars += len(text)
        if self.nested_chars > MAX_NESTED_TEXT:
            raise _Budget("too much nested text to check")
        if _CONTROL.search(text.replace("\x00", "")) or _HIDDEN_RANGES.search(text):
            self.refuse(f"hidden or control characters in the text {label} runs")
            return
        tree = self.parse(text)
        if tree is None:
            if strict:
                self.refuse(f"cannot parse the text {label} runs")
            return
        snap = self.snapshot()
        self.stack.append((_RESTORE, snap, None))
        if positional is not None:
            self.vars = {k: v for k, v in self.vars.items() if not k.isdigit() and k != "@"}
            for k, v in enumerate(positional[:10]):
                self.vars[str(k)] = v
            if len(positional) > 1:
                self.vars["@"] = " ".join(positional[1:])
        if script:
            self.vars["0"] = SELF_MARK
        self.stack.append((_NODE, tree.root_node,
                           _Ctx(0, ctx.nest + 1, ctx.cond, False, None, False, False, None)))

    def shell_code(self, code: str, ctx: _Ctx, label: str,
                   positional: list[str] | None = None) -> None:
        if UNK in code or code.startswith(PROC_MARK):
            self.refuse(f"{label} runs text only known at run time (command output or a "
                        f"variable): what runs would not be what was checked")
            return
        self.nested(_as_text(code), ctx, label, positional)

    def shell(self, name: str, args: list[str], io: dict, ctx: _Ctx) -> None:
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

    def script_arg(self, name: str, script: str, ctx: _Ctx, lang: str,
                   positional: list[str] | None = None, io: dict | None = None) -> None:
        if script.startswith(PROC_MARK):
            idx = int(script.strip(PROC_MARK).split(PROC_MARK)[0])
            node = self.procsubs[idx]
            self.producers(name, [c for c in node.named_children], ctx, lang, "runs")
            return
        if UNK in script:
            self.refuse(f"{name} runs a script only known at run time ({_show(script)})")
            return
        if script in ("/dev/stdin", "/dev/fd/0", "/proc/self/fd/0", "-"):
            self.script_stdin(name, io or {}, ctx, lang)
            return
        comps = self.abs_comps(script)
        if comps is not None and comps in self.files:
            self.run_file(comps, script, ctx, lang)

    def script_stdin(self, name: str, io: dict, ctx: _Ctx, lang: str) -> None:
        stdin = io.get("stdin")
        if stdin is not None:
            if stdin[0] == "text":
                if lang == "shell":
                    self.shell_code(stdin[1], ctx, f"the here-document given to {name}")
                else:
                    self.scan_code(lang, _as_text(stdin[1]), ctx, name)
            else:
                self.script_arg(name, stdin[1], ctx, lang)
            return
        if ctx.up:
            self.producers(name, list(ctx.up), ctx, lang, "pipes")

    def producers(self, name: str, stages: list, ctx: _Ctx, lang: str, verb: str) -> None:
        """A shell or interpreter reads its program from the output of ``stages``."""
        progs = self.stage_programs(stages)
        if any(p in DOWNLOADERS for p, _ in progs):
            what = "pipes a download into" if verb == "pipes" else "runs a download with"
            self.refuse(f"{what} {name}")
            return
        last = self.stage_programs(stages[-1:])
        if len(last) == 1:
            prog, argv = last[0]
            if prog == "echo" and argv is not None:
                text = self.echo_text(argv)
            elif prog == "printf" and argv:
                text = _ansi_c(argv[0])
            elif prog == "cat" and argv is not None and argv and "-" not in argv:
                for f in argv:
                    comps = self.abs_comps(f)
                    if comps is not None and comps in self.files:
                        self.run_file(comps, f, ctx, lang)
                return
            else:
                text = None
            if text is not None:
                if lang == "shell":
                    self.shell_code(text, ctx, f"the text piped into {name}")
                else:
                    self.scan_code(lang, _as_text(text), ctx, name)
                return
        shown = ", ".join(dict.fromkeys(p for p, _ in progs)) or "a command"
        if lang == "shell":
            self.refuse(f"{verb} the output of {shown} into {name}: the script is not visible"
                        if verb == "pipes" else
                        f"{name} runs the output of {shown}: the script is not visible")
        elif any(p in DECODERS for p, _ in last):
            self.refuse(f"{verb} decoded or generated text ({shown}) into {name}")

    def stage_programs(self, stages: list) -> list[tuple[str, list[str] | None]]:
        """(program, static argv or None) of the commands in pipeline stages."""
        out: list = []
        todo = list(reversed(stages))
        seen = 0
        while todo and seen < 200:
            node = todo.pop()
            seen += 1
            if node.type == "command":
                name_node = node.child_by_field_name("name")
                if name_node is None:
                    continue
                try:
                    words = []
                    for c in node.children:
                        if c.type == "command_name":
                            words.extend(self.fields(c.children[0] if c.child_count else c))
                        elif c.is_named and c.type not in ("variable_assignment",
                                                           "file_redirect",
                                                           "herestring_redirect"):
                            words.extend(self.fields(c))
                except _Budget:
                    raise
                if not words:
                    continue
                k = 0
                while k < len(words) and posixpath.basename(words[k]) in WRAPPERS:
                    k += 1
                    while k < len(words) and (words[k].startswith("-") or
                                              _ASSIGNMENT.match(words[k]) or
                                              re.fullmatch(r"[\d.]+[smhd]?", words[k])):
                        k += 1
                if k >= len(words):
                    continue
                prog = posixpath.basename(words[k].translate(_UNQUOTE))
                argv = words[k + 1:]
                out.append((prog, None if any(UNK in a for a in argv) else
                            [a.translate(_UNQUOTE) for a in argv]))
            else:
                todo.extend(reversed([c for c in node.named_children]))
        return out

    # ------------------------------------------------------------------ interpreters

    def interpreter(self, name, lang, code_opts, value_opts, args, io, ctx) -> None:
        i, n = 0, len(args)
        code = None
        script = None
        module = False
        if lang == "awk":
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
            if code is not None:
                self.scan_code("awk", code, ctx, name)
            elif script is not None:
                self.script_arg(name, script, ctx, lang)
            return
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
                letters = a[1:]
                consumed = False
                for k, ch in enumerate(letters):
                    if ch in code_opts:
                        code = letters[k + 1:] or (args[i + 1] if i + 1 < n else "")
                        i += 1 if letters[k + 1:] else 2
                        consumed = True
                        break
                    if ch in value_opts:
                        if ch == "m" and lang == "python":
                            module = True
                        i += 1 if letters[k + 1:] else 2
                        consumed = True
                        break
                if code is not None or module:
                    break
                if not consumed:
                    i += 1
                continue
            script = a
            i += 1
            break
        if code is not None:
            if lang == "perl":
                files = [a for a in args[i:] if not a.startswith("-")]
                if "-i" in "".join(x[:2] for x in args[:i]) or any(
                        x.startswith("-") and not x.startswith("--") and "i" in x
                        for x in args[:i]):
                    for f in files:
                        self.check_write(f, "perl -i")
            self.notes.append(f"{name}: inline code is checked only for obvious patterns")
            self.scan_code(lang, code, ctx, name)
            return
        if module:
            return
        if script is not None and script != "-":
            self.script_arg(name, script, ctx, lang)
            return
        self.script_stdin(name, io, ctx, lang)

    def scan_code(self, lang: str, code: str, ctx: _Ctx, who: str) -> None:
        """Obvious patterns in an interpreter's code (it is not parsed)."""
        if UNK in code:
            self.refuse(f"{who} runs code only known at run time")
            return
        if len(code) > MAX_COMMAND:
            self.refuse(f"{who}: inline code too long to check")
            return
        literals = []
        for m in _STR.finditer(code):
            lit = m.group(1) if m.group(1) is not None else m.group(2)
            literals.append(lit.replace("\\'", "'").replace('\\"', '"').replace("\\n", "\n")
                            .replace("\\\\", "\\"))
            if len(literals) > 200:
                break
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
            elif _DISK_DEVICE.match(p2):
                self.refuse(f"{who} code opens a disk device ({p})")
        if _PRIV.search(code):
            self.refuse(f"privilege escalation in {who} code")
        if _FORK.search(code):
            self.refuse(f"{who} code forks (a fork bomb?)")
        if _SOCKET.search(code) and _REVSHELL.search(code):
            self.refuse(f"{who} code connects a shell to the network (a reverse shell?)")

    # ------------------------------------------------------------------ after the walk

    def fork_bombs(self) -> None:
        """A function that reaches itself through calls, one of them in a pipeline or the
        background: a spawning edge inside a strongly connected component (Tarjan, without
        recursion)."""
        graph = {f: [(g, s) for g, s in calls if g in self.functions]
                 for f, calls in self.functions.items()}
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        comp: dict[str, int] = {}
        on, stack, counter = set(), [], 0
        for root in graph:
            if root in index:
                continue
            work = [(root, 0)]
            while work:
                v, i = work.pop()
                if i == 0:
                    index[v] = low[v] = counter
                    counter += 1
                    stack.append(v)
                    on.add(v)
                edges = graph[v]
                if i > 0:
                    w = edges[i - 1][0]
                    if comp.get(w) is None and w in on:
                        low[v] = min(low[v], low[w])
                while i < len(edges):
                    w = edges[i][0]
                    i += 1
                    if w not in index:
                        work.append((v, i))
                        work.append((w, 0))
                        break
                    if w in on:
                        low[v] = min(low[v], index[w])
                else:
                    if low[v] == index[v]:
                        while True:
                            w = stack.pop()
                            on.discard(w)
                            comp[w] = index[v]
                            if w == v:
                                break
        for f, calls in graph.items():
            for g, spawned in calls:
                if spawned and comp.get(f) == comp.get(g):
                    self.refuse(f"fork bomb (the function {f} starts itself in a pipeline or "
                                f"the background)")
                    break


_RANK = {"ws": 0, "safe": 0, "fd": 0, "scratch": 1, "scratchroot": 2, "device": 3, "tcp": 3,
         "home": 3, "outside": 3, "unknown": 4}
_LEAF_HANDLED = {"heredoc_body"}


# ---------------------------------------------------------------------- node handlers

def _h_command(self: _Checker, node, ctx: _Ctx) -> None:
    if node.child_count > MAX_WORDS:
        raise _Budget("too many words in one command")
    if ctx.incmd:
        ctx = ctx.but(incmd=False)
    self.stack.append((_COMMAND, node, ctx))
    self.stack.append((_RESTORE, self.snapshot(), None))
    self.push_children(node, ctx, incmd=True, spawn=False, up=None)


def _h_list(self: _Checker, node, ctx: _Ctx) -> None:
    kids = [c for c in node.children if c.is_named]
    items = []
    for k, c in enumerate(kids):
        items.append((_NODE, c, ctx.but(depth=ctx.depth + 1, cond=ctx.cond or k > 0)))
    self.stack.extend(reversed(items))


def _h_pipeline(self: _Checker, node, ctx: _Ctx) -> None:
    stages = [c for c in node.children if c.is_named]
    items = [(_NODE, s, ctx.but(depth=ctx.depth + 1, spawn=True,
                                up=tuple(stages[max(0, k - 16):k]) if k else None))
             for k, s in enumerate(stages)]
    self.stack.append((_RESTORE, self.snapshot(), None))
    self.stack.extend(reversed(items))


def _h_subshell(self: _Checker, node, ctx: _Ctx) -> None:
    self.stack.append((_RESTORE, self.snapshot(), None))
    self.push_children(node, ctx, up=None if node.type != "subshell" else ctx.up)


def _h_process_substitution(self: _Checker, node, ctx: _Ctx) -> None:
    up = None
    if node.children and node.children[0].type == ">(":
        p, hops = node.parent, 0
        while p is not None and p.type != "command" and hops < 8:
            p, hops = p.parent, hops + 1
        up = (p,) if p is not None else None
    self.stack.append((_RESTORE, self.snapshot(), None))
    self.push_children(node, ctx, up=up, incmd=False, spawn=True)


def _h_branch(self: _Checker, node, ctx: _Ctx) -> None:
    self.push_children(node, ctx, cond=True)


def _h_while(self: _Checker, node, ctx: _Ctx) -> None:
    kw = node.children[0].type if node.children else "while"
    cond = node.child_by_field_name("condition")
    endless = False
    if cond is not None:
        text = cond.text.strip().rstrip(b";").strip()
        endless = (kw == "while" and text in (b"true", b":", b"[ 1 ]", b"((1))", b"/bin/true")) \
            or (kw == "until" and text in (b"false", b"/bin/false", b"! true"))
    self.push_children(node, ctx, cond=True, loop=True, endless=endless or ctx.endless)


def _h_c_for(self: _Checker, node, ctx: _Ctx) -> None:
    endless = re.match(rb"for\s*\(\([^;]*;\s*;", node.text) is not None
    self.push_children(node, ctx, cond=True, loop=True, endless=endless or ctx.endless)


def _h_for(self: _Checker, node, ctx: _Ctx) -> None:
    var = node.child_by_field_name("variable")
    values = []
    has_in = False
    for c in node.children:
        if c.type == "in":
            has_in = True
    if has_in:
        for c in node.children_by_field_name("value"):
            values.extend(self.fields(c))
    name = var.text.decode("utf-8", "surrogatepass") if var is not None else ""
    if name:
        if not has_in or not values or len(values) > MAX_ALTERNATIVES:
            self.vars[name] = UNK if has_in is False or len(values) > MAX_ALTERNATIVES else ""
        else:
            vals = tuple(dict.fromkeys(v.translate(_UNQUOTE) for v in values))
            self.vars[name] = vals if len(vals) > 1 else vals[0]
    self.push_children(node, ctx, cond=True, loop=True)


def _h_function(self: _Checker, node, ctx: _Ctx) -> None:
    name_node = node.child_by_field_name("name")
    name = name_node.text.decode("utf-8", "surrogatepass") if name_node is not None else "?"
    self.functions.setdefault(name, [])
    self.stack.append((_RESTORE, self.snapshot(), None))
    self.push_children(node, ctx, func=name, cond=True, spawn=False, loop=False, endless=False,
                       up=None)


def _h_assignment(self: _Checker, node, ctx: _Ctx) -> None:
    if not ctx.incmd:
        self.assignment(node, ctx)
    self.push_children(node, ctx)


def _h_declaration(self: _Checker, node, ctx: _Ctx) -> None:
    kw = node.children[0].type if node.children else ""
    for c in node.children:
        if c.type == "variable_assignment":
            self.assignment(c, ctx.but(cond=ctx.cond or kw == "local" and ctx.func is not None))
        elif c.type == "variable_name":
            name = c.text.decode("utf-8", "surrogatepass")
            if name in _ENV_FORBIDDEN:
                self.refuse(f"sets {name} ({_ENV_FORBIDDEN[name]})")
    if self.policy.allow is not None and kw not in NOOP_BUILTINS:
        self.refuse(f"{kw} is not on the allow list")
    self.push_children(node, ctx, incmd=True)


def _h_unset(self: _Checker, node, ctx: _Ctx) -> None:
    for c in node.named_children:
        if c.type == "variable_name":
            self.vars[c.text.decode("utf-8", "surrogatepass")] = ""
    self.push_children(node, ctx, incmd=True)


def _h_file_redirect(self: _Checker, node, ctx: _Ctx) -> None:
    op = None
    dest = node.child_by_field_name("destination")
    for c in node.children:
        if not c.is_named and op is None:
            op = c.type
    if dest is not None and op is not None:
        fields = self.fields(dest)
        target = fields[0] if fields else ""
        if op in (">", ">>", ">|", "&>", "&>>") or (op == ">&" and dest.type != "number"
                                                     and target != "-"):
            self.check_write(target, "redirection")
        elif op in ("<", "<&") and dest.type != "number":
            self.check_read(target, "redirection")
    self.push_children(node, ctx)


def _h_heredoc_body(self: _Checker, node, ctx: _Ctx) -> None:
    self.push_children(node, ctx)


_HANDLERS = {
    "command": _h_command, "list": _h_list, "pipeline": _h_pipeline,
    "subshell": _h_subshell, "command_substitution": _h_subshell,
    "process_substitution": _h_process_substitution,
    "if_statement": _h_branch, "elif_clause": _h_branch, "else_clause": _h_branch,
    "case_statement": _h_branch, "case_item": _h_branch,
    "while_statement": _h_while, "c_style_for_statement": _h_c_for, "for_statement": _h_for,
    "function_definition": _h_function, "variable_assignment": _h_assignment,
    "declaration_command": _h_declaration, "unset_command": _h_unset,
    "file_redirect": _h_file_redirect, "heredoc_body": _h_heredoc_body,
}


# ---------------------------------------------------------------------- program rules

def _paths(args: list[str]) -> list[str]:
    out, after = [], False
    for a in args:
        if after or not a.startswith("-") or a == "-":
            out.append(a)
        elif a == "--":
            after = True
    return out


def _r_rm(self: _Checker, name, args, io, ctx) -> None:
    flags = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
    recursive = name == "rm" and ("r" in flags.lower() or "--recursive" in args)
    if "--no-preserve-root" in args:
        self.refuse("rm --no-preserve-root")
    for p in _paths(args):
        shown = _show(p)
        w = self.where(p, follow_last=False)
        if w.kind in ("ws", "safe", "fd", "scratch"):
            continue
        if w.comps == () or (w.comps is not None and len(w.comps) == 1 and
                             _GLOB.search(w.comps[0])):
            self.refuse(f"deletes {shown}")
        elif w.kind == "home" and w.comps == self.home_comps:
            self.refuse(f"deletes {shown}")
        elif w.kind == "unknown":
            self.refuse(f"{'recursive ' if recursive else ''}delete of {shown}: where it "
                        f"points is only known at run time")
        elif w.kind == "scratchroot":
            self.refuse(f"deletes {shown} (a shared scratch directory itself, or all of it)")
        elif recursive:
            self.refuse(f"recursive delete outside the workspace ({shown})")
        else:
            self.refuse(f"deletes {shown} (outside the workspace)")


def _r_find(self: _Checker, name, args, io, ctx) -> None:
    i = 0
    while i < len(args) and args[i] in ("-H", "-L", "-P", "-O", "-D"):
        i += 2 if args[i] in ("-D",) else 1
    roots = []
    while i < len(args) and not args[i].startswith(("-", "(", "!", ",")):
        roots.append(args[i])
        i += 1
    roots = roots or ["."]
    expr = args[i:]
    j = 0
    while j < len(expr):
        a = expr[j]
        if a == "-delete":
            for r in roots:
                if self.where(r).kind not in ("ws", "scratch"):
                    self.refuse(f"find deletes outside the workspace ({_show(r)})")
        elif a in ("-fprint", "-fprint0", "-fprintf", "-fls") and j + 1 < len(expr):
            self.check_write(expr[j + 1], "find")
        elif a in ("-exec", "-execdir", "-ok", "-okdir"):
            k = j + 1
            while k < len(expr) and expr[k] not in (";", "+"):
                k += 1
            inner = expr[j + 1:k]
            if inner:
                for r in roots[:4]:
                    base = r.rstrip("/") or "/"
                    placeholder = (r.rstrip("/") + "/x") if a.startswith(("-exec", "-ok")) and \
                        a not in ("-execdir", "-okdir") else "./x"
                    if a in ("-execdir", "-okdir"):
                        saved = self.cwds
                        self.cd_to(base, ctx)
                    try:
                        argv = [w.replace("{}", placeholder) for w in inner]
                        self.simple(argv, {}, ctx)
                    finally:
                        if a in ("-execdir", "-okdir"):
                            self.cwds = saved
            j = k
        j += 1


def _placeholder(self: _Checker, ctx: _Ctx) -> str:
    """What xargs appends: a path like the files its input names, or UNK."""
    if not ctx.up:
        return UNK
    last = self.stage_programs(list(ctx.up[-1:]))
    if len(last) != 1 or last[0][1] is None:
        return UNK
    prog, argv = last[0]
    if prog == "find":
        k = 0
        while k < len(argv) and argv[k] in ("-H", "-L", "-P"):
            k += 1
        r = argv[k] if k < len(argv) and not argv[k].startswith(("-", "(", "!", ",")) else "."
        return r.rstrip("/") + "/x"
    if prog in ("ls", "git", "grep", "fd", "rg") and not any(
            a.startswith("/") or a.startswith("..") or a.startswith("~") for a in argv):
        return "./x"
    if prog in ("echo", "printf") and argv:
        return argv[-1]
    return UNK


def _r_xargs(self: _Checker, name, args, io, ctx) -> None:
    i, repl = 0, None
    takes = {"-a", "-d", "-E", "-e", "-I", "-L", "-l", "-n", "-P", "-s", "--arg-file",
             "--delimiter", "--max-args", "--max-procs", "--max-chars", "--max-lines",
             "--replace", "--eof"}
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        a = args[i]
        if a == "--":
            i += 1
            break
        if a in ("-I", "--replace") and i + 1 < len(args):
            repl = args[i + 1]
        elif a.startswith("-I") and len(a) > 2:
            repl = a[2:]
        elif a.startswith(("-i", "--replace=")):
            repl = a.split("=", 1)[1] if "=" in a else (a[2:] or "{}")
        i += 2 if a in takes else 1
    inner = args[i:] or ["echo"]
    ph = _placeholder(self, ctx)
    if repl:
        argv = [w.replace(repl, ph) for w in inner]
    else:
        argv = inner + [ph]
    self.simple(argv, {}, ctx.but(up=None))


def _r_parallel(self: _Checker, name, args, io, ctx) -> None:
    if ":::" in args:
        k = args.index(":::")
        cmd, values = args[:k], args[k + 1:]
        cmd = [a for a in cmd if not a.startswith("-")]
        for v in values[:8]:
            text = " ".join(cmd).replace("{}", v) if "{}" in " ".join(cmd) else \
                " ".join(cmd + [v])
            self.shell_code(text, ctx, "parallel")


def _r_eval(self: _Checker, name, args, io, ctx) -> None:
    text = " ".join(args)
    if UNK in text or PROC_MARK in text:
        self.refuse("eval of text only known at run time: what runs would not be what was "
                    "checked")
        return
    self.nested(_as_text(text), ctx, "eval")


def _r_source(self: _Checker, name, args, io, ctx) -> None:
    if not args:
        return
    script = args[0]
    if UNK in script:
        self.refuse(f"{name} of a file only known at run time ({_show(script)})")
        return
    self.script_arg(name, script, ctx, "shell", io=io)
    if not script.startswith(PROC_MARK) and script not in ("/dev/stdin", "/dev/fd/0"):
        self.notes.append(f"{name} {_show(script)}: the file's commands are not checked")


def _r_trap(self: _Checker, name, args, io, ctx) -> None:
    args = [a for a in args if a not in ("--",)]
    if args and not args[0].startswith("-") and args[0] != "":
        self.shell_code(args[0], ctx, "trap")


def _r_alias(self: _Checker, name, args, io, ctx) -> None:
    for a in args:
        if "=" in a and not a.startswith("-"):
            self.shell_code(a.split("=", 1)[1], ctx, "alias")


def _r_hash(self: _Checker, name, args, io, ctx) -> None:
    if "-p" in args:
        k = args.index("-p")
        if k + 2 < len(args):
            self.hashed[args[k + 2]] = posixpath.basename(args[k + 1])


def _r_cd(self: _Checker, name, args, io, ctx) -> None:
    if name == "popd":
        if self.dirstack:
            self.cwds, self.dirstack = self.dirstack[-1], self.dirstack[:-1]
        else:
            self.cwds = frozenset([None])
        return
    targets = [a for a in args if not a.startswith("-") or a == "-"]
    if name == "pushd":
        self.dirstack = self.dirstack + (self.cwds,)
    if not targets:
        self.oldcwds, self.cwds = self.cwds, frozenset([HOME_DIR])
        return
    target = targets[0]
    if target == "-":
        self.oldcwds, self.cwds = self.cwds, self.oldcwds
        return
    self.cd_to(target, ctx)


def _r_kill(self: _Checker, name, args, io, ctx) -> None:
    if name == "kill":
        targets, signal_seen, i = [], False, 0
        while i < len(args):
            a = args[i]
            if a == "--":
                targets.extend(args[i + 1:])
                break
            if a in ("-s", "-n"):
                i += 2
                signal_seen = True
                continue
            if a.startswith("-") and not signal_seen and a not in ("-1",) or \
                    (a.startswith("-") and not signal_seen and len(args) == 1):
                signal_seen = True
            elif a in ("-l", "-L"):
                return
            else:
                targets.append(a)
            i += 1
        for t in targets:
            if t in ("-1", "1", "-0x1") or t.lstrip("-") == "1":
                self.refuse("kills every process (or init)")
            elif PPID_MARK in t:
                self.refuse("kills the agent ($PPID)")
        return
    if any(a in ("-u", "--user", "-U", "--uid") or a.startswith(("-u", "--user=")) for a in args):
        self.refuse(f"{name} by user")
    patterns = [a for a in args if not a.startswith("-")]
    for p in patterns:
        if re.fullmatch(r"\.\*?|\^?|\.\+|.*\b(bzzz|python[0-9.]*|trio|init|systemd|sshd)\b.*",
                        p.translate(_UNQUOTE)):
            self.refuse(f"{name} {_show(p)}: would kill the agent or the system")


def _r_chmod(self: _Checker, name, args, io, ctx) -> None:
    paths = _paths(args)
    if not any(a.startswith("--reference") for a in args) and paths:
        mode, paths = paths[0], paths[1:]
        if re.fullmatch(r"0*[2-7][0-7]{3}", mode) or re.search(r"[ugoa]*[+=][rwxXt]*s", mode):
            self.refuse("sets a setuid/setgid bit")
    for p in paths:
        self.check_write(p, name)


def _r_chown(self: _Checker, name, args, io, ctx) -> None:
    paths = _paths(args)
    if not any(a.startswith("--reference") for a in args) and paths:
        owner, paths = paths[0], paths[1:]
        if name == "chgrp" and owner in ("root", "0", "wheel", "sudo", "adm") or \
                name == "chown" and re.split("[:.]", owner)[0] in ("root", "0"):
            self.refuse("gives files to root")
    for p in paths:
        self.check_write(p, name)


def _r_writer_all(self: _Checker, name, args, io, ctx) -> None:
    """Programs that write every path argument."""
    skip_next = {"truncate": {"-s", "--size", "-r", "--reference"}, "touch": {"-d", "-r", "-t"},
                 "mkdir": {"-m", "--mode"}, "shred": {"-n", "-s", "--iterations", "--size"},
                 "setfacl": {"-m", "-x", "-M", "-X"}, "mknod": {"-m"}, "mkfifo": {"-m"},
                 "split": {"-b", "-l", "-n", "-C", "-a"}}.get(name, set())
    i, paths = 0, []
    while i < len(args):
        a = args[i]
        if a in skip_next:
            i += 2
            continue
        if not a.startswith("-") or a == "-":
            paths.append(a)
        i += 1
    if name == "tee":
        for p in paths:
            self.check_write(p, name)
        return
    if name in ("unlink", "rmdir"):
        for p in paths:
            w = self.where(p, follow_last=False)
            if w.kind not in ("ws", "scratch", "safe"):
                self.refuse(f"{name} deletes {_show(p)} (outside the workspace)")
        return
    if name == "split":
        paths = paths[1:2]
    for p in paths:
        self.check_write(p, name, follow_last=name not in ("mkdir",))


def _r_copy(self: _Checker, name, args, io, ctx) -> None:
    """cp, mv, ln, install, rsync: a destination (and for ln and cp, what it stands for)."""
    paths, dest, i = [], None, 0
    takes = {"-t", "--target-directory", "-S", "--suffix", "-m", "--mode", "-o", "--owner",
             "-g", "--group", "-e", "--rsh", "--exclude", "--include", "--filter", "-f",
             "--rsync-path", "--chmod", "--backup-dir", "-B", "--block-size", "--max-size",
             "--min-size", "--bwlimit", "--timeout", "--port", "--log-file", "--files-from",
             "--exclude-from", "--include-from", "--partial-dir", "--temp-dir"}
    after = False
    while i < len(args):
        a = args[i]
        if not after and a == "--":
            after = True
        elif not after and a in ("-t", "--target-directory") and i + 1 < len(args):
            dest = args[i + 1]
            i += 1
        elif not after and a.startswith("--target-directory="):
            dest = a.split("=", 1)[1]
        elif not after and name == "rsync" and a in ("-e", "--rsh") and i + 1 < len(args):
            self.shell_code(args[i + 1], ctx, "rsync -e")
            i += 1
        elif not after and name == "rsync" and a.startswith("--rsh="):
            self.shell_code(a.split("=", 1)[1], ctx, "rsync -e")
        elif not after and name == "install" and a in ("-m", "--mode") and i + 1 < len(args):
            if re.fullmatch(r"0*[2-7][0-7]{3}", args[i + 1]) or "s" in args[i + 1]:
                self.refuse("sets a setuid/setgid bit")
            i += 1
        elif not after and name == "install" and a in ("-o", "--owner") and i + 1 < len(args):
            if args[i + 1] in ("root", "0"):
                self.refuse("gives files to root")
            i += 1
        elif not after and a in takes:
            i += 1
        elif after or not a.startswith("-"):
            paths.append(a)
        i += 1
    if name == "rsync":
        paths = [p for p in paths if not re.match(r"^[\w.-]+@?[\w.-]*:", p)]
    install_dirs = name == "install" and "-d" in args
    if install_dirs:
        for p in paths:
            self.check_write(p, name)
        return
    if dest is None:
        if len(paths) < (1 if name == "ln" else 2):
            if name == "ln" and paths:
                dest = "./" + posixpath.basename(paths[0].rstrip("/"))
            else:
                return
        else:
            dest, paths = paths[-1], paths[:-1]
    symbolic = name == "ln" and any(a.startswith("-") and not a.startswith("--") and "s" in a
                                    or a == "--symbolic" for a in args)
    self.check_write(dest, name, follow_last=not (name == "ln"))
    if name == "mv":
        for p in paths:
            w = self.where(p, follow_last=False)
            if w.kind not in ("ws", "scratch", "safe", "unknown"):
                self.refuse(f"mv moves {_show(p)} away (outside the workspace)")
    dcomps = self.abs_comps(dest)
    if dcomps is None:
        return
    into_dir = dest.endswith("/") or len(paths) > 1
    for src in paths[:16]:
        target = dcomps + (posixpath.basename(src.rstrip("/")),) if into_dir else dcomps
        if name == "ln":
            if symbolic and not src.startswith("/"):
                link_dir = "/" + "/".join(target[:-1])
                w = self._where_abs(link_dir + "/" + src, True) if UNK not in src \
                    else _Where("unknown", None)
            else:
                w = self.where(src)
            self.links[target] = w.comps if w.kind != "unknown" else None
            if w.comps is not None and w.comps and not _GLOB.search(w.comps[-1]):
                self.programs[target] = w.comps[-1]
        elif name in ("cp", "install", "mv"):
            scomps = self.abs_comps(src)
            if scomps is None:
                continue
            if scomps in self.files:
                self.files[target] = self.files[scomps]
            elif scomps in self.programs:
                self.programs[target] = self.programs[scomps]
            elif self.where(src).kind not in ("ws", "scratch") and scomps:
                self.programs[target] = scomps[-1]


def _r_sed(self: _Checker, name, args, io, ctx) -> None:
    inplace = any(a.startswith("-i") or a.startswith("--in-place") or
                  (a.startswith("-") and not a.startswith("--") and "i" in a[1:] and
                   not a.startswith("-e")) for a in args)
    scripts, files, i, has_e = [], [], 0, False
    while i < len(args):
        a = args[i]
        if a in ("-e", "--expression") and i + 1 < len(args):
            scripts.append(args[i + 1])
            has_e = True
            i += 2
            continue
        if a in ("-f", "--file") and i + 1 < len(args):
            has_e = True
            i += 2
            continue
        if a.startswith("--expression="):
            scripts.append(a.split("=", 1)[1])
            has_e = True
        elif not a.startswith("-") or a == "-":
            files.append(a)
        i += 1
    if not has_e and files:
        scripts.append(files.pop(0))
    for s in scripts:
        if _SED_EXEC.search(s):
            self.refuse("sed script runs commands (e)")
        for m in _SED_WRITE.finditer(s):
            target = m.group(1) or m.group(3)
            if target and target not in ("/dev/stdout", "/dev/stderr"):
                self.check_write(target, "sed")
    if inplace:
        for f in files:
            self.check_write(f, name)


def _r_tar(self: _Checker, name, args, io, ctx) -> None:
    first = args[0] if args else ""
    mode = first.lstrip("-") if first and not first.startswith("--") else ""
    flags = "".join(a.lstrip("-") for a in args if a.startswith("-") and not a.startswith("--"))
    creating = any(c in (mode + flags) for c in "cru") or "--create" in args
    extracting = "x" in (mode + flags) or "--extract" in args or "--get" in args
    dest = None
    for k, a in enumerate(args):
        if a in ("-C", "--directory") and k + 1 < len(args):
            dest = args[k + 1]
        elif a.startswith("--directory="):
            dest = a.split("=", 1)[1]
        elif a in ("-I", "--use-compress-program") and k + 1 < len(args):
            self.shell_code(args[k + 1], ctx, "tar -I")
        elif a.startswith(_CODE_OPTIONS["tar"]):
            code = a.split("=", 1)[1]
            if code.startswith("exec="):
                code = code[5:]
            self.shell_code(code, ctx, "tar")
        elif creating and (a == "-f" or a == "--file") and k + 1 < len(args):
            self.check_write(args[k + 1], "tar")
        elif creating and a.startswith("--file="):
            self.check_write(a.split("=", 1)[1], "tar")
    if creating and mode and "f" in mode and not first.startswith("-") and len(args) > 1:
        self.check_write(args[1], "tar")
    if extracting and dest is not None:
        self.check_write(dest if dest.endswith("/") else dest + "/", "tar",)
    if extracting and ("-P" in args or "--absolute-names" in args):
        self.refuse("tar extracts absolute paths (-P)")


def _r_unzip(self: _Checker, name, args, io, ctx) -> None:
    for k, a in enumerate(args):
        if a == "-d" and k + 1 < len(args):
            self.check_write(args[k + 1].rstrip("/") + "/", name)
        elif name.startswith("7z") and a.startswith("-o") and len(a) > 2:
            self.check_write(a[2:] + "/", name)


def _r_dd(self: _Checker, name, args, io, ctx) -> None:
    for a in args:
        if a.startswith("of="):
            target = a[3:]
            w = self.where(target)
            if w.kind == "device" and w.path and _DISK_DEVICE.match(w.path):
                self.refuse(f"dd writes to {_show(target)} (a disk device)")
            elif w.kind not in ("ws", "scratch", "safe", "fd"):
                self.refuse(f"dd writes to {_show(target)} (outside the workspace)")
        elif a.startswith("if="):
            self.check_read(a[3:], "dd")


def _r_download(self: _Checker, name, args, io, ctx) -> None:
    outs, dirs = [], []
    urls = [a for a in args if re.match(r"^[a-z]+://", a)]
    for k, a in enumerate(args):
        nxt = args[k + 1] if k + 1 < len(args) else None
        if name == "curl":
            if a in ("-o", "--output") and nxt:
                outs.append(nxt)
            elif a.startswith("-o") and len(a) > 2 and not a.startswith("--"):
                outs.append(a[2:])
            elif a == "--output-dir" and nxt:
                dirs.append(nxt)
            elif a in ("-O", "--remote-name") or (a.startswith("-") and not a.startswith("--")
                                                  and "O" in a):
                outs.extend(posixpath.basename(u.split("?")[0]) for u in urls)
            elif a in ("-T", "--upload-file") and nxt:
                self.check_read(nxt, "curl")
            elif a.startswith("-d@") or a.startswith("--data-binary=@") or (
                    a in ("-d", "--data", "--data-binary", "-F", "--form") and nxt and "@" in nxt):
                val = (nxt if a in ("-d", "--data", "--data-binary", "-F", "--form") else a)
                self.check_read(val.split("@", 1)[1], "curl")
        elif name == "wget":
            if a in ("-O", "--output-document") and nxt:
                outs.append(nxt)
            elif a.startswith("--output-document="):
                outs.append(a.split("=", 1)[1])
            elif a.startswith("-O") and len(a) > 2:
                outs.append(a[2:])
            elif a in ("-P", "--directory-prefix") and nxt:
                dirs.append(nxt)
    if name == "wget" and not outs and not any(a.startswith("-O") or a.startswith(
            "--output-document") for a in args):
        outs.extend(posixpath.basename(u.split("?")[0]) or "index.html" for u in urls)
    for d in dirs:
        self.check_write(d + "/", name)
    for o in outs:
        if o == "-":
            continue
        full = (dirs[0].rstrip("/") + "/" + o) if dirs and not o.startswith("/") else o
        self.check_write(full, name)
        comps = self.abs_comps(full)
        if comps is not None:
            self.files[comps] = ("download", name)


def _r_git(self: _Checker, name, args, io, ctx) -> None:
    for k, a in enumerate(args):
        if a == "-c" and k + 1 < len(args) and "=" in args[k + 1]:
            key, val = args[k + 1].split("=", 1)
            key = key.lower()
            if key.startswith("alias.") and val.startswith("!"):
                self.shell_code(val[1:], ctx, f"git {key}")
            elif key in ("core.sshcommand", "core.pager", "core.fsmonitor", "core.editor",
                         "diff.external", "sequence.editor", "core.hookspath",
                         "credential.helper", "gpg.program", "core.gitproxy"):
                if key == "core.hookspath":
                    self.check_write(val, "git")
                else:
                    self.shell_code(val.lstrip("!"), ctx, f"git {key}")
    sub = next((a for a in args if not a.startswith("-") and "=" not in a), None)
    if sub == "clone":
        rest = [a for a in args[args.index("clone") + 1:] if not a.startswith("-")]
        if len(rest) >= 2:
            self.check_write(rest[1], "git clone")


def _r_systemctl(self: _Checker, name, args, io, ctx) -> None:
    verbs = [a for a in args if not a.startswith("-")]
    if set(verbs) & {"poweroff", "reboot", "halt", "kexec", "suspend", "hibernate",
                     "hybrid-sleep", "emergency", "rescue", "soft-reboot"}:
        self.refuse(f"stops the machine ({name})")
    elif set(verbs) & {"start", "stop", "restart", "reload", "enable", "disable", "mask",
                       "unmask", "kill", "isolate", "daemon-reload", "set-default", "edit",
                       "set-property", "link", "revert", "try-restart", "reload-or-restart"}:
        self.refuse(f"changes system services ({name})")


def _r_service(self: _Checker, name, args, io, ctx) -> None:
    if any(a in ("start", "stop", "restart", "reload", "force-reload", "--full-restart")
           for a in args):
        self.refuse(f"changes system services ({name})")


def _r_sysctl(self: _Checker, name, args, io, ctx) -> None:
    if any(a in ("-w", "--write", "-p", "--load", "--system") or "=" in a for a in args):
        self.refuse(f"changes the system configuration ({name})")


def _r_ip(self: _Checker, name, args, io, ctx) -> None:
    words = [a for a in args if not a.startswith("-")]
    if name in ("ip",) and len(words) >= 2 and words[1] in (
            "add", "del", "delete", "set", "change", "replace", "flush", "append") or \
            name in ("ifconfig", "route") and any(a in ("down", "up", "add", "del") for a in args):
        self.refuse(f"changes the network configuration ({name})")


def _r_nc(self: _Checker, name, args, io, ctx) -> None:
    if any(a in ("-e", "-c", "--exec", "--sh-exec", "--lua-exec") or
           re.fullmatch(r"-[a-zA-Z]*[ec]", a) for a in args):
        self.refuse(f"{name} runs a program for a network connection (a reverse shell?)")
    if name == "socat" and any(re.search(r"(?i)\b(exec|system):", a) for a in args):
        self.refuse(f"{name} runs a program for a network connection (a reverse shell?)")


def _r_container(self: _Checker, name, args, io, ctx) -> None:
    joined = " ".join(args)
    if "--privileged" in args or re.search(r"--pid[= ]host|--net[= ]host|--userns[= ]host|"
                                           r"--cap-add[= ](ALL|SYS_ADMIN)|"
                                           r"(-v|--volume|--mount)[= ]\S*/:|"
                                           r"docker\.sock", joined) or \
            re.search(r"(^| )(-v|--volume)[= ]?/[:]", joined):
        self.refuse(f"privilege escalation ({name} with host access)")


def _r_ssh(self: _Checker, name, args, io, ctx) -> None:
    for k, a in enumerate(args):
        val = None
        if a == "-o" and k + 1 < len(args):
            val = args[k + 1]
        elif a.startswith("-o"):
            val = a[2:]
        if val and re.match(r"(?i)(ProxyCommand|LocalCommand|KnownHostsCommand)[ =]", val):
            self.shell_code(re.split(r"[ =]", val, maxsplit=1)[1], ctx, f"{name} -o")


def _r_vim(self: _Checker, name, args, io, ctx) -> None:
    for k, a in enumerate(args):
        cmd = None
        if a in ("-c", "--cmd") and k + 1 < len(args):
            cmd = args[k + 1]
        elif a.startswith("+"):
            cmd = a[1:]
        if cmd and "!" in cmd:
            self.shell_code(cmd.split("!", 1)[1], ctx, f"{name} -c")


_PROGRAM_RULES = {
    "rm": _r_rm, "find": _r_find, "xargs": _r_xargs, "parallel": _r_parallel,
    "eval": _r_eval, "source": _r_source, ".": _r_source, "trap": _r_trap, "alias": _r_alias,
    "hash": _r_hash, "cd": _r_cd, "pushd": _r_cd, "popd": _r_cd,
    "kill": _r_kill, "pkill": _r_kill, "killall": _r_kill, "chmod": _r_chmod,
    "chown": _r_chown, "chgrp": _r_chown, "tee": _r_writer_all, "truncate": _r_writer_all,
    "touch": _r_writer_all, "mkdir": _r_writer_all, "rmdir": _r_writer_all,
    "unlink": _r_writer_all, "shred": _r_writer_all, "chattr": _r_writer_all,
    "setfacl": _r_writer_all, "mkfifo": _r_writer_all, "mknod": _r_writer_all,
    "split": _r_writer_all, "cp": _r_copy, "mv": _r_copy, "ln": _r_copy, "install": _r_copy,
    "rsync": _r_copy, "link": _r_copy, "sed": _r_sed, "tar": _r_tar, "unzip": _r_unzip,
    "7z": _r_unzip, "7za": _r_unzip, "dd": _r_dd, "curl": _r_download, "wget": _r_download,
    "git": _r_git, "systemctl": _r_systemctl, "service": _r_service, "sysctl": _r_sysctl,
    "ip": _r_ip, "ifconfig": _r_ip, "route": _r_ip, "nc": _r_nc, "ncat": _r_nc,
    "netcat": _r_nc, "socat": _r_nc, "docker": _r_container, "podman": _r_container,
    "nerdctl": _r_container, "ssh": _r_ssh, "scp": _r_ssh, "vim": _r_vim, "vi": _r_vim,
    "nvim": _r_vim, "ex": _r_vim,
}

_KNOWN = sorted(ESCALATION | DISK_TOOLS | POWER | KERNEL | SHELLS | DOWNLOADERS |
                set(_PROGRAM_RULES) | {"mkfs", "mkfs.ext4", "mkfs.xfs", "python", "python3",
                                       "perl", "ruby", "node", "php"})


# ---------------------------------------------------------------------- text level

def _text_problem(command: str) -> str | None:
    """Hidden, look-alike or control characters, or text that is not valid Unicode."""
    if command.isascii():
        if _CONTROL.search(command):
            return "control characters in the command"
        return None
    try:
        command.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid text (a lone surrogate or other unencodable character)"
    if _CONTROL.search(command):
        return "control characters in the command"
    if _HIDDEN_RANGES.search(command):
        return "hidden characters (zero-width, bidirectional controls or private-use)"
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
    if unicodedata.normalize("NFKC", command) != command:
        return "look-alike characters (compatibility forms such as fullwidth letters)"
    return None


def _check(command: str, workspace: str, policy: Policy,
           places: Mapping[str, str] | None = None) -> Verdict:
    problem = _text_problem(command)
    if problem:
        return Verdict(False, [problem])
    checker = _Checker(policy, workspace, places)
    try:
        tree = checker.parse(command)
        if tree is None:
            line = checker.error_line
            return Verdict(False, ["cannot parse the command as bash (a syntax error%s)" %
                                   (f" near line {line}" if line else "")])
        checker.run(tree.root_node, _Ctx())
        checker.fork_bombs()
    except _Budget as exc:
        checker.refuse(str(exc))
    reasons = list(dict.fromkeys(checker.reasons))
    return Verdict(not reasons, reasons, checker.commands[:256],
                   list(dict.fromkeys(checker.notes)))


def check(command: str, workspace: str, policy: Policy | None = None,
          places: Mapping[str, str] | None = None) -> Verdict:
    """Decide whether ``command`` may run in ``workspace``. Never raises. ``places``: the
    task's own directories by variable (``BZZZ_OUTPUT`` is writable like the workspace,
    ``BZZZ_FEEDBACK`` a known file)."""
    try:
        policy = policy or Policy()
        if not isinstance(command, str) or not command.strip():
            return Verdict(False, ["no command"])
        if len(command) > policy.max_length:
            return Verdict(False, [f"command longer than {policy.max_length} characters"])
        if not isinstance(workspace, str) or posixpath.normpath("/" + workspace.lstrip("/")) == "/":
            return Verdict(False, ["no workspace to judge the command in (it is /)"])
        return _check(command, workspace, policy, places)
    except Exception as exc:  # the Guardian refuses what it cannot judge, and says so
        return Verdict(False, [f"the Guardian could not check this command "
                               f"({type(exc).__name__}: {str(exc)[:200]})"])


_limiter: trio.lowlevel.RunVar = trio.lowlevel.RunVar("guardian_limiter")
CHECK_THREADS = 4


def _get_limiter() -> trio.CapacityLimiter:
    try:
        return _limiter.get()
    except LookupError:
        limiter = trio.CapacityLimiter(CHECK_THREADS)
        _limiter.set(limiter)
        return limiter


async def check_async(command: str, workspace: str, policy: Policy | None = None, *,
                      deadline: float = 10.0, places: Mapping[str, str] | None = None) -> Verdict:
    """``check`` off the event loop (a worker thread behind a small limiter). The check's own
    budgets (CPU time) refuse a command that is too complex; ``deadline`` (wall seconds) is
    only a backstop for a machine so loaded that the thread cannot run at all: past it the
    command is refused and the thread abandoned."""
    with trio.move_on_after(deadline):
        return await trio.to_thread.run_sync(check, command, workspace, policy, places,
                                             abandon_on_cancel=True, limiter=_get_limiter())
    return Verdict(False, [f"the check took too long (over {deadline:g} s)"])
