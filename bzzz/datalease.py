"""One live writer per data directory: a lease file with a heartbeat, and flock beside it.

Nodes of a cluster often keep their data directories on shared storage (NFS). Two agents
that open the same directory would interleave writes to one signed log (forking it: every
replica then rejects the node), share one identity and one ``intake.json``. This module makes
the second one refuse to start.

Why two mechanisms:

- ``flock`` is exact and free on one machine (the kernel drops the lock when the holder dies,
  even by ``kill -9``), but across NFS it is unreliable: NFSv2/v3 clients emulate it with
  NLM byte-range locks or keep it local (``local_lock=flock``), some mounts refuse it
  (``ENOLCK``), and a lock can outlive a partitioned client or vanish when the server
  restarts. So it is only the second line, used where it works (``lease.lock``).
- the lease file ``lease.json`` (node id, peer id, pid, host, started, heartbeat) needs
  nothing from the file system but an atomic rename and close-to-open consistency, which
  every NFS version gives. It is rewritten (temp file + rename) every ``heartbeat`` seconds by
  the running agent. A starting agent that finds another writer's heartbeat fresher than
  ``expiry`` (3 x heartbeat) refuses with one line naming that writer and how to recover; a
  stale one (old heartbeat, or a dead pid on this very machine) is taken over and logged; a
  clean shutdown removes it.

Freshness is judged twice, and a lease is stale only when both say so: by the heartbeat time
the holder wrote (its clock), and by the file's modification time against a probe file this
agent just wrote beside it (the file server's clock: immune to skew between nodes). The pid
is only trusted on the same machine (same boot id and pid namespace as ours): there a dead
pid proves the holder is gone. A fresh lease of our own node id whose holder we cannot check
(a container restarted after ``kill -9``) is watched for up to ``expiry``: a heartbeat that
moves means a live twin (refuse), one that does not means our crashed predecessor (take over).

Two agents deciding at the same instant both write; after ``settle`` seconds each reads the
file again and only the one it names goes on. The running agent checks the file at every
heartbeat too: a lease that names someone else (ours expired while the process was frozen,
or the NFS server lost it) stops the agent loudly instead of letting two writers run.

Mount NFS with an attribute cache shorter than the expiry (``actimeo=3`` or
``lookupcache=positive``) so that a rename is seen within one heartbeat.

:func:`decide` is the pure core (values in, a decision out: tested with a fake clock);
:class:`DataLease` is the I/O around it.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import json
import logging
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import SetupError

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("bzzz.datalease")

LEASE_FILE = "lease.json"
LOCK_FILE = "lease.lock"
MAX_LEASE_BYTES = 4096


class LeaseError(SetupError):
    """The data directory is held by another live writer (or cannot be leased): one line."""


@dataclass(frozen=True)
class Holder:
    """What the lease file says about the writer holding a data directory."""

    node_id: str
    peer_id: str
    pid: int
    host: str
    started: float
    heartbeat: float
    token: str = ""    # random per start: tells two writers with one identity apart
    boot_id: str = ""  # the kernel's boot id: the pid means something only on this boot
    pidns: int = 0     # the pid namespace's inode: ... and only in this pid namespace

    def same_machine(self, boot_id: str, pidns: int) -> bool:
        return bool(self.boot_id) and self.boot_id == boot_id and self.pidns == pidns

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode() + b"\n"

    @classmethod
    def parse(cls, raw: bytes) -> "Holder | None":
        """The holder in a lease file's bytes, or None when they are not a lease."""
        if len(raw) > MAX_LEASE_BYTES:
            return None
        try:
            doc = json.loads(raw)
            holder = cls(node_id=str(doc["node_id"]), peer_id=str(doc["peer_id"]),
                         pid=int(doc["pid"]), host=str(doc["host"]),
                         started=float(doc["started"]), heartbeat=float(doc["heartbeat"]),
                         token=str(doc.get("token", "")), boot_id=str(doc.get("boot_id", "")),
                         pidns=int(doc.get("pidns", 0)))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return holder


