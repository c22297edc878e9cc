"""The shell executor: a task's command, checked by the Guardian, run in a sandbox.

- The Guardian decides first; a refused command never starts. So does a command or
  environment that no process can be given (NUL bytes, lone surrogates): "refused".
- The command runs with ``bash -c`` (``sh`` where bash is missing, as in busybox images) in
  the task's workspace, through the agent's :class:`~bzzz.exec.sandbox.Sandbox`: a
  container, bubblewrap, or none (a process group; the pre-sandbox behaviour). The
  environment is minimal: the agent's secrets (GitHub token, keys) are never inherited.
- Output (stdout and stderr, interleaved) is captured up to ``max_output`` bytes: the tail is
  kept, the total is counted.
- An agent running as root runs tasks as an unprivileged user (``task_user``, default
  ``nobody``): the workspace is handed to that user, the process gets its uid, gid and no
  supplementary groups. Running tasks as root takes an explicit ``task_user = "root"``.
- On timeout or cancellation (issue closed, lease lost, shutdown) the task's whole tree is
  stopped: SIGTERM, then SIGKILL after ``kill_grace`` seconds (a sandbox kills everything in
  it; ``none`` kills the process group).
"""

from __future__ import annotations

from ..errors import ExecError
import os
import pwd
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from .guardian import Policy, Verdict, check_async
from .sandbox import NoSandbox, RunAs, Sandbox, Tail, bad_text

__all__ = ["Result", "RunAs", "TaskUserError", "reachable_by", "run_shell", "task_env",
           "task_identity"]

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
    extra: dict[str, Any] = field(default_factory=dict)


class TaskUserError(ExecError, ValueError):
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


_Tail = Tail  # the old name


def task_env(workspace: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in SAFE_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({"HOME": workspace, "BZZZ_WORKSPACE": workspace, "CI": "true"})
    env.update(extra or {})
    return env


CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# In an image, bash if it has one, else sh (busybox)
_IMAGE_SHELL = 'if command -v bash >/dev/null 2>&1; then exec bash -c "$1"; else exec sh -c "$1"; fi'


def shell_argv(command: str, kind: str) -> list[str]:
    """How to run ``command`` in a sandbox of ``kind``: the host's bash (or sh) for
    ``none`` and ``bwrap`` (which see the host's /usr), the image's for ``container``."""
    if kind == "container":
        return ["/bin/sh", "-c", _IMAGE_SHELL, "bzzz-task", command]
    return [shutil.which("bash") or "/bin/sh", "-c", command]


async def run_shell(command: str, workspace: str | os.PathLike[str], *,
                    sandbox: Sandbox | None = None,
                    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - ends as "timeout"
                    policy: Policy | None = None, max_output: int = DEFAULT_MAX_OUTPUT,
                    env: dict[str, str] | None = None, kill_grace: float = KILL_GRACE,
                    image: str | None = None, output_dir: str | os.PathLike[str] | None = None,
                    task_id: str | None = None, user: RunAs | None = None,
                    read_only: "list[Path] | tuple[Path, ...]" = ()) -> Result:
    """Check ``command``, then run it in ``sandbox`` (None: ``NoSandbox(user)``, the old
    behaviour; ``user`` is only used then)."""
    ws = str(await trio.Path(workspace).resolve())
    why = bad_text([command, *(env or {}).keys(), *(env or {}).values(), image or ""])
    if why:
        return Result("refused", verdict=Verdict(False, [f"command or environment {why}"]),
                      workspace=ws)
    places = {k: v for k, v in (env or {}).items() if k in ("BZZZ_OUTPUT", "BZZZ_FEEDBACK")}
    verdict = await check_async(command, ws, policy, places=places)  # off the event loop
    if not verdict.allowed:
        return Result("refused", verdict=verdict, workspace=ws)
    box = sandbox if sandbox is not None else NoSandbox(user)
    full_env = task_env(ws, env)
    if box.kind == "container" and not (env and "PATH" in env):
        full_env["PATH"] = CONTAINER_PATH  # the agent's PATH means nothing in an image
    outcome = await box.run(shell_argv(command, box.kind), Path(ws), full_env, timeout=timeout,
                            max_output=max_output, kill_grace=kill_grace,
                            task_id=task_id or Path(ws).name, image=image,
                            output_dir=Path(output_dir) if output_dir else None,
                            read_only=read_only)
    extra = {"sandbox": box.kind}
    if outcome.note:
        extra["note"] = outcome.note
    return Result(outcome.status, outcome.exit_code, outcome.duration, outcome.output,
                  outcome.output_bytes, outcome.truncated, verdict, ws, extra)
