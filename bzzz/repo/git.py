"""Running git for the agent: its own configuration only, the token out of sight.

Every git process the agent starts gets a fixed environment: no system or global
configuration, no prompts, no hooks, no fsmonitor, and the token (when the command talks to
GitHub) as an ``http.extraHeader`` given through ``GIT_CONFIG_COUNT`` variables. So the token
is never in a URL, an argument (the process list is world-readable), a file, or a remote's
configuration; git's own messages are redacted before they reach an error or a log.

The agent never runs git on a repository a task controlled: a task's ``.git`` (hooks,
``core.fsmonitor``, filters, object files) is the task's, and git would run what it names.
Delivery reads the task's working files through the agent's own index and mirror
(``workspace.py``), and the commits the task made by reading its ``.git`` without git
(``taskcommits.py``).
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import trio

from ..errors import RepoError
from ..redact import redact

GIT_TIMEOUT = 300.0  # seconds for one network git command (a first fetch of a big repository)
LOCAL_TIMEOUT = 120.0


class GitError(RepoError):
    """A git command failed: which one (without secrets), and git's last words."""

    def __init__(self, what: str, code: int | None, stderr: str) -> None:
        tail = redact(stderr.strip())[-600:]
        super().__init__(f"git {what} failed" + (f" (exit {code})" if code is not None else "")
                         + (f": {tail}" if tail else ""))
        self.code = code
        self.stderr = tail


def auth_header(token: str) -> str:
    """GitHub's smart HTTP takes the token as the password of Basic authentication."""
    raw = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return f"Authorization: Basic {raw}"


BASE_CONFIG = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.trustctime", "false"),  # a checkout handed to the task user changed ctime only
    ("core.askPass", ""),
    ("credential.helper", ""),
    ("protocol.file.allow", "never"),  # only our own local paths, given explicitly below
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("advice.detachedHead", "false"),
    ("init.defaultBranch", "main"),
    ("user.useConfigOnly", "false"),
)


def git_env(*, token: str | None = None, home: Path | None = None,
            extra: Mapping[str, str] | None = None,
            config: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """The whole environment of one agent-side git process."""
    pairs = list(BASE_CONFIG) + list(config)
    if token:
        pairs.append(("http.extraHeader", auth_header(token)))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home or "/nonexistent"),
        "LANG": "C", "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "SSH_ASKPASS": "/bin/false",
        "GIT_NO_REPLACE_OBJECTS": "1", "GIT_OPTIONAL_LOCKS": "0",
        "GIT_CONFIG_COUNT": str(len(pairs)),
    }
    for i, (k, v) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"] = k
        env[f"GIT_CONFIG_VALUE_{i}"] = v
    env.update(extra or {})
    return env


class Git:
    """git commands for one agent; counts what it ran (for the benches) and how long."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home
        self.runs = 0
        self.seconds = 0.0
        self.by_step: dict[str, list[float]] = {}  # what -> [runs, seconds]

    async def run(self, args: Sequence[str], *, what: str, token: str | None = None,
                  cwd: Path | None = None, stdin: bytes | None = None,
                  env: Mapping[str, str] | None = None,
                  timeout: float = LOCAL_TIMEOUT,  # noqa: ASYNC109 -- per git step, told in GitError
                  check: bool = True, config: Sequence[tuple[str, str]] = ()
                  ) -> subprocess.CompletedProcess[bytes]:
        """``git <args>``; raises :class:`GitError` (redacted) on failure or timeout."""
        full_env = git_env(token=token, home=self.home, extra=env, config=config)
        start = time.monotonic()
        self.runs += 1
        try:
            with trio.fail_after(timeout):
                proc = await trio.run_process(
                    ["git", *args], stdin=stdin if stdin is not None else b"",
                    capture_stdout=True, capture_stderr=True, check=False, env=full_env,
                    cwd=str(cwd) if cwd else None)
        except trio.TooSlowError:
            raise GitError(what, None, f"timed out after {timeout:g} s") from None
        except OSError as exc:
            raise GitError(what, None, f"could not start git: {exc}") from None
        finally:
            took = time.monotonic() - start
            self.seconds += took
            step = self.by_step.setdefault(what, [0, 0.0])
            step[0] += 1
            step[1] += took
        if check and proc.returncode != 0:
            raise GitError(what, proc.returncode, proc.stderr.decode("utf-8", "replace"))
        return proc

    async def out(self, args: Sequence[str], **kw: Any) -> str:
        return (await self.run(args, **kw)).stdout.decode("utf-8", "replace").strip()
