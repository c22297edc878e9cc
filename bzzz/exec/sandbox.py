"""Operating-system sandboxes for tasks: a task never reaches the agent's secrets, and every
process it starts dies with it.

Three kinds, chosen once at start by :func:`open_sandbox`:

``container``
    One container per task through a Docker Engine API (Docker, or podman's compatible
    service): the task's image, its workspace bind-mounted as the only writable mount (plus
    ``output_dir`` when given, and a tmpfs ``/tmp``), a read-only root, no capabilities,
    ``no-new-privileges``, memory / CPU / pids limits, network ``none`` or the engine's
    default bridge, a non-root user, only the environment given. The container is always
    removed at the end (success included); on timeout or cancellation it is stopped
    (SIGTERM, SIGKILL after ``kill_grace``) first. A container outlives an agent killed with
    SIGKILL: :meth:`ContainerSandbox.reap` at the next start removes every container
    labelled with this node (``bzzz.node=<node_id>``).
``bwrap``
    bubblewrap: new user, pid, network (unless ``network`` is "host" or "bridge", which share the
    host's; "gateway" gives the task's gateway route only, bzzz/gateway/),
    ipc, uts and cgroup namespaces; only the system directories a build needs, read-only
    (``/usr``, ``/etc`` and the ``/bin``, ``/sbin``, ``/lib*`` links or directories), a
    private ``/tmp``, ``/dev`` and ``/proc``; the workspace (and ``output_dir``) the only
    writable paths; every ``hidden`` path that would still be visible (under a bound
    directory) masked by an empty read-only tmpfs (directories) or ``/dev/null`` (files).
    ``/`` is never bound: the agent may share its uid with tasks, so its token file, data
    directory or ``/run/secrets`` must simply not exist in the sandbox. The task is in its
    own pid namespace under bubblewrap's init: when the task's main process exits, or the
    agent dies (``--die-with-parent``), the kernel kills everything left in it (``nohup``,
    ``setsid``, double forks). An agent running as root starts bubblewrap as the task user,
    unprivileged. The container's memory and pids limits and a bound on file sizes and
    ``/tmp`` apply too, through a cgroup per task where a cgroup v2 subtree is delegated to
    the agent, else through resource limits (bzzz/exec/limits.py says which, and how; the
    start-up line and the status API repeat it). No CPU limit.
``none``
    No isolation: the task runs as a process group with a minimal environment (and as the
    task user when the agent is root), as Bzzz did before sandboxes. The only kind in which
    a task can read what the agent's user can read; processes that leave the group
    (``setsid``) survive the task.

The container kind and an agent that itself runs in a container: the engine resolves bind
mounts on the *host*, so the agent's workspace root must be a bind mount from the host and
``workspace_host_dir`` names its host path, with ``workspace_root`` the same directory as the
agent sees it (e.g. ``workspace_root=/data/work``, ``workspace_host_dir=/srv/bzzz/work``).
Inside the task container the workspace keeps the agent-side path, so ``HOME``,
``BZZZ_WORKSPACE`` and ``BZZZ_OUTPUT`` mean the same in both.
"""

from __future__ import annotations

from ..errors import ExecError
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import trio

from ..gateway import inside
from ..gateway.proxy import Gateway
from . import sidecar
from .container import Engine, EngineError, resolve_host
from .limits import TMP_SIZE, Status, TaskLimits, cgroup_root

DRAIN = 0.25  # seconds to collect output left in the pipe after the task's main process ends
CLEANUP = 20.0  # bound on removing a container after the task (engine may be slow)
NOBODY = 65534
# networks that reach what the host reaches (bubblewrap: the host's; containers: the engine's
# bridge): the explicit opt-outs of the task gateway
SHARED = ("host", "bridge")

# Inside the bound system directories: files that carry secrets of the machine
SYSTEM_SECRETS = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
                  "/etc/ssl/private", "/etc/sudoers", "/etc/sudoers.d")
SYSTEM_SECRET_GLOBS = (("/etc/ssh", "ssh_host_*_key"),)
# keyword arguments that start a task's process as someone (trio.lowlevel.open_process's,
# which are subprocess.Popen's: user, group, extra_groups, preexec_fn)
PopenOptions = dict[str, Any]


class SandboxError(ExecError):
    """The sandbox asked for cannot work here: one line naming what is missing and the fix."""


@dataclass(frozen=True)
class Limits:
    memory: str = "1g"  # bytes, or a number with k/m/g
    cpus: float = 1.0
    pids: int = 256
    disk: str = "10g"  # the largest file a task may write (bwrap)


@dataclass(frozen=True)
class RunAs:
    name: str
    uid: int
    gid: int


