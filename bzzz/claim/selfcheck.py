"""The repository's own check before anything is pushed (issue #23 item 4).

``.bzzz/test.sh`` on the base branch (else ``test = "…"`` in its ``.bzzz.toml``) runs in the
task's sandbox and gateway route, in the checkout, after an executor that succeeded. When
it fails and the executor is one that works from feedback (``llm``, ``agent``), the
executor runs once more with the check's output added to its feedback
(``$BZZZ_FEEDBACK``), and the check runs again. Whatever the last check said goes into the
result comment and the pull request's body; the work is delivered either way (a reviewer
sees the red check on the pull request rather than no pull request at all).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..exec.executor import Job, Outcome
from ..exec.sandbox import NoSandbox, RunAs, Sandbox
from ..exec.shell import shell_argv
from ..repo.setupfiles import Step
from .repofiles import CHECK_SH
from .setup import STEP_OUTPUT, StepRun, task_env_for

__all__ = ["CHECK_SH", "FEEDBACK_RETRY", "CheckRun", "check_feedback", "self_check"]

FEEDBACK_RETRY = frozenset({"llm", "agent"})  # executors a second run with feedback may help
SHOWN = 3000  # characters of a failed check's output given back and shown


@dataclass
class CheckRun:
    source: str
    runs: list[StepRun] = field(default_factory=list)
    retried: bool = False  # the executor ran again with the failure as feedback

    @property
    def passed(self) -> bool:
        return bool(self.runs) and self.runs[-1].status == "succeeded"

    def doc(self) -> dict[str, Any]:
        last = self.runs[-1] if self.runs else None
        return {"source": self.source, "passed": self.passed, "retried": self.retried,
                "runs": [r.doc() for r in self.runs],
                "output": (last.output[-SHOWN:] if last is not None else "")}


def check_feedback(run: StepRun, source: str) -> str:
    """The feedback section a failed check adds for the executor's second run."""
    code = f" (exit {run.exit_code})" if run.exit_code is not None else f" ({run.status})"
    tail = run.output[-SHOWN:].replace("```", "``\u200b`")
    return (f"## The repository's check `{source}` failed{code}\n\nIt runs after your "
            "changes, before anything is pushed. Its output (the end):\n\n"
            f"```\n{tail}\n```\n\nFix what it reports.\n\n")


async def _run(check: Step, job: Job, box: Sandbox,
               timeout: float) -> StepRun:  # noqa: ASYNC109 -- test_timeout, reported
    got = await box.run(shell_argv(check.script, box.kind), job.workspace,
                        task_env_for(job, box.kind), timeout=timeout, max_output=STEP_OUTPUT,
                        kill_grace=2.0, task_id=job.task_id, output_dir=job.output_dir,
                        read_only=job.read_only)
    text = got.output + (f"\n[bzzz] {got.note}" if got.note else "")
    return StepRun(check.name, check.source, got.status, got.exit_code, got.duration, text)


async def self_check(check: Step, job: Job, outcome: Outcome, sandbox: Sandbox | None, *,
                     user: RunAs | None, executor: str,
                     again: Callable[[Job], Awaitable[Outcome]],
                     timeout: float) -> tuple[Outcome, CheckRun]:  # noqa: ASYNC109
    """Check the executor's work; on a failure give it back once (see the module)."""
    box = sandbox if sandbox is not None else NoSandbox(user)
    done = CheckRun(check.source)
    done.runs.append(await _run(check, job, box, timeout))
    if done.passed or executor not in FEEDBACK_RETRY:
        return outcome, done
    job.feedback += check_feedback(done.runs[-1], check.source)
    job.feedback_file.write_text(job.feedback)
    os.chmod(job.feedback_file, 0o644)
    done.retried = True
    outcome = await again(job)
    if outcome.result.status == "succeeded":
        done.runs.append(await _run(check, job, box, timeout))
    return outcome, done
