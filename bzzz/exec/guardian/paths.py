"""Paths: where a path points (the workspace, scratch, home, a device, a secret, outside),
from every directory the command may be in, through the links and copies it made; the
working directories ``cd`` moves; the checks of a write and a read.

``Paths`` is a part of ``bzzz/exec/guardian/checker.py``'s checker: it reads ``cwds``,
``links``, ``ws_comps``, ``place_comps`` and ``home_comps`` and refuses through ``refuse``.
"""

from __future__ import annotations

import fnmatch
import re

from .marks import GLOB, PPID_MARK, PROC_MARK, SELF_MARK, UNK, show
from .state import Comps, Ctx, State, Where

WRITABLE_PLACES = ("BZZZ_OUTPUT",)
SAFE_DEVICES = {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/zero",
                "/dev/urandom", "/dev/random", "/dev/tty", "/dev/full"}
SCRATCH_ROOTS = (("tmp",), ("var", "tmp"), ("dev", "shm"))
DISK_DEVICE = re.compile(r"^/dev/(sd|hd|vd|xvd|nvme|mmcblk|loop|dm-|md|mapper/|disk/|nbd|"
                         r"zram|sr|fd\d|mtd|ram|root|mem|kmem|port)")
_SECRETS: list[Comps] = [tuple(p.split("/")) for p in (
    "run/secrets", "var/run/secrets", "proc/*/environ", "proc/*/mem", "proc/*/root",
    "proc/*/cwd", "proc/*/map_files", "proc/*/task/*/environ", "proc/kcore", "etc/shadow",
    "etc/gshadow", "etc/sudoers", "etc/sudoers.d", "etc/ssh/ssh_host_*", "root",
    "home/*/.ssh", "home/*/.aws", "home/*/.gnupg", "home/*/.netrc", "home/*/.git-credentials",
    "home/*/.docker", "home/*/.kube", "home/*/.config/gh", "home/*/.pypirc", "home/*/.npmrc",
    "var/lib/docker", "var/run/docker.sock", "run/docker.sock", "sys/firmware", "dev/mem",
    "dev/kmem", "dev/port")]
# how bad a place is to write to: of several directories the command may be in, the worst wins
RANK = {"ws": 0, "safe": 0, "fd": 0, "scratch": 1, "scratchroot": 2, "device": 3, "tcp": 3,
        "home": 3, "outside": 3, "unknown": 4}