@dataclass
class Outcome:
    status: str  # "succeeded" | "failed" | "timeout" | "cancelled"
    exit_code: int | None
    duration: float
    output: str  # the tail, at most max_output bytes (decoded)
    output_bytes: int  # everything the task printed
    truncated: bool
    note: str = ""  # why, when the sandbox itself explains the status (no image, OOM, ...)


class Sandbox(Protocol):
    kind: str  # "container" | "bwrap" | "none"

    @property
    def owner(self) -> tuple[int, int] | None: ...

    def describe(self) -> str: ...

    def enforced(self) -> Status: ...

    async def reap(self) -> int: ...

    async def run(self, argv: list[str], workspace: Path, env: dict[str, str], *,
                  timeout: float,  # noqa: ASYNC109 - the task's limit: it ends as "timeout"
                  max_output: int, kill_grace: float, task_id: str,
                  image: str | None = None, output_dir: Path | None = None,
                  read_only: Sequence[Path] = (),
                  on_output: Callable[[bytes], None] | None = None) -> Outcome: ...

    async def aclose(self) -> None: ...


# -- shared pieces -------------------------------------------------------------------------


class Tail:
    """The last ``limit`` bytes of a stream, and how many there were in all."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.buf = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.buf += chunk
        if len(self.buf) > self.limit:
            del self.buf[: len(self.buf) - self.limit]

    def text(self) -> str:
        return self.buf.decode("utf-8", errors="replace")

    @property
    def truncated(self) -> bool:
        return self.total > len(self.buf)


def parse_memory(value: str | int) -> int:
    """``"1g"`` → bytes. Accepts an int, or digits with an optional b/k/m/g/t suffix."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?\s*", value.lower())
    if not m:
        raise SandboxError(f"memory limit {value!r} is not a size (e.g. 512m, 2g)")
    scale = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m[2]]
    return int(float(m[1]) * scale)


def bad_text(values: Sequence[str]) -> str | None:
    """Why these strings cannot be given to a process (NUL, lone surrogates), if so."""
    for v in values:
        if not isinstance(v, str):
            return f"not text: {type(v).__name__}"
        if "\x00" in v:
            return "contains a NUL byte"
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid UTF-8)"
    return None


def _bad_input(argv: list[str], env: dict[str, str]) -> str | None:
    if not argv:
        return "no command"
    why = bad_text([*argv, *env.keys(), *env.values()])
    if why:
        return f"command or environment {why}"
    if any(not k or "=" in k for k in env):
        return "environment name empty or containing '='"
    return None


def _refused(why: str) -> Outcome:
    return Outcome("failed", None, 0.0, f"bzzz: {why}\n", 0, False, note=why)


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (identifies it across pid reuse)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _own_workspace(paths: Sequence[Path | None], user: RunAs | None) -> None:
    for p in paths:
        if p is None:
            continue
        p.mkdir(parents=True, exist_ok=True)
        if user is not None:
            os.chown(p, user.uid, user.gid)


def _prepare(workspace: Path, output_dir: Path | None,
             user: RunAs | None) -> tuple[Path, Path | None, PopenOptions]:
    """The resolved workspace and output directory, handed to ``user``, and the process
    options that start the task (or its sandbox) as that user."""
    ws = Path(workspace).resolve()
    out = Path(output_dir).resolve() if output_dir else None
    _own_workspace([ws, out], user)
    popen: PopenOptions = ({"user": user.uid, "group": user.gid, "extra_groups": []}
                           if user else {})
    return ws, out, popen