class Verdict(enum.Enum):
    FREE = "free"          # no lease (or ours): take it
    STALE = "stale"        # another writer's lease that expired or whose pid is dead: take over
    CORRUPT = "corrupt"    # a file that is not a lease and is old: take over
    WATCH = "watch"        # our node id, holder not checkable: watch its heartbeat a while
    REFUSE = "refuse"      # another live writer holds it


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    why: str
    age: float = 0.0  # seconds since the holder's last heartbeat (the larger of both clocks' view)


@dataclass(frozen=True)
class Observation:
    """What a starting agent sees, as values."""

    holder: Holder | None        # the parsed lease (None: no file, or not a lease)
    exists: bool                 # whether a lease file exists at all
    wall_now: float              # this machine's clock
    file_age: float | None       # probe mtime - lease mtime: the file server's view of its age
    boot_id: str
    pidns: int
    pid_alive: bool | None       # the holder's pid on this machine (None: not checkable)


def decide(obs: Observation, *, node_id: str, token: str, expiry: float) -> Decision:
    """Whether a starting writer may take the data directory (pure: no I/O, no clock)."""
    h = obs.holder
    if not obs.exists:
        return Decision(Verdict.FREE, "no lease")
    file_age = obs.file_age if obs.file_age is not None else float("inf")
    if h is None:
        if file_age > expiry:
            return Decision(Verdict.CORRUPT, "unreadable lease file, not written for "
                            f"{file_age:.0f} s", file_age)
        return Decision(Verdict.REFUSE, "a lease file being written or unreadable "
                        f"({file_age:.1f} s old)", file_age)
    if h.token and h.token == token:
        return Decision(Verdict.FREE, "our own lease")
    beat_age = obs.wall_now - h.heartbeat
    # fresh if either clock says so: skew between nodes cannot make a live lease look stale
    age = min(beat_age, file_age)
    if h.same_machine(obs.boot_id, obs.pidns) and obs.pid_alive is False:
        return Decision(Verdict.STALE, f"its pid {h.pid} is not running on this machine", age)
    if age > expiry:
        return Decision(Verdict.STALE, f"no heartbeat for {age:.0f} s (expiry {expiry:g} s)", age)
    if h.node_id == node_id and not (h.same_machine(obs.boot_id, obs.pidns)
                                     and obs.pid_alive):
        return Decision(Verdict.WATCH, "our node id, holder not checkable from here", age)
    return Decision(Verdict.REFUSE, f"heartbeat {max(age, 0.0):.1f} s ago", age)


def refusal(data_dir: Path, h: Holder | None, decision: Decision, expiry: float) -> str:
    """The one-line error of a refused start."""
    if h is None:
        who = "another writer"
        gone = "it"
    else:
        who = (f"node {h.node_id!r} (pid {h.pid} on host {h.host}, peer {h.peer_id[:16]}…, "
               f"{decision.why})")
        gone = repr(h.node_id)
    return (f"data directory {data_dir} is in use by {who}: two agents must never share a "
            f"data directory or its log; give this node its own data_dir, or if {gone} has "
            f"stopped, start again after {expiry:g} s (its lease expires) or remove "
            f"{data_dir / LEASE_FILE} once you are sure it is not running")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pidns() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "lustre",
              "gpfs", "beegfs", "afs", "fuse")


