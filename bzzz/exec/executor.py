"""The executor seam: what runs a task, whatever it is (a shell command, a container, a local
LLM, a coding-agent CLI).

The claim service prepares a :class:`Job` (the checkout, the output directory, the feedback
so far, the environment) and asks the executor named by the task spec to run it under a
cancel scope. The :class:`Result` says how it ended, what the executor learned the task
needs (``missing``: capabilities a peer may have, for a help request) and, after the run,
what the task handed back is read from the output directory (``summary.md``,
``question.md``, ``follow-ups.json``) by the service, the same for every executor.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .guardian import Policy
from .sandbox import Sandbox, Tail
from .shell import RunAs, Result, run_shell, task_env

# "bash: line 1: frobnicate: command not found": a capability the task turned out to need
_MISSING_RE = re.compile(
    r"(?:^|\n)(?:[\w/.-]+: )?(?:line \d+: |\d+: )?([\w.+-]{1,64}): command not found")


@dataclass
class Job:
    task_id: str
    repo: str
    issue: int
    title: str
    body: str  # the whole issue text
    executor: str
    options: Mapping[str, str]
    code: str | None  # the bzzz block (None: there is none)
    workspace: Path
    output_dir: Path
    feedback: str  # questions, answers and review feedback so far (also in feedback_file)
    feedback_file: Path
    env: dict[str, str]  # BZZZ_* for the task
    read_only: list[Path]  # paths the sandbox shows read-only (the mirror, the inputs dir)
    timeout: float
    progress: Callable[[str], None] = lambda line: None  # the latest line, for people
    # model tokens the executor itself spends (model, in, out), as they come: onto the task's
    # account and budgets in the node's gateway (the llm executor; a sandboxed task's own
    # model calls are counted by its gateway route)
    # (model, tokens in, tokens out, the endpoint's root URL: its price)
    meter: Callable[[str, int, int, str], None] = lambda model, tokens_in, tokens_out, root: None
    # the repository's own instructions for coding agents (AGENTS.md, CLAUDE.md, Copilot's),
    # from the base branch, rendered with a heading per source (bzzz/repo/instructions.py);
    # also in the file $BZZZ_REPO_INSTRUCTIONS names. Text to show a model, never to run.
    needs: frozenset[str] = frozenset()  # the task's needs:<capability> labels
    repo_instructions: str = ""


@dataclass
class Outcome:
    result: Result
    missing: list[str] = field(default_factory=list)  # capabilities a helper would need
    reason: str | None = None  # why it failed, in a few words (for a help request)


class Executor(Protocol):
    name: str

    async def run(self, job: Job) -> Outcome: ...


def _shell_reason(result: Result) -> tuple[str | None, list[str]]:
    if result.status not in ("failed", "timeout"):
        return None, []
    missing = sorted(set(_MISSING_RE.findall(result.output)))[:5]
    if result.exit_code == 127 and missing:
        return f"missing here: {', '.join(missing)}", missing
    return (f"exit status {result.exit_code}" if result.status == "failed" else "timed out"), []


class ShellExecutor:
    """``shell`` (the block is a bash script, checked by the Guardian) and ``container``
    (the same, inside the spec's ``image=``)."""

    def __init__(self, name: str, sandbox: Sandbox | None, policy: Policy | None,
                 user: RunAs | None) -> None:
        self.name = name
        self.sandbox, self.policy, self.user = sandbox, policy, user

    async def run(self, job: Job) -> Outcome:
        result = await run_shell(
            job.code or "", job.workspace, sandbox=self.sandbox, timeout=job.timeout,
            policy=self.policy, user=self.user, task_id=job.task_id, env=job.env,
            output_dir=job.output_dir, read_only=job.read_only,
            image=job.options.get("image") if self.name == "container" else None)
        reason, missing = _shell_reason(result)
        return Outcome(result, missing, reason)


INSTRUCTIONS = "instructions.md"


def instructions(job: Job) -> str:
    """What a coding agent is asked: the block, or the whole issue when there is none, the
    feedback so far, and the repository's own instructions under their heading."""
    text = job.code if job.code and job.code.strip() else f"# {job.title}\n\n{job.body}"
    if job.feedback.strip():
        text += ("\n\n---\n\nFeedback so far (questions, answers and review comments, oldest "
                 f"first):\n\n{job.feedback}")
    if job.repo_instructions.strip():
        text += f"\n\n---\n\n{job.repo_instructions.strip()}\n"
    return text


class AgentExecutor:
    """A coding-agent CLI the node is configured with (``agent_command``), run in the
    sandbox in the checkout: the instructions are in ``$BZZZ_INSTRUCTIONS`` (a file, the
    repository's own instructions at its end; they are also alone in
    ``$BZZZ_REPO_INSTRUCTIONS``) and on standard input is nothing; ``{instructions}`` in the
    command is replaced by that path.
    Operator configuration, so the Guardian does not judge it; the sandbox contains it."""

    name = "agent"

    def __init__(self, command: str | Sequence[str], sandbox: Sandbox, *,
                 env: Mapping[str, str] | None = None, max_output: int = 64 * 1024,
                 leftovers: Sequence[str] = ()) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        self.leftovers = list(leftovers)  # globs of the CLI's own files: never committed
        if not self.argv:
            raise ValueError("agent_command is empty")
        self.sandbox = sandbox
        self.env = {k.upper(): v for k, v in (env or {}).items()}  # env names: upper case
        self.max_output = max_output

    async def run(self, job: Job) -> Outcome:
        path = job.feedback_file.parent / INSTRUCTIONS
        path.write_text(instructions(job))
        path.chmod(0o644)
        argv = [a.replace("{instructions}", str(path)) for a in self.argv]
        env = task_env(str(job.workspace.resolve()), {**self.env, **job.env,
                                                      "BZZZ_INSTRUCTIONS": str(path)})
        if self.sandbox.kind == "container":
            env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        recent = Tail(4096)

        def seen(chunk: bytes) -> None:
            recent.add(chunk)
            job.progress(recent.text())

        out = await self.sandbox.run(argv, job.workspace, env, timeout=job.timeout,
                                     max_output=self.max_output, kill_grace=2.0,
                                     task_id=job.task_id, output_dir=job.output_dir,
                                     read_only=job.read_only, on_output=seen)
        extra: dict[str, object] = {"sandbox": self.sandbox.kind, "executor": "agent"}
        if out.note:
            extra["note"] = out.note
        if self.leftovers:
            extra["leftovers"] = self.leftovers
        result = Result(out.status, out.exit_code, out.duration, out.output, out.output_bytes,
                        out.truncated, None, str(job.workspace), extra)
        reason, missing = _shell_reason(result)
        return Outcome(result, missing, reason)