class _Records:
    """Process groups this agent started, in ``state_dir``: what :meth:`reap` kills after an
    agent was killed before it could clean up."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "tasks"

    def add(self, pid: int) -> Path | None:
        start = _process_start(pid)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / f"{pid}.json"
            path.write_text(json.dumps({"pid": pid, "start": start}))
            return path
        except OSError:
            return None

    def reap(self) -> int:
        count = 0
        if not self.dir.is_dir():
            return 0
        for path in self.dir.glob("*.json"):
            try:
                rec = json.loads(path.read_text())
                pid, start = int(rec["pid"]), rec["start"]
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                continue
            if start is not None and _process_start(pid) == start:
                _kill_group(pid, signal.SIGKILL)
                count += 1
            path.unlink(missing_ok=True)
        return count


async def _run_process(argv: list[str], *, cwd: Path, env: dict[str, str],
                       timeout: float,  # noqa: ASYNC109 - the task's limit: ends as "timeout"
                       max_output: int, kill_grace: float, popen: PopenOptions,
                       records: _Records | None,
                       on_output: Callable[[bytes], None] | None = None) -> Outcome:
    """Run ``argv`` as a new process group; output into a bounded tail; on timeout or
    cancellation SIGTERM the group, SIGKILL after ``kill_grace``; after the main process
    exits, SIGKILL what is left of its group."""
    tail = Tail(max_output)
    start = time.monotonic()
    try:
        proc = _Child.start(argv, cwd=cwd, env=env, popen=popen)
    except (OSError, ValueError, UnicodeError, subprocess.SubprocessError) as exc:
        return _refused(f"could not start the task: {exc}")
    output = proc.stdout
    record = records.add(proc.pid) if records else None
    finished = False
    try:
        status = await _supervise(proc, output, tail, on_output, timeout, kill_grace)
        finished = True
    finally:
        if not finished:  # cancelled (or worse): the whole tree goes, then it propagates
            await _stop(proc, kill_grace)
        with trio.CancelScope(shield=True):
            await output.aclose()
        if record is not None:
            record.unlink(missing_ok=True)
    return Outcome(status, proc.returncode, round(time.monotonic() - start, 3), tail.text(),
                   tail.total, tail.truncated)


class _Child:
    """A task's process, started from the trio thread itself (not from a worker thread, as
    ``trio.lowlevel.open_process`` does): bubblewrap's ``--die-with-parent`` is tied to the
    *thread* that started it, and trio ends an idle worker thread after 10 s, which killed
    every bubblewrap task at 10 s. Started here, the parent thread lives as long as the agent.
    Waited for through a pidfd, its output read as a trio stream."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        assert popen.stdout is not None  # stdout=PIPE
        self.stdout = trio.lowlevel.FdStream(os.dup(popen.stdout.fileno()))
        popen.stdout.close()
        self._pidfd = os.pidfd_open(popen.pid)

    @classmethod
    def start(cls, argv: list[str], *, cwd: Path, env: dict[str, str],
              popen: PopenOptions) -> "_Child":
        # a fork and an exec: milliseconds in the trio thread, once per task
        proc = subprocess.Popen(
            argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, text=False, **popen)
        return cls(cast("subprocess.Popen[bytes]", proc))  # text=False: bytes

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    async def wait(self) -> int:
        if self.popen.returncode is None:
            await trio.lowlevel.wait_readable(self._pidfd)
            self.popen.wait()
            os.close(self._pidfd)
            self._pidfd = -1
        return self.popen.returncode

    def __del__(self) -> None:
        if getattr(self, "_pidfd", -1) >= 0:
            os.close(self._pidfd)


async def _supervise(proc: _Child, output: trio.abc.ReceiveStream, tail: Tail,
                     on_output: Callable[[bytes], None] | None,
                     timeout: float,  # noqa: ASYNC109 - the task's limit: ends as "timeout"
                     kill_grace: float) -> str:
    """Wait for the process within ``timeout`` (stopping its group past it) while its
    output is read, then SIGKILL what stayed in its group and drain the output a little:
    "succeeded", "failed" or "timeout"."""
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_read_output, output, tail, on_output, done)
        with trio.move_on_after(timeout) as scope:
            await proc.wait()
        if scope.cancelled_caught:
            status = "timeout"
            await _stop(proc, kill_grace)
        else:
            status = "succeeded" if proc.returncode == 0 else "failed"
        _kill_group(proc.pid, signal.SIGKILL)  # what stayed in its group
        with trio.move_on_after(DRAIN):
            await done.wait()
        nursery.cancel_scope.cancel()
    return status


async def _read_output(output: trio.abc.ReceiveStream, tail: Tail,
                       on_output: Callable[[bytes], None] | None, done: trio.Event) -> None:
    """The process's output into the tail (and to ``on_output``) until it closes."""
    try:
        async for chunk in output:
            tail.add(chunk)
            if on_output is not None:
                on_output(chunk)
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        pass
    done.set()


async def _stop(proc: _Child, kill_grace: float) -> None:
    """SIGTERM the process's group, SIGKILL it after ``kill_grace``; shielded."""
    with trio.CancelScope(shield=True):
        _kill_group(proc.pid, signal.SIGTERM)
        with trio.move_on_after(kill_grace):
            await proc.wait()
        _kill_group(proc.pid, signal.SIGKILL)
        with trio.move_on_after(10):
            await proc.wait()


# -- none ----------------------------------------------------------------------------------


class NoSandbox:
    """Today's behaviour: a process group, a minimal environment, the task user when root."""

    kind = "none"

    def __init__(self, user: RunAs | None = None, state_dir: Path | None = None) -> None:
        self.user = user
        self.records = _Records(state_dir) if state_dir else None

    @property
    def owner(self) -> tuple[int, int] | None:
        """Who must own a task's files: (uid, gid), or None for the agent's own user."""
        return (self.user.uid, self.user.gid) if self.user else None

    def describe(self) -> str:
        who = f"as {self.user.name}" if self.user else "as the agent's user"
        return (f"none (NO isolation: tasks run {who} and can read whatever that user can, "
                "the agent's secrets included)")

    def enforced(self) -> Status:
        """The limits on a task's resources, and how each is enforced: none here."""
        return {}

    async def reap(self) -> int:
        return self.records.reap() if self.records else 0

    async def run(self, argv: list[str], workspace: Path, env: dict[str, str], *,
                  timeout: float,  # noqa: ASYNC109 - the task's limit: it ends as "timeout"
                  max_output: int, kill_grace: float, task_id: str,
                  image: str | None = None, output_dir: Path | None = None,
                  read_only: Sequence[Path] = (),
                  on_output: Callable[[bytes], None] | None = None) -> Outcome:
        why = _bad_input(argv, env)
        if why:
            return _refused(why)
        ws, _, popen = _prepare(workspace, output_dir, self.user)
        return await _run_process(argv, cwd=ws, env=env, timeout=timeout, max_output=max_output,
                                  kill_grace=kill_grace, popen=popen, records=self.records,
                                  on_output=on_output)

    async def aclose(self) -> None:
        pass