def fs_type(path: Path) -> str:
    """The file system type of ``path`` (the longest mount point above it), or ""."""
    best, kind = "", ""
    try:
        real = os.path.realpath(path)
        with open("/proc/self/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                point = parts[1].replace("\\040", " ")
                if (real == point or real.startswith(point.rstrip("/") + "/")) \
                        and len(point) >= len(best):
                    best, kind = point, parts[2]
    except OSError:
        return ""
    return kind


def is_network_fs(kind: str) -> bool:
    return not kind or kind.split(".")[0] in NETWORK_FS


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs here (a zombie counts as gone)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return False  # not yet written by us: a previous incarnation with our pid (pid 1)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class DataLease:
    """Holds ``data_dir`` for one agent: :meth:`acquire` at start, :meth:`run` (a trio task)
    heartbeats, :meth:`release` at the end."""

    def __init__(self, data_dir: Path, node_id: str, peer_id: str, *, expiry: float = 15.0,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.dir = Path(data_dir)
        self.path = self.dir / LEASE_FILE
        self.node_id = node_id
        self.peer_id = peer_id
        self.expiry = float(expiry)
        self.heartbeat = self.expiry / 3
        self.settle = min(1.0, self.expiry / 30)
        self.clock = clock
        self.sleep = sleep
        self.token = secrets.token_hex(8)
        self.boot_id = _boot_id()
        self.pidns = _pidns()
        self.host = socket.gethostname()
        self.started = clock()
        self.held = False
        self.beats = 0
        self.flock = "unused"  # "held", "unsupported (...)" once acquire ran
        self.fs = ""
        self._lock_fd = -1

    # ------------------------------------------------------------------ files

    def _me(self) -> Holder:
        return Holder(self.node_id, self.peer_id, os.getpid(), self.host, self.started,
                      self.clock(), self.token, self.boot_id, self.pidns)

    def _write(self, holder: Holder) -> None:
        tmp = self.dir / f".{LEASE_FILE}.{self.token}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, holder.to_json())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def _read(self) -> tuple[bool, Holder | None, float | None]:
        """(exists, holder, mtime) of the lease file."""
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read(MAX_LEASE_BYTES + 1)
                mtime = os.fstat(fh.fileno()).st_mtime
        except FileNotFoundError:
            return False, None, None
        return True, Holder.parse(raw), mtime

    def _fs_now(self) -> float | None:
        """The file server's idea of now: the mtime of a file we just wrote beside the lease."""
        probe = self.dir / f".lease-clock.{self.token}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, b"x")
                return os.fstat(fd).st_mtime
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError:
            return None

    def observe(self) -> Observation:
        exists, holder, mtime = self._read()
        fs_now = self._fs_now() if exists else None
        file_age = fs_now - mtime if fs_now is not None and mtime is not None else None
        alive = None
        if holder is not None and holder.same_machine(self.boot_id, self.pidns):
            alive = pid_alive(holder.pid)
        return Observation(holder, exists, self.clock(), file_age, self.boot_id, self.pidns,
                           alive)

    # ------------------------------------------------------------------ flock

    def _take_flock(self) -> None:
        try:
            fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LeaseError(f"data directory {self.dir}: cannot create {LOCK_FILE} "
                             f"({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            _, holder, _ = self._read()
            raise LeaseError(refusal(self.dir, holder, Decision(
                Verdict.REFUSE, "it holds the data directory's lock on this machine"),
                self.expiry)) from None
        except OSError as exc:
            # NFS without lock support (ENOLCK), or a file system that has none: the lease
            # file alone decides
            os.close(fd)
            code = exc.errno
            name = errno.errorcode.get(code, code) if code is not None else None
            self.flock = f"unsupported ({name})"
            return
        self._lock_fd = fd
        self.flock = "held"

    # ------------------------------------------------------------------ lifecycle

    def acquire(self) -> Decision:
        """Take the data directory or raise :class:`LeaseError` (blocking: call at start)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LeaseError(f"data directory {self.dir}: {exc.strerror}") from None
        self._take_flock()
        self.fs = fs_type(self.dir)
        if self.flock == "held" and not is_network_fs(self.fs):
            self.settle = 0.0  # a local file system: the lock alone excludes every rival
        try:
            decision = self._acquire()
        except BaseException:
            self._drop_flock()
            raise
        self.held = True
        return decision

    def _acquire(self) -> Decision:
        obs = self.observe()
        decision = decide(obs, node_id=self.node_id, token=self.token, expiry=self.expiry)
        if decision.verdict is Verdict.WATCH:
            decision = self._watch(obs)
        if decision.verdict is Verdict.REFUSE:
            raise LeaseError(refusal(self.dir, obs.holder, decision, self.expiry))
        if decision.verdict in (Verdict.STALE, Verdict.CORRUPT):
            h = obs.holder
            log.warning("taking over a stale data-directory lease", extra={
                "data_dir": str(self.dir), "reason": decision.why,
                "previous_node": h.node_id if h else "-", "previous_pid": h.pid if h else 0,
                "previous_host": h.host if h else "-"})
        try:
            self._write(self._me())
        except OSError as exc:
            raise LeaseError(f"data directory {self.dir}: cannot write {LEASE_FILE} "
                             f"({exc.strerror})") from None
        # two writers deciding at once both wrote; the file names one of them
        if self.settle:
            self.sleep(self.settle)
        _, holder, _ = self._read()
        if holder is None or holder.token != self.token:
            raise LeaseError(refusal(self.dir, holder, Decision(
                Verdict.REFUSE, "it took the lease at the same moment"), self.expiry))
        return decision

    def _watch(self, first: Observation) -> Decision:
        """A lease of our node id we cannot check: live if its heartbeat moves within expiry."""
        assert first.holder is not None
        log.info("the data directory's lease names this node; waiting to see whether its "
                 "holder is alive", extra={"data_dir": str(self.dir),
                                           "previous_pid": first.holder.pid,
                                           "previous_host": first.holder.host})
        deadline = self.clock() + self.expiry + self.heartbeat
        while True:
            obs = self.observe()
            d = decide(obs, node_id=self.node_id, token=self.token, expiry=self.expiry)
            if d.verdict is not Verdict.WATCH:
                return d
            if obs.holder is None or obs.holder.heartbeat != first.holder.heartbeat \
                    or obs.holder.token != first.holder.token:
                return Decision(Verdict.REFUSE, "its heartbeat is moving", d.age)
            if self.clock() >= deadline:
                return Decision(Verdict.STALE, f"no heartbeat for {self.expiry:g} s", d.age)
            self.sleep(min(self.heartbeat / 2, max(0.0, deadline - self.clock())) or 0.05)

    def beat(self) -> None:
        """One heartbeat: check the lease is still ours, then renew it (blocking)."""
        exists, holder, _ = self._read()
        if not exists or holder is None or holder.token != self.token:
            self.held = False
            who = (f"node {holder.node_id!r} (pid {holder.pid} on host {holder.host})"
                   if holder else "nobody (the file is gone or unreadable)")
            raise LeaseError(f"data directory {self.dir}: our lease was taken over by {who}; "
                             "stopping so that two agents never write one log")
        self._write(self._me())
        self.beats += 1

    async def run(self, task_status: TaskStatus[None] | None = None) -> None:
        """Heartbeat every ``heartbeat`` seconds (a trio task; file I/O in a worker thread)."""
        import trio
        if task_status is not None:
            task_status.started()
        while True:
            await trio.sleep(self.heartbeat)
            try:
                await trio.to_thread.run_sync(self.beat)
            except LeaseError as exc:
                log.error(str(exc))
                raise
            except OSError as exc:
                # the file server may be slow or briefly gone: the lease survives until expiry
                log.warning("data-directory lease heartbeat failed", extra={
                    "data_dir": str(self.dir), "error": exc.strerror or str(exc)})

    def release(self) -> None:
        """Remove the lease if it is still ours (clean shutdown), then drop the lock."""
        if self.held:
            self.held = False
            try:
                _, holder, _ = self._read()
                if holder is not None and holder.token == self.token:
                    os.unlink(self.path)
            except OSError as exc:
                log.warning("could not release the data-directory lease", extra={
                    "data_dir": str(self.dir), "error": exc.strerror or str(exc)})
        self._drop_flock()

    def _drop_flock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def status(self) -> dict[str, Any]:
        return {"path": str(self.path), "held": self.held, "expiry": self.expiry,
                "heartbeats": self.beats, "flock": self.flock, "fs": self.fs}
