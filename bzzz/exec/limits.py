"""Resource limits of a task outside a container (the bubblewrap sandbox): the container's
memory and pids limits and a bound on disk, each enforced the best way this host allows, and
said how (``describe``, ``status``).

``cgroup``
    Where a cgroup v2 subtree with the ``memory`` and ``pids`` controllers is delegated to the
    agent (writable: systemd's ``Delegate=yes``, or a container's own cgroup namespace), each
    task gets a cgroup of its own under it with ``memory.max`` (no swap) and ``pids.max``:
    limits on the whole task, every process of it together. The task's first process moves
    itself into it before it starts bubblewrap, so nothing of the task is ever outside it; the
    agent, which may no longer live in a cgroup that has children, moves into a leaf
    (``bzzz-agent``) first.
``rlimit``
    Otherwise, resource limits set in that first process and inherited by every process of the
    task: ``RLIMIT_NPROC`` (the task user's processes: those it had at the start plus
    ``pids``; not enforceable on tasks running as root, which the kernel exempts),
    ``RLIMIT_DATA`` (memory, per process: a task of many processes can hold more).
``disk``
    Always: ``RLIMIT_FSIZE`` (no file written larger than ``disk``; the writer gets SIGXFSZ)
    and a ``/tmp`` of at most :data:`TMP_SIZE` (a tmpfs, as in a container). The workspace as
    a whole is not bounded: a task writing many files below the size limit is not stopped.

Nothing here reads a clock; the only I/O is the cgroup filesystem and ``/proc``.
"""

from __future__ import annotations

import os
import resource
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from .sandbox import RunAs

TMP_SIZE = 256 << 20  # the private /tmp of a task, bubblewrap and containers alike
CONTROLLERS = ("memory", "pids")
AGENT_LEAF = "bzzz-agent"


class Enforced(TypedDict):
    """One limit on a task's resources, and how it is enforced (None: no limit)."""

    limit: str | int | float | None
    how: str


# what a sandbox says it enforces: Enforced by resource, and (bubblewrap) "cgroup": a note
Status = dict[str, Enforced | str]