# -- bubblewrap ----------------------------------------------------------------------------

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/etc")


def _under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


class BwrapSandbox:
    kind = "bwrap"

    def __init__(self, *, hidden: Sequence[Path], state_dir: Path, network: str,
                 user: RunAs | None, bwrap: str = "bwrap", limits: Limits = Limits(),
                 cgroup: tuple[Path | None, str] = (None, "cgroups not asked for"),
                 gateway: Gateway | None = None) -> None:
        self.hidden = [Path(p) for p in hidden]
        self.network = network
        self.gateway = gateway  # network "gateway": each task's only way out
        self.user = user
        self.bwrap = bwrap
        self.records = _Records(state_dir)
        self.limits = TaskLimits(memory=parse_memory(limits.memory), pids=limits.pids,
                                 disk=parse_memory(limits.disk), cgroup=cgroup[0],
                                 cgroup_note=cgroup[1], user=user)

    @property
    def owner(self) -> tuple[int, int] | None:
        return (self.user.uid, self.user.gid) if self.user else None

    def describe(self) -> str:
        spaces = {"none": "user, pid, net, ipc, uts namespaces; no network",
                  "gateway": "user, pid, net, ipc, uts namespaces; only the task gateway"}.get(
            self.network, "user, pid, ipc, uts namespaces; the host's network")
        who = f"; as {self.user.name}" if self.user else ""
        return (f"bwrap ({spaces}; /usr /etc read-only; workspace only writable; "
                f"{len(self.hidden)} secret paths hidden; {self.limits.describe()}{who})")

    def enforced(self) -> Status:
        return self.limits.status()

    def _system_args(self) -> list[str]:
        args: list[str] = []
        for d in SYSTEM_DIRS:
            p = Path(d)
            if p.is_symlink():
                args += ["--symlink", os.readlink(p), d]
            elif p.is_dir():
                args += ["--ro-bind", d, d]
        return args

    def _secret_paths(self) -> list[Path]:
        found: list[Path] = []
        for p in [*self.hidden, *map(Path, SYSTEM_SECRETS)]:
            for q in {Path(os.path.abspath(p)), p.resolve()}:
                if q.exists() or q.is_symlink():
                    found.append(q)
        for d, pattern in SYSTEM_SECRET_GLOBS:
            found += Path(d).glob(pattern)
        return list(dict.fromkeys(found))

    def args(self, ws: Path, output_dir: Path | None,
             read_only: Sequence[Path] = (), way_out: Path | None = None) -> list[str]:
        """bubblewrap's arguments for a task in ``ws`` (its mount order matters: later
        mounts cover earlier ones)."""
        writable = [ws] + ([output_dir] if output_dir else [])
        system = [Path(os.path.realpath(d)) for d in SYSTEM_DIRS if Path(d).is_dir()]
        args = [self.bwrap, "--unshare-all"]
        if self.network in SHARED:
            args.append("--share-net")
        args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL",
                 "--size", str(TMP_SIZE), "--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc", *self._system_args()]
        resolv = Path(os.path.realpath("/etc/resolv.conf"))
        if self.network in SHARED and resolv.is_file() and not _under(resolv, system):
            args += ["--ro-bind", str(resolv), str(resolv)]  # e.g. systemd-resolved's, in /run
        if way_out is not None and self.gateway is not None:  # the route's socket, no DNS
            args += inside.bwrap_args(way_out, self.gateway.forwarder)
        masks_before, masks_after, remount = [], [], []
        borrowed = [Path(r).resolve() for r in read_only]
        for p in self._secret_paths():
            if not _under(p, system + writable + borrowed):
                continue  # not in the sandbox at all
            if any(w == p or p in w.parents for w in writable + borrowed):
                masks_before += ["--tmpfs", str(p)]  # holds the workspace: an empty tmpfs
            elif p.is_dir():
                masks_after += ["--tmpfs", str(p)]
                remount += ["--remount-ro", str(p)]
            else:
                masks_after += ["--ro-bind", "/dev/null", str(p)]
        args += masks_before
        for w in writable:
            args += ["--bind", str(w), str(w)]
        for r in borrowed:  # e.g. the mirror a checkout borrows its objects from
            args += ["--ro-bind", str(r), str(r)]
        # the sandbox's root (a tmpfs holding the mount points) read-only too; not
        # recursive, so /tmp and the workspace stay writable
        args += masks_after + remount + ["--remount-ro", "/", "--chdir", str(ws), "--"]
        return args

    async def reap(self) -> int:
        return self.records.reap()

    async def run(self, argv: list[str], workspace: Path, env: dict[str, str], *,
                  timeout: float,  # noqa: ASYNC109 - the task's limit: it ends as "timeout"
                  max_output: int, kill_grace: float, task_id: str,
                  image: str | None = None, output_dir: Path | None = None,
                  read_only: Sequence[Path] = (),
                  on_output: Callable[[bytes], None] | None = None) -> Outcome:
        why = _bad_input(argv, env)
        if why:
            return _refused(why)
        ws, out, _ = _prepare(workspace, output_dir, self.user)
        try:
            group = self.limits.open_cgroup(task_id)
        except OSError as exc:
            return _refused(f"could not make the task's cgroup: {exc}")
        # the first process joins the cgroup, takes the limits and becomes the task user
        popen = {"preexec_fn": self.limits.preexec(group)}
        route = self.gateway.routes.get(task_id) if self.gateway is not None else None
        way_out = None
        if route is not None and self.network == "gateway":
            assert self.gateway is not None
            way_out, env = route.socket_path, {**env, **route.env()}
            argv = inside.wrap_argv(self.gateway.python, list(argv))
        try:
            # The environment is bubblewrap's own (not --setenv: argv is world-readable in
            # /proc); bubblewrap passes it on unchanged, and it is exactly ``env``.
            outcome = await _run_process(self.args(ws, out, read_only, way_out) + list(argv),
                                         cwd=ws,
                                         env=env, timeout=timeout, max_output=max_output,
                                         kill_grace=kill_grace, popen=popen,
                                         records=self.records, on_output=on_output)
        finally:
            if group is not None:
                oom = group.oom_killed()
                group.remove()
        if group is not None and oom and outcome.status == "failed":
            outcome.note = (f"killed: out of memory (limit "
                            f"{self.limits.resources()['memory']['limit']})")
        return outcome

    async def probe(self) -> str | None:
        """None when a sandboxed ``true`` runs here, else why not."""
        if shutil.which(self.bwrap) is None:
            return "bubblewrap (bwrap) is not installed"
        ws = Path(tempfile.mkdtemp(prefix="bzzz-probe-"))
        try:
            os.chmod(ws, 0o755)
            out = await self.run(["true"], ws, {"PATH": "/usr/bin:/bin"}, timeout=15,
                                 max_output=4096, kill_grace=1, task_id="probe")
        finally:
            shutil.rmtree(ws, ignore_errors=True)
        if out.status == "succeeded":
            return None
        return (out.output.strip().splitlines() or [out.note or f"exit {out.exit_code}"])[-1]

    async def aclose(self) -> None:
        pass


