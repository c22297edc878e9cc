"""The repository's own setup, run in the task's sandbox before its executor.

The steps (bzzz/repo/setupfiles.py, from the base branch) run one by one in the checkout,
in the same sandbox and through the same gateway route as the task (the caller runs this
inside the task's ``way_out``, so the allowlist is the task's), with the task's
environment, under one timeout for all of them (``setup_timeout``), output bounded. A
failing step is reported and the next one still runs, as Copilot does; the executor runs
after a failed setup too, unless the repository's ``.bzzz.toml`` says
``[setup] required = true``.

The node caches a setup's result (bzzz/repo/setupcache.py) under a key of the files it
depends on: a task whose key is cached gets the result restored and runs no step. Only a
setup whose every step succeeded is cached, and it is saved before the executor starts.
The scripts are the repository's, from its base branch, as written by people with write
access: they are not the Guardian's to judge; the sandbox contains them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from ..exec.executor import Job
from ..exec.sandbox import NoSandbox, RunAs, Sandbox
from ..exec.shell import CONTAINER_PATH, shell_argv, task_env
from ..repo.git import Git, GitError
from ..repo.setupcache import CacheError, SetupCache
from ..repo.setupfiles import SetupPlan
from ..repo.workspace import Checkout

log = logging.getLogger("bzzz.claim")

__all__ = ["SetupRun", "StepRun", "refill", "run_setup", "task_env_for", "untracked"]

STEP_OUTPUT = 16 * 1024  # bytes of each step's output kept (its tail)
SHOWN_OUTPUT = 1500  # characters of a failed step's output in the result comment


@dataclass
class StepRun:
    name: str
    source: str
    status: str  # succeeded | failed | timeout | cancelled | refused | skipped
    exit_code: int | None = None
    seconds: float = 0.0
    output: str = ""

    def doc(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "status": self.status,
                "exit_code": self.exit_code, "seconds": round(self.seconds, 3)}


@dataclass
class SetupRun:
    source: str | None
    key: str
    required: bool
    steps: list[StepRun] = field(default_factory=list)
    cache: str = "off"  # off | restored | saved | not saved: … | miss
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(s.status != "succeeded" for s in self.steps)

    def doc(self) -> dict[str, Any]:
        """For the result (its comment) and the signed log."""
        return {"source": self.source, "key": self.key, "required": self.required,
                "failed": self.failed, "cache": self.cache, "seconds": round(self.seconds, 3),
                "steps": [s.doc() for s in self.steps], "notes": self.notes[:20],
                "failed_output": next((s.output[-SHOWN_OUTPUT:] for s in self.steps
                                       if s.status != "succeeded"), "")}


def task_env_for(job: Job, kind: str) -> dict[str, str]:
    """The task's own environment, as its executor gets it."""
    env = task_env(str(job.workspace.resolve()), dict(job.env))
    if kind == "container" and "PATH" not in job.env:
        env["PATH"] = CONTAINER_PATH
    return env


async def untracked(git: Git, co: Checkout) -> list[str]:
    """What git does not track in the checkout (a directory as one entry), listed with the
    agent's own index and mirror: never the task's ``.git``."""
    proc = await git.run([*co._git(), "ls-files", "-z", "--others", "--directory"],
                         what="ls-files", env=co._env())
    return [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def _chown(ws: Path, names: Sequence[str], owner: tuple[int, int]) -> None:
    for name in names:
        try:
            os.lchown(ws / name, *owner)
        except FileNotFoundError:
            pass


async def _restore(cache: SetupCache, key: str, ws: Path,
                   owner: tuple[int, int] | None) -> str:
    def work() -> str:
        moved = cache.take_spare(key, ws)  # written ahead of time: a rename per path
        if moved is not None and len(moved) == len(cache.paths(key)):
            return f"restored (spare, {len(moved)} paths)"
        names = cache.restore(key, ws)  # as the agent, then handed to the task user
        if owner is not None:
            _chown(ws, names, owner)
        return f"restored ({len(names)} paths)"

    return await trio.to_thread.run_sync(work)


async def refill(cache: SetupCache, key: str, owner: tuple[int, int] | None) -> None:
    """The next task's copy of the setup of ``key``, written ahead of time (a background
    job: a failure only means the next task restores from the tar file)."""
    try:
        await trio.to_thread.run_sync(cache.make_spare, key, owner)
    except (CacheError, OSError) as exc:
        log.info("no spare setup", extra={"key": key, "error": str(exc)[:200]})


async def _save(cache: SetupCache, key: str, co: Checkout, paths: list[str]) -> str:
    if not paths:
        return "saved (nothing to keep)"
    try:
        saved = await trio.to_thread.run_sync(cache.save, key, co.path, paths)
    except CacheError as exc:
        return f"not saved: {exc}"[:200]
    return f"saved ({saved.files} paths, {saved.bytes / (1 << 20):.1f} MiB)"


async def _run_steps(plan: SetupPlan, job: Job, box: Sandbox,
                     timeout: float) -> list[StepRun]:  # noqa: ASYNC109 -- shared by the steps
    env, out = task_env_for(job, box.kind), []
    deadline = trio.current_time() + timeout
    for step in plan.steps:
        left = deadline - trio.current_time()
        if left <= 0:
            out.append(StepRun(step.name, step.source, "skipped", output="setup_timeout spent"))
            continue
        got = await box.run(shell_argv(step.script, box.kind), job.workspace, env,
                            timeout=left, max_output=STEP_OUTPUT, kill_grace=2.0,
                            task_id=job.task_id,
                            image=plan.image if box.kind == "container" else None,
                            output_dir=job.output_dir, read_only=job.read_only)
        text = got.output + (f"\n[bzzz] {got.note}" if got.note else "")
        out.append(StepRun(step.name, step.source, got.status, got.exit_code, got.duration, text))
    return out


async def run_setup(plan: SetupPlan, key: str, job: Job, sandbox: Sandbox | None, *,
                    user: RunAs | None, git: Git, co: Checkout, cache: SetupCache | None,
                    owner: tuple[int, int] | None, required: bool,
                    timeout: float) -> SetupRun:  # noqa: ASYNC109 -- setup_timeout, reported
    """Restore the cached setup of ``key``, else run the plan's steps (and cache them)."""
    run = SetupRun(plan.source, key, required, notes=list(plan.notes))
    started = time.monotonic()
    if cache is not None and key and cache.lookup(key) is not None:
        try:
            run.cache = await _restore(cache, key, job.workspace, owner)
            co.environment = [p.rstrip("/") for p in cache.paths(key)]
            run.seconds = time.monotonic() - started
            return run
        except CacheError as exc:
            run.notes.append(str(exc))
    box = sandbox if sandbox is not None else NoSandbox(user)
    run.steps = await _run_steps(plan, job, box, timeout)
    try:  # what it made is the task's environment: cached, and never delivered
        made = await untracked(git, co)
    except GitError as exc:
        made = []
        run.notes.append(f"what the setup made is not known: {exc}"[:300])
    co.environment = [p.rstrip("/") for p in made]
    if cache is not None and key:
        run.cache = "miss: a step failed, not saved" if run.failed else \
            await _save(cache, key, co, made)
    run.seconds = time.monotonic() - started
    return run
