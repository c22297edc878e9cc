"""The shell executor: a task's command, checked by the Guardian, run in its own workspace.

- The Guardian decides first; a refused command never starts.
- The command runs with ``bash -c`` (``sh`` if bash is missing) in the task's workspace, in a
  new session (its own process group), with a minimal environment: the agent's secrets
  (GitHub token, keys) are never inherited.
- Output (stdout and stderr, interleaved) is captured up to ``max_output`` bytes: the tail is
  kept, the total is counted.
- An agent running as root runs tasks as an unprivileged user (``task_user``, default
  ``nobody``): the workspace is handed to that user, the process gets its uid, gid and no
  supplementary groups. Running tasks as root takes an explicit ``task_user = "root"``.
- On timeout or cancellation (issue closed, lease lost, shutdown) the whole process group
  gets SIGTERM, then SIGKILL after ``kill_grace`` seconds.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from .guardian import Policy, Verdict, check

DEFAULT_TIMEOUT = 600.0
DEFAULT_MAX_OUTPUT = 64 * 1024
KILL_GRACE = 2.0
SAFE_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "TERM")


@dataclass
class Result:
    status: str  # "succeeded", "failed", "refused", "timeout", "cancelled"
    exit_code: int | None = None
    duration: float = 0.0
    output: str = ""  # the tail
    output_bytes: int = 0
    truncated: bool = False
    verdict: Verdict | None = None
    workspace: str = ""
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunAs:
    name: str
    uid: int
    gid: int


class TaskUserError(ValueError):
    pass


def task_identity(name: str | None) -> RunAs | None:
    """Who tasks run as: None (the agent's own user) unless the agent is root, which hands
    tasks to ``name`` (default ``nobody``); ``root`` must be asked for by name."""
    if os.geteuid() != 0:
        if name is not None and name != pwd.getpwuid(os.geteuid()).pw_name:
            raise TaskUserError(f"task_user {name!r} needs an agent running as root")
        return None
    name = name or "nobody"
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, ValueError):
        raise TaskUserError(f"task_user {name!r} is not a user on this machine") from None
    if entry.pw_uid == 0:
        return None  # asked for explicitly: no drop
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def reachable_by(path: Path, user: RunAs) -> str | None:
    """The first directory on the way to ``path`` (itself included) that ``user`` cannot
    enter, if any."""
    path = path.resolve()
    for d in [*reversed(path.parents), path]:
        st = d.stat()
        mode = st.st_mode
        ok = (mode & 0o001) or (st.st_uid == user.uid and mode & 0o100) \
            or (st.st_gid == user.gid and mode & 0o010)
        if not ok:
            return str(d)
    return None


class _Tail:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.buf += chunk
        if len(self.buf) > self.limit:
            del self.buf[: len(self.buf) - self.limit]

    def text(self) -> str:
        return self.buf.decode("utf-8", errors="replace")


def task_env(workspace: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in SAFE_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({"HOME": workspace, "BZZZ_WORKSPACE": workspace, "CI": "true"})
    env.update(extra or {})
    return env


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def run_shell(command: str, workspace: str | os.PathLike[str], *,
                    timeout: float = DEFAULT_TIMEOUT, policy: Policy | None = None,
                    max_output: int = DEFAULT_MAX_OUTPUT, env: dict[str, str] | None = None,
                    kill_grace: float = KILL_GRACE, user: RunAs | None = None) -> Result:
    ws = str(Path(workspace).resolve())
    verdict = check(command, ws, policy)
    if not verdict.allowed:
        return Result("refused", verdict=verdict, workspace=ws)
    Path(ws).mkdir(parents=True, exist_ok=True)
    as_user: dict = {}
    if user is not None:
        os.chown(ws, user.uid, user.gid)
        as_user = {"user": user.uid, "group": user.gid, "extra_groups": []}
    shell = shutil.which("bash") or "/bin/sh"
    tail = _Tail(max_output)
    start = time.monotonic()
    status = "failed"
    proc = await trio.lowlevel.open_process(
        [shell, "-c", command], cwd=ws, env=task_env(ws, env), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, **as_user)
    try:
        with trio.move_on_after(timeout) as scope:
            async for chunk in proc.stdout:
                tail.add(chunk)
            await proc.wait()
        if scope.cancelled_caught:
            status = "timeout"
        else:
            status = "succeeded" if proc.returncode == 0 else "failed"
    except trio.Cancelled:
        status = "cancelled"
        raise
    finally:
        if proc.returncode is None or status in ("timeout", "cancelled"):
            with trio.CancelScope(shield=True):
                _kill_group(proc.pid, signal.SIGTERM)
                with trio.move_on_after(kill_grace):
                    await proc.wait()
                _kill_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        if proc.stdout is not None:
            with trio.CancelScope(shield=True):
                await proc.stdout.aclose()
    return Result(status, proc.returncode, round(time.monotonic() - start, 3), tail.text(),
                  tail.total, tail.total > len(tail.buf), verdict, ws)