# -- container -----------------------------------------------------------------------------


def _name_part(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-.")[:40] or "x"


class ContainerSandbox:
    kind = "container"

    def __init__(self, engine: Engine, *, node_id: str, hidden: Sequence[Path],
                 default_image: str, network: str, limits: Limits, user: RunAs | None,
                 chown_to: RunAs | None, workspace_map: tuple[Path, Path] | None,
                 podman: bool = False, gateway: Gateway | None = None,
                 gateway_image: str | None = None, gateway_note: str = "") -> None:
        self.engine = engine
        self.node_id = node_id
        self.hidden = [Path(p) for p in hidden]
        self.default_image = default_image
        self.network = network
        self.limits = limits
        self.memory = parse_memory(limits.memory)
        self.user = user  # uid:gid in the container
        self.chown_to = chown_to  # who gets the workspace (root agents only)
        self.workspace_map = workspace_map
        self.podman = podman
        # network "gateway": each task's route, through a side container of gateway_image
        # (None: no usable image, so no network at all; gateway_note says why)
        self.gateway = gateway
        self.gateway_image = gateway_image
        self.gateway_note = gateway_note

    @property
    def owner(self) -> tuple[int, int] | None:
        return (self.chown_to.uid, self.chown_to.gid) if self.chown_to else None

    def describe(self) -> str:
        net = {"none": "no network",
               "gateway": (f"only the task gateway (its forwarder in a side container of "
                           f"{self.gateway_image})" if self.gateway_image else
                           f"no network: the task gateway cannot be offered "
                           f"({self.gateway_note})")}.get(self.network, "bridge network")
        u = self.user
        return (f"container (engine {self.engine.host}; image {self.default_image} unless the "
                f"task names one; {net}; memory {self.limits.memory}, {self.limits.cpus:g} "
                f"cpus, {self.limits.pids} pids; read-only root, workspace only writable; "
                f"uid {u.uid if u else '?'}; no capabilities)")

    def enforced(self) -> Status:
        how = "container (engine's cgroup)"
        return {"memory": {"limit": self.limits.memory, "how": how},
                "pids": {"limit": self.limits.pids, "how": how},
                "cpus": {"limit": self.limits.cpus, "how": how},
                "tmp": {"limit": f"{TMP_SIZE >> 20}m", "how": "tmpfs size"}}

    def _host_path(self, path: Path) -> str:
        if self.workspace_map is None:
            return str(path)
        root, host = self.workspace_map
        try:
            return str(host / path.relative_to(root))
        except ValueError:
            raise SandboxError(f"{path} is not under workspace_root {root}: the engine "
                               "cannot mount it") from None

    def unmountable(self, path: Path) -> str | None:
        """Why the engine cannot bind-mount ``path`` into a task's container, or None (an
        agent in a container: only what is under its workspace root has a host path)."""
        try:
            self._host_path(Path(path).resolve())
        except SandboxError as exc:
            return str(exc)
        return None

    async def probe_cli(self, executable: Path, install_root: Path | None,
                        image: str | None) -> str | None:
        """None when ``image`` (default: the task image) runs ``<executable> --version``
        with the CLI's installation mounted as a task would get it, else why not (a CLI whose
        interpreter the image lacks: Codex's launcher needs node)."""
        mounts = [{"Type": "bind", "Source": self._host_path(install_root),  # resolved
                   "Target": str(install_root), "ReadOnly": True}] \
            if install_root is not None else []
        return await sidecar.probe_run(self.engine, image or self.default_image, self.uid,
                                       [str(executable), "--version"], executable.name,
                                       "preset", mounts)

    def body(self, argv: list[str], ws: Path, env: dict[str, str], image: str, task_id: str,
             output_dir: Path | None, read_only: Sequence[Path] = (),
             side: str | None = None) -> dict[str, Any]:
        """The task's container; ``side``: the gateway's side container, whose network
        namespace (only a loopback, the forwarder on it) the task joins."""
        mounts = [{"Type": "bind", "Source": self._host_path(p), "Target": str(p),
                   "ReadOnly": False} for p in [ws] + ([output_dir] if output_dir else [])]
        mounts += [{"Type": "bind", "Source": self._host_path(Path(p).resolve()),
                    "Target": str(Path(p).resolve()), "ReadOnly": True} for p in read_only]
        tmpfs = {"/tmp": f"rw,nosuid,nodev,size={TMP_SIZE},mode=1777"}
        for p in self.hidden:  # only matters for a secret inside the workspace
            p = Path(os.path.abspath(p))
            if any(p != w and w in p.parents for w in [ws, output_dir] if w) and p.exists():
                if p.is_dir():  # an empty read-only tmpfs over it
                    tmpfs[str(p)] = "ro,size=4k" + (",notmpcopyup" if self.podman else "")
                else:
                    mounts.append({"Type": "bind", "Source": "/dev/null", "Target": str(p),
                                   "ReadOnly": True})
        network = f"container:{side}" if side else (
            "bridge" if self.network in SHARED else "none")
        return {
            "Image": image, "Entrypoint": argv[:1], "Cmd": list(argv[1:]),
            "Env": [f"{k}={v}" for k, v in env.items()],
            "User": self.uid, "WorkingDir": str(ws),
            **({} if side else {"Hostname": "bzzz-task"}),  # a joined namespace has its own
            "Labels": {"bzzz.node": self.node_id, "bzzz.task": task_id},
            "AttachStdout": True, "AttachStderr": True, "AttachStdin": False,
            "OpenStdin": False, "Tty": False,
            "HostConfig": {
                "Mounts": mounts, "Tmpfs": tmpfs, "ReadonlyRootfs": True,
                "Memory": self.memory, "MemorySwap": self.memory,
                "NanoCpus": int(self.limits.cpus * 1e9), "PidsLimit": self.limits.pids,
                "NetworkMode": network,
                "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"],
                "LogConfig": {"Type": "none"}, "AutoRemove": False, "Privileged": False,
            },
        }

    @property
    def uid(self) -> str:
        return f"{self.user.uid}:{self.user.gid}" if self.user else f"{NOBODY}:{NOBODY}"

    async def reap(self) -> int:
        count = 0
        for c in await self.engine.list({"bzzz.node": self.node_id}):
            if await self.engine.remove(c["Id"]):
                count += 1
        return count

    async def run(self, argv: list[str], workspace: Path, env: dict[str, str], *,
                  timeout: float,  # noqa: ASYNC109 - the task's limit: it ends as "timeout"
                  max_output: int, kill_grace: float, task_id: str,
                  image: str | None = None, output_dir: Path | None = None,
                  read_only: Sequence[Path] = (),
                  on_output: Callable[[bytes], None] | None = None) -> Outcome:
        why = _bad_input(argv, env) or bad_text([image or "", task_id])
        if why:
            return _refused(why)
        image = image or self.default_image
        ws, out, _ = _prepare(workspace, output_dir, self.chown_to)
        start = time.monotonic()
        name = f"bzzz-{_name_part(self.node_id)}-{_name_part(task_id)}-{secrets.token_hex(3)}"
        route = self.gateway.routes.get(task_id) if self.gateway is not None else None
        if route is not None and self.network == "gateway" and self.gateway_image:
            env = {**env, **route.env()}
        else:
            route = None
        tail = Tail(max_output)
        cid: str | None = None
        side: str | None = None
        status, code, note = "failed", None, ""
        try:
            try:
                if route is not None:
                    side = await self._side(route.socket_path, task_id, name)
                body = self.body(argv, ws, env, image, task_id, out, read_only, side)
            except (SandboxError, sidecar.SideError) as exc:
                return _refused(str(exc))
            try:
                cid = await self.engine.create(body, name)
            except EngineError as exc:
                if exc.status == 404:
                    return _refused(f"image {image} is not available on this node")
                return _refused(f"the container engine refused the task: {exc}")
            status, code, note = await self._attach_and_wait(cid, tail, timeout, kill_grace,
                                                             on_output)
        except EngineError as exc:
            status, note = "failed", f"the container engine failed: {exc}"
            tail.add(f"\nbzzz: {note}\n".encode())
        except BaseException:  # cancelled: stop it (SIGTERM, grace, SIGKILL), then remove
            if cid is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(kill_grace + CLEANUP):
                    await self._quietly(self.engine.stop(cid, kill_grace))
            raise
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP):
                for c in (cid, side):  # the task's first: it holds the side's namespace
                    if c is not None:
                        await self._quietly(self.engine.remove(c))
        return Outcome(status, code, round(time.monotonic() - start, 3), tail.text(),
                       tail.total, tail.truncated, note)

    async def _side(self, socket_path: Path, task_id: str, name: str) -> str:
        """The gateway's side container for this task (bzzz/exec/sidecar.py), listening."""
        assert self.gateway is not None and self.gateway_image
        body = sidecar.side_body(
            image=self.gateway_image, user=self.uid,
            socket_source=self._host_path(socket_path),
            forwarder_source=self._host_path(self.gateway.forwarder),
            labels={"bzzz.node": self.node_id, "bzzz.task": task_id, "bzzz.role": "gateway"},
            cpus=self.limits.cpus)
        return await sidecar.start_side(self.engine, body, f"{name}-gateway")

    async def _attach_and_wait(self, cid: str, tail: Tail,
                               timeout: float,  # noqa: ASYNC109 - the task's limit, as in run
                               kill_grace: float,
                               on_output: Callable[[bytes], None] | None = None
                               ) -> tuple[str, int | None, str]:
        async with self.engine.attach(cid) as stream:
            await self.engine.start(cid)
            with trio.move_on_after(timeout) as scope:
                async for chunk in stream.chunks():
                    tail.add(chunk)
                    if on_output is not None:
                        on_output(chunk)
                code = await self.engine.wait(cid)
        if scope.cancelled_caught:
            await self.engine.stop(cid, kill_grace)
            with trio.move_on_after(CLEANUP):
                return "timeout", await self.engine.wait(cid), ""
            return "timeout", None, ""
        state = (await self.engine.inspect(cid)).get("State", {})
        if state.get("OOMKilled"):
            return "failed", code, f"killed: out of memory (limit {self.limits.memory})"
        if code == 137:  # podman on cgroup v1 does not always tell OOM apart
            return "failed", code, ("killed (SIGKILL): out of memory? (limit "
                                    f"{self.limits.memory})")
        return ("succeeded" if code == 0 else "failed"), code, ""

    @staticmethod
    async def _quietly(op: Awaitable[object]) -> None:
        try:
            await op
        except EngineError:
            pass

    async def aclose(self) -> None:
        await self.engine.aclose()