def _human(n: int) -> str:
    for unit, shift in (("g", 30), ("m", 20), ("k", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


# -- cgroup v2 -----------------------------------------------------------------------------


def _cgroup2_mount(mountinfo: str) -> Path | None:
    for line in mountinfo.splitlines():
        fields = line.split(" - ")
        if len(fields) == 2 and fields[1].split()[0] == "cgroup2":
            return Path(fields[0].split()[4])
    return None


def _own_cgroup(proc_cgroup: str) -> str | None:
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def cgroup_root(setting: str) -> tuple[Path | None, str]:
    """The delegated cgroup v2 directory under which each task gets a cgroup, and how that was
    decided: ``setting`` is ``off``, ``auto`` (the agent's own cgroup, if delegated) or a
    path. Makes the directory ready (controllers enabled for its children), or returns None
    with the reason."""
    if setting == "off":
        return None, "cgroups not used (task_cgroup = off)"
    try:
        if setting == "auto":
            mount = _cgroup2_mount(Path("/proc/self/mountinfo").read_text())
            own = _own_cgroup(Path("/proc/self/cgroup").read_text())
            if mount is None or own is None:
                return None, "no cgroup v2 hierarchy"
            base = mount / own.lstrip("/")
            if base.name == AGENT_LEAF:  # moved there by an earlier start
                base = base.parent
        else:
            base = Path(setting)
        return prepare_cgroup(base)
    except OSError as exc:
        return None, f"cgroup: {exc.strerror or exc}"


def prepare_cgroup(base: Path) -> tuple[Path | None, str]:
    """Enable the memory and pids controllers for ``base``'s children, moving the processes
    in ``base`` itself (the agent's, in a delegated cgroup of its own) to a leaf first."""
    offered = (base / "cgroup.controllers").read_text().split()
    missing = [c for c in CONTROLLERS if c not in offered]
    if missing:
        return None, f"cgroup {base} has no {' or '.join(missing)} controller"
    if not os.access(base, os.W_OK) or not os.access(base / "cgroup.subtree_control", os.W_OK):
        return None, f"cgroup {base} is not delegated to this user (not writable)"
    enabled = (base / "cgroup.subtree_control").read_text().split()
    if not all(c in enabled for c in CONTROLLERS):
        procs = (base / "cgroup.procs").read_text().split()
        if procs:  # "no internal processes": those in base go to a leaf of their own
            leaf = base / AGENT_LEAF
            leaf.mkdir(exist_ok=True)
            for pid in procs:
                try:
                    (leaf / "cgroup.procs").write_text(pid)
                except ProcessLookupError:
                    pass
        (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))
    return base, f"cgroup v2 under {base}"


@dataclass
class TaskCgroup:
    path: Path

    def oom_killed(self) -> bool:
        try:
            for line in (self.path / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def remove(self) -> None:
        """Kill what is left in it and remove it (best effort: it may still be emptying)."""
        try:
            (self.path / "cgroup.kill").write_text("1")
        except OSError:
            pass
        try:
            self.path.rmdir()
        except OSError:
            pass


# -- the limits of a task ------------------------------------------------------------------


def processes_of(uid: int) -> int:
    """How many processes (threads included, as RLIMIT_NPROC counts) ``uid`` has now."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:
            continue
    return count


class TaskLimits:
    """The limits of every bubblewrap task, and how each is enforced here."""

    def __init__(self, *, memory: int, pids: int, disk: int, cgroup: Path | None,
                 cgroup_note: str, user: RunAs | None) -> None:
        self.memory, self.pids, self.disk = memory, pids, disk
        self.cgroup, self.cgroup_note = cgroup, cgroup_note
        self.user = user
        self.uid = user.uid if user else os.geteuid()

    # what is enforced, and how
    def resources(self) -> dict[str, Enforced]:
        """Each limit on a task's resources, and how it is enforced here."""
        mem = _human(self.memory)
        memory: Enforced
        pids: Enforced
        if self.cgroup is not None:
            memory = {"limit": mem, "how": "cgroup memory.max: the whole task, no swap"}
            pids = {"limit": self.pids, "how": "cgroup pids.max"}
        else:
            memory = {"limit": mem, "how": "RLIMIT_DATA: each process"}
            pids = ({"limit": self.pids, "how": "RLIMIT_NPROC: the task user's processes"}
                    if self.uid != 0 else
                    {"limit": None, "how": "not enforced: tasks run as root, which "
                                           "RLIMIT_NPROC exempts, and no delegated cgroup"})
        return {"memory": memory, "pids": pids,
                "file_size": {"limit": _human(self.disk), "how": "RLIMIT_FSIZE: each file"},
                "tmp": {"limit": _human(TMP_SIZE), "how": "tmpfs size"},
                "cpus": {"limit": None, "how": "no CPU limit outside a container"}}

    def status(self) -> Status:
        """The limits, and where tasks get a cgroup (``cgroup``)."""
        return {**self.resources(), "cgroup": self.cgroup_note}

    def describe(self) -> str:
        """One phrase for the start-up line: each limit, and how it is enforced."""
        parts = [f"{k} {v['limit']} ({v['how']})" if v["limit"] is not None
                 else f"{k} unlimited ({v['how']})"
                 for k, v in self.resources().items()]
        return "limits: " + ", ".join(parts) + f"; {self.cgroup_note}"

    # per task
    def open_cgroup(self, task_id: str) -> TaskCgroup | None:
        if self.cgroup is None:
            return None
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in task_id)[:40]
        path = self.cgroup / f"task-{safe}-{secrets.token_hex(3)}"
        path.mkdir()
        group = TaskCgroup(path)
        try:
            (path / "memory.max").write_text(str(self.memory))
            (path / "pids.max").write_text(str(self.pids))
            try:
                (path / "memory.swap.max").write_text("0")
            except FileNotFoundError:  # no swap accounting on this host
                pass
        except OSError:
            group.remove()
            raise
        return group

    def rlimits(self) -> list[tuple[int, int]]:
        out = [(resource.RLIMIT_FSIZE, self.disk)]
        if self.cgroup is None:
            out.append((resource.RLIMIT_DATA, self.memory))
            if self.uid != 0:
                out.append((resource.RLIMIT_NPROC, processes_of(self.uid) + self.pids))
        lowered = []
        for res, value in out:  # never above a hard limit the agent already has
            hard = resource.getrlimit(res)[1]
            lowered.append((res, value if hard == resource.RLIM_INFINITY else min(value, hard)))
        return lowered

    def preexec(self, group: TaskCgroup | None) -> Callable[[], None]:
        """What the task's first process does between fork and exec: join the task's cgroup,
        take the limits, become the task user (in that order: joining needs the agent's
        rights). Only system calls: it runs in a forked child of a threaded process."""
        procs = str(group.path / "cgroup.procs") if group else None
        limits = self.rlimits()
        user = self.user
        setrlimit, o_wronly = resource.setrlimit, os.O_WRONLY

        def child() -> None:
            if procs is not None:
                fd = os.open(procs, o_wronly)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)
            for res, value in limits:
                setrlimit(res, (value, value))
            if user is not None:
                os.setgroups([])
                os.setresgid(user.gid, user.gid, user.gid)
                os.setresuid(user.uid, user.uid, user.uid)
        return child