class Paths(State):
    """Where paths point, and the working directories (a part of the checker)."""

    def where(self, path: str, follow_last: bool = True) -> Where:
        """Where ``path`` points (for every directory the command may be in: the worst)."""
        if not path:
            return Where("unknown", None)
        if path.startswith(PROC_MARK):
            return Where("fd", None)
        if path.startswith(UNK) or path.startswith(SELF_MARK):
            return Where("unknown", None)
        if path.startswith("/"):
            return self.where_abs(path, follow_last)
        worst: Where | None = None
        for cwd in self.cwds:
            if cwd is None:
                return Where("unknown", None)
            w = self.where_abs(cwd + "/" + path, follow_last)
            if worst is None or RANK[w.kind] > RANK[worst.kind]:
                worst = w
        return worst or Where("unknown", None)

    def where_abs(self, path: str, follow_last: bool) -> Where:
        """Where an absolute path points, ``..`` and the links the command made followed."""
        trailing = path.endswith("/") or path.endswith("/.")
        raw = [c for c in path.split("/") if c and c != "."]
        comps: list[str] = []
        steps = 0
        todo = list(reversed(raw))
        while todo:
            steps += 1
            if steps > 256:
                return Where("unknown", None)
            c = todo.pop()
            if c == "." or c == "":
                continue
            if UNK in c or PPID_MARK in c:
                c = UNK if UNK in c else c
            elif GLOB.search(c) and c.startswith(".") and fnmatch.fnmatchcase("..", c):
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
                        return Where("unknown", None)
                    comps = list(target)
        return Where(self.kind_of(tuple(comps)), tuple(comps))

    def kind_of(self, comps: Comps) -> str:
        for ws in (self.ws_comps, *self.place_comps):
            if comps[:len(ws)] == ws and not any(GLOB.search(c) for c in comps[:len(ws)]):
                return "ws"
        if comps and comps[0] == "dev":
            return _device_kind(comps)
        for root in SCRATCH_ROOTS:
            if comps[:len(root)] == root:
                if len(comps) > len(root) and not GLOB.search(comps[len(root)]) \
                        and UNK not in comps[len(root)]:
                    return "scratch"
                return "scratchroot"
        if comps[:len(self.home_comps)] == self.home_comps:
            return "home"
        return "outside"

    def secret(self, path: str) -> str | None:
        """``path`` as shown, if it names a secret (or a pattern that may match one)."""
        if "/" not in path:
            return None
        w = self.where(path)
        if w.comps is None:
            return None
        comps = w.comps
        for tmpl in self.secret_templates():
            if len(comps) < len(tmpl):
                continue
            if all(t == "*" or (GLOB.search(c) and GLOB.sub("", c) and
                                fnmatch.fnmatchcase(t, c)) or
                   (UNK not in c and PPID_MARK not in c and fnmatch.fnmatchcase(c, t))
                   for t, c in zip(tmpl, comps, strict=False)):  # a prefix
                return show(path)
        return None

    def secret_templates(self) -> list[Comps]:
        home = self.home_comps
        extra = [home + (".ssh",), home + (".aws",), home + (".gnupg",), home + (".netrc",),
                 home + (".git-credentials",), home + (".docker",), home + (".kube",),
                 home + (".config", "gh"), home + (".pypirc",), home + (".npmrc",)]
        return _SECRETS + extra

    def check_write(self, path: str, who: str, follow_last: bool = True) -> None:
        w = self.where(path, follow_last)
        shown = show(path)
        if w.kind in ("ws", "scratch", "safe", "fd"):
            return
        if w.kind == "tcp":
            self.refuse(f"opens a network connection through {shown}")
        elif w.kind == "device":
            if w.path and DISK_DEVICE.match(w.path):
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
            self.refuse(f"opens a network connection through {show(path)}")
        elif w.kind == "device" and w.path and DISK_DEVICE.match(w.path):
            self.refuse(f"{who} reads a raw disk ({show(path)})")

    def abs_comps(self, path: str) -> Comps | None:
        w = self.where(path)
        return w.comps if w.kind != "unknown" else None

    def cd_to(self, target: str, ctx: Ctx) -> None:
        """Move the working directories to ``target`` (a ``cd`` that only may happen, in a
        branch or a loop, widens the set)."""
        new: set[str | None] = set()
        for cwd in self.cwds:
            if cwd is None:
                new.add(None)
                continue
            if target.startswith("/"):
                path = target
            else:
                path = cwd + "/" + target
            w = self.where_abs(path, True) if UNK not in target else Where("unknown", None)
            if w.kind == "unknown" or any(GLOB.search(c) for c in w.comps or ()):
                new.add(None)
            else:
                new.add(w.path)
        if ctx.loop and not target.startswith("/"):
            new.add(None)
        self.oldcwds = self.cwds
        self.cwds = frozenset(new | set(self.cwds)) if (ctx.cond or ctx.loop) else frozenset(new)


def _device_kind(comps: Comps) -> str:
    p = "/" + "/".join(comps)
    if p in SAFE_DEVICES or p.startswith("/dev/fd/") or p.startswith("/dev/pts/"):
        return "safe"
    if p.startswith(("/dev/tcp/", "/dev/udp/")):
        return "tcp"
    if comps[:2] == ("dev", "shm"):
        return "scratch" if len(comps) > 2 and not GLOB.search(comps[2]) else "scratchroot"
    return "device"