# -- choosing one --------------------------------------------------------------------------

NO_SANDBOX = ('no sandbox available: install bubblewrap or mount a Docker socket; '
              'sandbox = "none" runs tasks unconfined')


async def _engine(docker_host: str | None) -> Engine | None:
    try:
        engine = Engine(resolve_host(docker_host))
    except EngineError:
        return None
    if await engine.ping():
        return engine
    await engine.aclose()
    return None


async def open_sandbox(mode: Literal["auto", "container", "bwrap", "none"], *, node_id: str,
                       hidden: Sequence[Path], state_dir: Path, docker_host: str | None,
                       default_image: str, network: Literal["gateway", "host", "bridge", "none"],
                       limits: Limits, user: RunAs | None, workspace_host_dir: Path | None = None,
                       workspace_root: Path | None = None, cgroup: str = "auto",
                       gateway: Gateway | None = None, gateway_image: str | None = None
                       ) -> Sandbox:
    """The sandbox to run every task in (see the module docstring), checked to work here.

    ``user`` is who tasks run as (``shell.task_identity``: None unless the agent is root).
    ``hidden``: the agent's secret files and directories (token file, psk file, webhook
    secret, data dir). ``state_dir``: where the sandbox records what :meth:`reap` must clean
    up after an agent killed mid-task. ``cgroup``: where bubblewrap tasks get a cgroup each
    (``auto``: the agent's own, when delegated; ``off``; or a delegated directory), see
    bzzz/exec/limits.py. ``gateway_image``: the container kind's image for the gateway's side
    container (bzzz/exec/sidecar.py; default: ``default_image``). Raises
    :class:`SandboxError`."""
    if mode not in ("auto", "container", "bwrap", "none"):
        raise SandboxError(f"sandbox {mode!r} unknown: use auto, container, bwrap or none")
    if network not in ("gateway", "host", "bridge", "none"):
        raise SandboxError(f"sandbox network {network!r} unknown: use gateway, host, bridge or "
                           "none")
    parse_memory(limits.memory)
    parse_memory(limits.disk)
    state_dir = Path(state_dir)
    if mode == "none":
        return NoSandbox(user, state_dir)
    if mode in ("auto", "container"):
        engine = await _engine(docker_host)
        if engine is not None:
            return await _container(engine, node_id=node_id, hidden=hidden,
                                    default_image=default_image, network=network,
                                    limits=limits, user=user,
                                    workspace_host_dir=workspace_host_dir,
                                    workspace_root=workspace_root, gateway=gateway,
                                    gateway_image=gateway_image or default_image)
        if mode == "container":
            raise SandboxError(f"sandbox = \"container\": no container engine answers at "
                               f"{resolve_host(docker_host)}: set docker_host (or DOCKER_HOST) "
                               "or mount the engine's socket there")
    if network == "gateway" and (gateway is None or not gateway.python):
        raise SandboxError("task_network = \"gateway\" needs python3 in /usr/bin or "
                           "/usr/local/bin (the forwarder inside each sandbox runs with it)")
    box = BwrapSandbox(hidden=hidden, state_dir=state_dir, network=network, user=user,
                       limits=limits, cgroup=cgroup_root(cgroup), gateway=gateway)
    why = await box.probe()
    if why is None:
        return box
    if mode == "bwrap":
        raise SandboxError(f"sandbox = \"bwrap\": bubblewrap cannot run here: {why} (install "
                           "the bubblewrap package; in a container it needs user namespaces, "
                           "which Docker's default seccomp profile blocks)")
    raise SandboxError(f"{NO_SANDBOX} (bubblewrap: {why})")


async def _container(engine: Engine, *, node_id: str, hidden: Sequence[Path],
                     default_image: str, network: str, limits: Limits, user: RunAs | None,
                     workspace_host_dir: Path | None, workspace_root: Path | None,
                     gateway: Gateway | None, gateway_image: str) -> ContainerSandbox:
    try:
        podman = await engine.is_podman()
        if not await engine.image_exists(default_image):
            raise SandboxError(f"sandbox image {default_image} is not available on the "
                               f"container engine at {engine.host}: build or load it there "
                               "(docker load / podman load), or name another image")
    except EngineError as exc:
        await engine.aclose()
        raise SandboxError(f"container engine at {engine.host}: {exc}") from None
    except SandboxError:
        await engine.aclose()
        raise
    wmap: tuple[Path, Path] | None = None
    if workspace_host_dir is not None:
        if workspace_root is None:
            await engine.aclose()
            raise SandboxError("workspace_host_dir needs workspace_root (the same directory as "
                               "the agent sees it)")
        root = Path(workspace_root).resolve()  # noqa: ASYNC240 - once, at start-up
        wmap = (root, Path(workspace_host_dir))
    if os.geteuid() != 0:  # the agent's own user: it owns the workspaces
        user, chown_to = RunAs("agent", os.geteuid(), os.getegid()), None
    else:
        user = chown_to = user or RunAs("nobody", NOBODY, NOBODY)
    box = ContainerSandbox(engine, node_id=node_id, hidden=hidden, default_image=default_image,
                           network=network, limits=limits, user=user, chown_to=chown_to,
                           workspace_map=wmap, podman=podman, gateway=gateway)
    if network == "gateway":
        if gateway is None:
            box.gateway_note = "the agent has no gateway"
        else:
            why = await sidecar.probe_image(engine, gateway_image, box.uid)
            box.gateway_image = None if why else gateway_image
            box.gateway_note = why or ""
    return box
