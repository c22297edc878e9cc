"""One attempt at a task, as a state machine: its phases, the one table of the moves between
them, and the typed values an attempt ends with.

The phases' values are the ``state`` strings of the status API's ``tasks`` (CONTRACT), so an
attempt's phase is shown as it is. ``DONE`` is the sentinel end state: every attempt ends
there (claim lost, abandoned, waiting for approval, handed over, reported, crashed), and it
is never shown (the attempt leaves the running set as it gets there). A move not in
:data:`TRANSITIONS` raises :class:`IllegalTransition`, as h11's ``_state.py`` does.
"""

from __future__ import annotations

import enum
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator, Callable

from ..kinds import Decision
from ..errors import ClaimError, RepoError
from ..exec.agents.checklist import checklist_markdown
from ..exec.executor import Executor, Job, Outcome
from ..exec.shell import Result
from ..gateway.allow import Allowlist, EgressError, repo_entries
from ..gateway.proxy import Route
from ..github.client import GitHubError, Unavailable
from ..github.markers import find_markers
from ..repo.workspace import Checkout, remove
from . import report
from .ciround import feedback_of as ci_feedback
from .delivery import PullRef, prior_pull, read_handed_back
from .repofiles import RepoFiles, read_repo_files
from .selfcheck import self_check
from .setup import refill, run_setup
from .gitlock import Held, Lost
from .lease import renewal_due
from .report import marker_authors
from .task import STATE_LABELS, Task, TaskError, ineligible_reason, parse_issue, task_timeout
from .trust import parse_command

if TYPE_CHECKING:
    from .service import ClaimService

log = logging.getLogger("bzzz.claim")


class Phase(enum.Enum):
    CLAIMING = "claiming"  # acquiring the lock
    CLAIMED = "claimed"  # holding it: fresh read, eligibility, trust, marking the issue
    PREPARING = "preparing"  # checkout, feedback, the task's directories
    RUNNING = "running"  # the executor runs the task
    ASKING_FOR_HELP = "asking for help"  # it failed here: the mesh may take it
    REPORTING = "reporting"  # result, question or delivery, on GitHub
    DONE = "done"  # sentinel: the attempt is over


# the one table: from each phase, where an attempt may go next
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.CLAIMING: frozenset({Phase.CLAIMED, Phase.DONE}),
    Phase.CLAIMED: frozenset({Phase.PREPARING, Phase.DONE}),
    Phase.PREPARING: frozenset({Phase.RUNNING, Phase.DONE}),
    Phase.RUNNING: frozenset({Phase.ASKING_FOR_HELP, Phase.REPORTING, Phase.DONE}),
    Phase.ASKING_FOR_HELP: frozenset({Phase.REPORTING, Phase.DONE}),
    Phase.REPORTING: frozenset({Phase.DONE}),
    Phase.DONE: frozenset(),
}


class IllegalTransition(ClaimError, RuntimeError):
    """A move the table does not have: a bug in the attempt's driver."""


def next_phase(current: Phase, to: Phase) -> Phase:
    if to not in TRANSITIONS[current]:
        raise IllegalTransition(f"an attempt cannot go from {current.value!r} to {to.value!r}")
    return to


class Status(enum.StrEnum):
    """How an attempt ended, as its log entries and the ``bzzz_tasks_finished_total{status}``
    metric name it (the first five are an executor's result statuses)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    REFUSED = "refused"
    CANCELLED = "cancelled"
    ASKED = "asked"  # the task asked a person (no result yet)


HELPABLE = frozenset({Status.FAILED, Status.TIMEOUT})  # endings a peer may do better with


class Stop(enum.Enum):
    """Why a running task was stopped from outside its executor."""

    LEASE_LOST = "lease lost"
    ISSUE_CLOSED = "issue closed"
    UNLABELLED = "label removed"
    CANCELLED = "cancel command"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class StopReason:
    kind: Stop
    by: str = ""  # who, for a cancel command

    def __str__(self) -> str:  # the sentence the log entry and the comment give
        return {Stop.LEASE_LOST: "its claim was taken over (lease lost)",
                Stop.ISSUE_CLOSED: "the issue was closed",
                Stop.UNLABELLED: "the bzzz label was removed",
                Stop.CANCELLED: f"cancelled by @{self.by}",
                Stop.SHUTDOWN: "the agent is shutting down"}[self.kind]


SHUTTING_DOWN = StopReason(Stop.SHUTDOWN)


# ---------------------------------------------------------------------------- the driver
#
# An attempt in motion: the claim service starts one per task it takes (or is handed), and
# the attempt goes through the phases above, one method each. What it shares with the rest
# of the service (settings, issue operations, the decision log, the wait list, reporting)
# it reaches through ``svc``, the ClaimService that started it.

MAX_QUESTION = 16 * 1024
PROGRESS_EXECUTORS = ("llm", "agent")  # the long, quiet ones
PROGRESS_MAX = 8000  # characters of an executor's progress kept (an agent's checklist)
PROGRESS_LINES, PROGRESS_LINE = 20, 160  # of it in a progress decision (at most ~3 KB)
SHUTDOWN_GRACE = 5.0  # seconds a stopping agent spends telling GitHub and releasing


@dataclass
class Running:
    """A task this agent works on, as the status API shows it."""

    task: Task
    since: float
    phase: Phase = Phase.CLAIMING
    scope: trio.CancelScope | None = None
    held: Held | None = None
    stop_reason: StopReason | None = None
    verifying: bool = False
    ref_lock: trio.Lock = field(default_factory=trio.Lock)  # renewals vs handoffs
    handed_from: str | None = None  # the node that handed this task to us
    progress: str = ""  # the latest line an executor reported

    @property
    def state(self) -> str:
        return self.phase.value

    def move(self, to: Phase) -> None:
        self.phase = next_phase(self.phase, to)


@dataclass(frozen=True)
class Workdirs:
    """An attempt's directories: the checkout, what the task hands back, what it is given,
    and what only the agent sees (removed together when the attempt ends)."""

    workspace: Path
    out_dir: Path
    in_dir: Path
    private: Path

    @classmethod
    def of(cls, root: Path, task: Task, generation: int) -> Workdirs:
        name = f"{task.repo.replace('/', '_')}-{task.number}-{generation}"
        return cls(root / name, root / ".out" / name, root / ".in" / name,
                   root / ".private" / name)


class Attempt:
    """One attempt at a task, from the claim to the report, phase by phase."""

    def __init__(self, svc: ClaimService, run: Running) -> None:
        self.svc, self.s, self.run = svc, svc.s, run
        self.task = run.task
        self.ops = svc.ops[run.task.repo]
        self.lock = svc.locks[run.task.repo]
        self.fresh: dict[str, Any] = {}  # the issue as read once the claim is held
        self.key = ""  # "<node>:<claim generation>": names this attempt's comments
        self.generation = 0
        self.executor: Executor | None = None
        self.dirs: Workdirs | None = None
        self.co: Checkout | None = None  # the checkout
        self.prior: PullRef | None = None  # the pull request of an earlier round
        self.comments: list[dict[str, Any]] = []
        self.outcome: Outcome | None = None  # None: cancelled before the executor ended
        self.files: RepoFiles | None = None  # what the base branch says (instructions, setup)
        self.setup_doc: dict[str, Any] | None = None  # how the repository's setup went
        self.check_doc: dict[str, Any] | None = None  # what the repository's check said

    @property
    def workdirs(self) -> Workdirs:
        assert self.dirs is not None, "an attempt has its directories once it prepares"
        return self.dirs

    @property
    def chosen(self) -> Executor:
        assert self.executor is not None, "an attempt prepares once it has an executor"
        return self.executor

    # -------------------------------------------------------------- claiming

    async def claim_and_run(self) -> None:
        held = await self.claim()
        if held is not None:
            await self.hold(held)

    async def claim(self) -> Held | None:
        outcome = await self.lock.acquire(
            self.task.number, probe_first=STATE_LABELS["claimed"] in self.task.labels)
        if not isinstance(outcome, Lost):
            return outcome
        task, holder, svc = self.task, outcome.holder, self.svc
        svc._decide(Decision.CONTENTION_LOST, task, reason=outcome.reason,
                    holder_node=holder.node if holder else None,
                    holder_peer=holder.peer if holder else None)
        soon = svc.clock() + 2 * self.s.poll_interval
        if holder is None:
            wait_until = svc.clock() + self.s.lease
        elif STATE_LABELS["claimed"] in task.labels:
            wait_until = holder.lease_expires  # it runs there: look again at its expiry
        else:
            # held but not marked as running: its holder is finishing (it asked, or
            # reported) and releases in a moment; an answer must not wait a whole lease
            wait_until = min(holder.lease_expires, soon)
        svc.not_before[task.key] = wait_until
        self.run.move(Phase.DONE)
        return None

    async def hold(self, held: Held) -> None:
        """Hold the claim while the attempt goes on: the lease is kept from the claim until
        the result is reported, so a GitHub outage delays the work but never hands the task
        to someone else meanwhile. Released at the end unless lost or handed over."""
        run = self.run
        run.held = held
        run.move(Phase.CLAIMED)
        try:
            async with trio.open_nursery() as keeper:
                keeper.start_soon(self.keep_lease)
                await self.holding(held)
                keeper.cancel_scope.cancel()
        finally:
            if run.held is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_GRACE):
                    await self.lock.release(run.held)

    async def holding(self, held: Held) -> None:
        """Everything done while holding the claim; every GitHub step waits out an outage."""
        if not await self.read_fresh() or not self.still_eligible():
            return
        if not await self.svc._trusted(self.task) or not await self.mark(held):
            return
        if not await self.choose_executor():
            return
        self.run.move(Phase.PREPARING)
        self.dirs = Workdirs.of(self.s.workroot, self.task, held.claim.generation)
        try:
            if not await self.prepare():
                return
            await self.execute(await self.inputs())
            if await self.ask_for_help():
                return
            self.run.move(Phase.REPORTING)
            await self.report()
        finally:
            await self.clean_up()

    # -------------------------------------------------------------- claimed

    async def read_fresh(self) -> bool:
        """Our view may be a poll behind: another node may have finished the task and
        released the lock since. Read the issue fresh before doing anything."""
        async def read() -> None:
            self.fresh.update(await self.ops.get(self.task.number))

        return await self.svc.reporter.durably(self.run, "read", read)

    def still_eligible(self) -> bool:
        svc = self.svc
        try:
            self.task = self.run.task = parse_issue(self.task.repo, self.fresh)
            stale = ineligible_reason(self.task, list(svc.capabilities()))
        except TaskError as exc:
            stale = f"malformed ({exc})"
        if stale is None:
            return True
        svc._decide(Decision.CLAIM_ABANDONED, self.task, reason=stale)
        svc.not_before[self.task.key] = svc.clock() + self.s.retry_after_failure
        return False

    async def mark(self, held: Held) -> bool:
        """The issue says who runs it: assignee, ``bzzz:claimed``, one claim comment."""
        task, svc, s = self.task, self.svc, self.s
        # it runs: no longer waiting (the PATCH below replaces the labels from this read)
        self.fresh["labels"] = [x for x in self.fresh.get("labels") or [] if not (
            isinstance(x, dict) and x.get("name") in (STATE_LABELS["needs-approval"],
                                                      STATE_LABELS["waiting"]))]
        self.key, self.generation = f"{s.node_id}:{held.claim.generation}", held.claim.generation
        svc._decide(Decision.TAKEN_OVER if held.taken_over else Decision.CLAIMED, task,
                    generation=held.claim.generation, lease_expires=held.claim.lease_expires,
                    claim=held.sha, title=task.title[:200])
        named = self.lock.names_holder  # the lock's own comment says it all
        if not await svc.reporter.durably(self.run, "mark", lambda: self.ops.mark_claimed(
                task.number, self.fresh, None if named else s.login, STATE_LABELS["claimed"])):
            return False
        if not named and not await svc.reporter.durably(self.run, "claim comment", lambda: (
                self.ops.comment_once(task.number,
                                      report.claim_comment(s.node_id, s.peer_id, self.key)))):
            return False
        if self.run.handed_from:
            svc._decide(Decision.HELP_ADOPTED, task, origin=self.run.handed_from)
        return True

    async def choose_executor(self) -> bool:
        """The spec's executor (well-formed: still_eligible refused a malformed one); no
        block: the whole issue goes to a coding agent, where this node has one."""
        task, svc, spec = self.task, self.svc, self.task.spec
        self.executor = svc.executors.get(spec.executor if spec is not None else "agent")
        if self.executor is not None:
            return True
        if spec is not None:
            svc._decide(Decision.CLAIM_ABANDONED, task, reason=f"no {spec.executor} executor here")
        else:
            svc._decide(Decision.NEEDS_INPUT, task)
            await svc.reporter.comment_and_label(
                self.run, task, report.no_command_comment(self.key, self.s.node_id),
                STATE_LABELS["needs-input"])
        svc.not_before[task.key] = svc.clock() + self.s.retry_after_failure
        return False

    # -------------------------------------------------------------- preparing

    async def prepare(self) -> bool:
        """The checkout (a fresh branch, or the pull request's of an earlier round)."""
        svc, task, dirs = self.svc, self.task, self.workdirs
        if svc.work is None:
            return True
        self.comments = await self.ops.comments(task.number)
        trusted = await svc.perms.writers(task.repo, marker_authors(self.comments))
        self.prior = prior_pull(self.comments, task.number, trusted.__contains__)
        try:
            self.co = await svc.work.prepare(task, task.spec, dirs.workspace, dirs.private,
                                             self.prior)
        except RepoError as exc:
            why = str(exc)
            svc._decide(Decision.CHECKOUT_FAILED, task, error=why)
            await svc.reporter.comment_and_label(
                self.run, task, report.setup_failed_comment(self.key, self.s.node_id, why),
                STATE_LABELS["failed"])
            return False
        if self.co is not None and svc._nursery is not None:
            svc._nursery.start_soon(svc.work.refill, task.repo)
        return True

    async def inputs(self) -> Job:
        """The feedback so far, the task's directories and environment: its Job."""
        task, dirs, spec = self.task, self.workdirs, self.task.spec
        feedback = await self.feedback() if self.svc.work else ""
        _fresh_dir(dirs.in_dir, None)
        _fresh_dir(dirs.out_dir, self.s.sandbox_owner)
        feedback_file = dirs.in_dir / "feedback.md"
        feedback_file.write_text(feedback)
        os.chmod(feedback_file, 0o644)
        env = {"BZZZ_REPO": task.repo, "BZZZ_ISSUE": str(task.number),
               "BZZZ_TITLE": _printable(task.title), "BZZZ_OUTPUT": str(dirs.out_dir.resolve()),
               "BZZZ_FEEDBACK": str(feedback_file.resolve())}
        if self.co is not None:
            env["BZZZ_BRANCH"] = self.co.branch
        self.files = await self.repo_files(feedback)
        said = self.files.instructions if self.files is not None else ""
        if said:
            path = dirs.in_dir / "repo-instructions.md"
            path.write_text(said)
            os.chmod(path, 0o644)
            env["BZZZ_REPO_INSTRUCTIONS"] = str(path.resolve())
        return Job(task_id=task.key, repo=task.repo, issue=task.number, title=task.title,
                   body=task.body, executor=self.chosen.name,
                   options=dict(spec.options) if spec else {},
                   code=spec.code if spec else None, workspace=dirs.workspace,
                   output_dir=dirs.out_dir, feedback=feedback, feedback_file=feedback_file,
                   env=env, read_only=[dirs.in_dir] + ([self.co.mirror] if self.co else []),
                   timeout=task_timeout(spec, self.s.exec_timeout),
                   progress=lambda line: setattr(self.run, "progress", line[-PROGRESS_MAX:]),
                   needs=task.needs, repo_instructions=said)

    async def repo_files(self, feedback: str) -> RepoFiles | None:
        """The base branch's instructions, setup and settings for this task (None: no
        checkout, or its base branch is gone: nothing is read from a pull request's head)."""
        work, co, task = self.svc.work, self.co, self.task
        if work is None or co is None:
            return None
        base = work.base_of(task, task.spec, self.prior)
        commit = co.start if self.prior is None else await work.mirrors.resolve(
            co.mirror, f"refs/heads/{base}")
        if commit is None:
            return None
        box = self.s.sandbox.kind if self.s.sandbox is not None else "none"
        return await read_repo_files(
            work.git, co, base, commit, [task.title, task.body, task.spec.code if task.spec
                                         else "", feedback],
            files_option=task.spec.options.get("files", "") if task.spec else "", sandbox=box)

    async def feedback(self) -> str:
        """``$BZZZ_FEEDBACK``: writers' ``/bzzz`` comments on the issue, and on its pull
        request every writer's comment, review and review comment, oldest first."""
        task, ops, perms = self.task, self.ops, self.svc.perms
        items: list[tuple[str, str, str, str]] = []  # (time, who, where, text)
        asked = False
        for c in self.comments:
            body, who = c.get("body") or "", (c.get("user") or {}).get("login", "?")
            marks = find_markers(body)
            if any(kind == "question" for kind, _ in marks):
                asked = True
                text = body.split("\n", 1)[1] if "\n" in body else body
                items.append((c.get("created_at") or "", who, "(the task) asked", text))
            elif not marks and (asked or parse_command(body) is not None):
                # a plain reply after a question answers it
                items.append((c.get("created_at") or "", who, "on the issue", body))
        if self.prior is not None:
            n = self.prior.number
            for c in await ops.comments(n):
                body, who = c.get("body") or "", (c.get("user") or {}).get("login", "?")
                if not find_markers(body):
                    items.append((c.get("created_at") or "", who, "on the pull request", body))
                elif (failed := ci_feedback(body)) is not None:  # a CI round's (ciround.py)
                    items.append((c.get("created_at") or "", who, "from CI", failed))
            for r in await ops.pull_list(n, "reviews"):
                if (r.get("body") or "").strip() or r.get("state") == "CHANGES_REQUESTED":
                    state = (r.get("state") or "").lower().replace("_", " ")
                    items.append((r.get("submitted_at") or "", (r.get("user") or {}).get("login", "?"),
                                  f"in a review ({state})", r.get("body") or ""))
            for c in await ops.pull_list(n, "comments"):
                where = f"on {c.get('path', '?')} line {c.get('line') or c.get('original_line') or '?'}"
                items.append((c.get("created_at") or "", (c.get("user") or {}).get("login", "?"),
                              where, c.get("body") or ""))
        writers = await perms.writers(task.repo, {who for _, who, _, _ in items})
        kept = sorted((i for i in items if i[1] in writers), key=lambda i: i[0])
        return "".join(f"## {when} @{who} {where}\n\n{text.strip()}\n\n"
                       for when, who, where, text in kept)

    # -------------------------------------------------------------- running

    async def execute(self, job: Job) -> None:
        """Run the job under a cancel scope (a cancel command, a closed issue or a lost
        lease stop it), a long quiet one with a progress comment beside it."""
        run, executor, svc = self.run, self.chosen, self.svc
        run.move(Phase.RUNNING)
        svc._decide(Decision.RUNNING, self.task, executor=executor.name, generation=self.generation)
        route: Route | None = None
        async with trio.open_nursery() as watchers:
            if executor.name in PROGRESS_EXECUTORS and self.s.progress_interval > 0:
                watchers.start_soon(self.show_progress)
            with trio.CancelScope() as scope:
                run.scope = scope
                with trio.CancelScope() as budget:
                    async with self.way_out(job, budget.cancel) as route:
                        self.outcome = await self.setup(job)  # an outcome: it stops the task
                        if self.outcome is None:
                            self.outcome = await self.checked(job, await executor.run(job))
                if budget.cancelled_caught and route is not None and route.exceeded:
                    self.outcome = Outcome(Result(
                        "failed", output=f"[bzzz] stopped: {route.exceeded}"),
                        reason="budget spent")
            watchers.cancel_scope.cancel()
        run.scope = None
        if self.outcome is not None and self.setup_doc is not None:
            self.outcome.result.extra["setup"] = self.setup_doc
        if self.outcome is not None and self.check_doc is not None:
            self.outcome.result.extra["check"] = self.check_doc
        if route is not None:
            self.account(route)
        result = self.outcome.result if self.outcome is not None else None
        if result is not None and result.extra.get("executor") == "llm":
            svc._decide(Decision.LLM_ANSWER, self.task, model=result.extra.get("model"),
                        tokens=result.extra.get("tokens"), status=result.status,
                        first_token_at=result.extra.get("first_token_at"))

    async def setup(self, job: Job) -> Outcome | None:
        """The repository's setup (bzzz/claim/setup.py), in the task's sandbox and route;
        an Outcome when it failed and the repository requires it (the executor then does
        not run), else None."""
        files, co, work, s = self.files, self.co, self.svc.work, self.s
        if files is None or files.setup.empty or co is None or work is None:
            return None
        self.run.progress = "running the repository's setup"
        done = await run_setup(files.setup, files.setup_key, job, s.sandbox, user=s.user,
                               git=work.git, co=co, cache=s.setup_cache, owner=s.sandbox_owner,
                               required=files.settings.setup_required, timeout=s.setup_timeout)
        self.setup_doc = doc = done.doc()
        if s.setup_cache is not None and done.cache.startswith(("restored", "saved")) and \
                self.svc._nursery is not None:  # the next task's copy, written meanwhile
            self.svc._nursery.start_soon(refill, s.setup_cache, files.setup_key, s.sandbox_owner)
        self.svc._decide(Decision.SETUP, self.task, **{
            k: v for k, v in doc.items() if k != "failed_output"})
        if done.failed and done.required:
            return Outcome(Result("failed", duration=done.seconds, output=(
                "[bzzz] the repository's setup failed and its .bzzz.toml requires it "
                f"([setup] required = true): the task did not run\n{doc['failed_output']}")),
                reason="setup failed")
        return None

    async def checked(self, job: Job, outcome: Outcome) -> Outcome:
        """The repository's own check after an executor that succeeded
        (bzzz/claim/selfcheck.py): a failure goes back to the executor once."""
        files, s = self.files, self.s
        if files is None or files.check is None or outcome.result.status != "succeeded":
            return outcome
        self.run.progress = "running the repository's check"
        outcome, done = await self_check(files.check, job, outcome, s.sandbox, user=s.user,
                                         executor=self.chosen.name, again=self.chosen.run,
                                         timeout=s.test_timeout)
        self.check_doc = doc = done.doc()
        self.svc._decide(Decision.SELF_CHECK, self.task, **{
            k: v for k, v in doc.items() if k != "output"})
        return outcome

    @asynccontextmanager
    async def way_out(self, job: Job, stop: Callable[[], None]
                      ) -> AsyncIterator[Route | None]:
        """The task's route through the node's gateway while it runs (None: no gateway).
        What it may reach: the node's task_egress, plus what the repository's REPO_FILE (on
        its base branch: bzzz/claim/repofiles.py) asks for within task_egress_max."""
        gateway = self.s.gateway
        if gateway is None:
            yield None
            return
        asked: list[str] = []
        text = self.files.settings_text if self.files is not None else None
        try:  # the base branch's, never the checkout's (a pull request's head may be there)
            asked = repo_entries(text) if text else []
        except EgressError as exc:
            log.warning("the repository's egress settings are not used", extra={
                "task": job.task_id, "error": str(exc)})
        allow = Allowlist.build(self.s.egress, asked, self.s.egress_max)
        async with gateway.route(job.task_id, allow, repo=job.repo,
                                 on_exceeded=lambda _why: stop()) as route:
            job.meter = route.meter  # the llm executor's own calls count here too
            yield route

    def account(self, route: Route) -> None:
        """What the task sent where, and what the gateway refused: on the result (for its
        comment) and in the log as one decision."""
        doc = route.egress.doc()
        doc["beyond_ceiling"] = list(route.allow.beyond_ceiling)
        if self.outcome is not None:
            result = self.outcome.result
            result.extra["egress"] = doc
            failure = route.egress.model_failure
            if failure and result.status == "succeeded":
                # the CLI may exit 0 after its model refused it: nothing it left is work
                result.status, self.outcome.reason = "failed", failure
                result.output = (result.output + f"\n[bzzz] {failure}").lstrip("\n")
        self.svc._decide(Decision.EGRESS, self.task, hosts=sorted(doc["hosts"]),
                         requests=sum(h["requests"] for h in doc["hosts"].values()),
                         bytes_out=doc["bytes_out"], bytes_in=doc["bytes_in"],
                         refused=sorted(doc["refused"])[:50],
                         refused_total=doc["refused_total"], models=doc["models"],
                         model_failure=doc["model_failure"],
                         budget_exceeded=doc["budget_exceeded"], spent=route.spend.doc())

    @property
    def status(self) -> Status | None:
        """How the executor ended (None: it was stopped before it did)."""
        return Status(self.outcome.result.status) if self.outcome is not None else None

    # -------------------------------------------------------------- asking for help

    async def ask_for_help(self) -> bool:
        """A failure here may be a success elsewhere: ask the mesh (True: handed over). A
        task that asked a person a question is not handed on."""
        svc, outcome, status = self.svc, self.outcome, self.status
        if outcome is None or status not in HELPABLE or svc.helper is None or \
                self.run.held is None or \
                read_handed_back(self.workdirs.out_dir, "question.md", 16) is not None:
            return False
        self.run.move(Phase.ASKING_FOR_HELP)
        return await svc.handoff.seek(self.run, self.task, self.key,
                                      outcome.reason or status.value, extra_needs=outcome.missing)

    # -------------------------------------------------------------- reporting

    async def report(self) -> None:
        """Cancelled, a question, a result, or a result with its work delivered."""
        svc, task, run, key, status = self.svc, self.task, self.run, self.key, self.status
        if self.outcome is None:
            await svc.reporter.cancelled(task, run, key)
            return
        result = self.outcome.result
        question = (read_handed_back(self.workdirs.out_dir, "question.md", MAX_QUESTION)
                    if status is not Status.REFUSED else None)
        if question is not None and question.strip():
            await svc.reporter.asked(run, task, key, question)
        elif status is Status.REFUSED or svc.work is None:
            await svc.reporter.result(task, run, key, result)
        else:
            await svc.reporter.delivered(run, task, key, result, self.co, self.prior,
                                         self.workdirs.out_dir, self.comments, self.fresh)

    async def clean_up(self) -> None:
        if self.s.keep_workspaces:
            return
        d = self.workdirs
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(remove, self.co, d.workspace, d.out_dir, d.in_dir,
                                          d.private)

    # -------------------------------------------------------------- beside the phases

    async def keep_lease(self) -> None:
        """Renew the lease while the claim is held; a lost lease stops the task."""
        run, svc = self.run, self.svc
        while True:
            assert run.held is not None
            wait = run.held.claim.lease_expires - self.s.lease * 2 / 3 - svc.clock()
            await trio.sleep(max(0.05, wait))
            if not renewal_due(run.held.claim, svc.clock(), self.s.lease):
                continue
            try:
                async with run.ref_lock:
                    if run.held is None:
                        return
                    outcome = await self.lock.renew(run.held)
            except (GitHubError, Unavailable) as exc:
                log.warning("lease renewal failed; will retry", extra={"error": str(exc)})
                await trio.sleep(min(5.0, self.s.lease / 10))
                continue
            if isinstance(outcome, Lost):
                svc._decide(Decision.LEASE_LOST, run.task,
                            holder_node=outcome.holder.node if outcome.holder else None)
                run.stop_reason, run.held = StopReason(Stop.LEASE_LOST), None
                if run.scope is not None:
                    run.scope.cancel()
                return
            run.held = outcome
            svc._decide(Decision.RENEWED, run.task, generation=outcome.claim.generation)

    async def show_progress(self) -> None:
        """A long LLM or agent run keeps one comment up to date (at most every
        ``progress_interval`` seconds): how long it has run and what it did (an agent's
        steps as a checklist, bzzz/exec/agents/checklist.py; else its last lines), and the
        log gets the same lines as a ``progress`` decision when they changed (bounded: the
        Visualizer's task page shows the latest). When the run ends, a comment already
        posted is edited once more to its final state; a short run posts none, since its
        result comment follows at once with the whole transcript."""
        shown = _Shown(self.svc.clock())
        try:
            while True:
                await trio.sleep(self.s.progress_interval)
                await self._progress_once(shown, final=False)
        finally:
            if shown.comment_id is not None or shown.logged:
                with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_GRACE):
                    await self._progress_once(shown, final=True)

    async def _progress_once(self, shown: _Shown, *, final: bool) -> None:
        svc, task = self.svc, self.run.task
        text = self.run.progress.strip()
        steps = checklist_markdown(text.splitlines(), final=final) \
            if self.executor is not None and self.executor.name == "agent" else ""
        elapsed = svc.clock() - shown.started
        if text != shown.logged:
            shown.logged = text
            svc._decide(Decision.PROGRESS, task, generation=self.generation,
                        elapsed=round(elapsed, 1), final=final,
                        lines=[ln[:PROGRESS_LINE] for ln in text.splitlines()[-PROGRESS_LINES:]])
        body = report.progress_comment(self.key, self.s.node_id, elapsed,
                                       "\n".join(text.splitlines()[-12:]), checklist=steps,
                                       final=final)
        try:
            if shown.comment_id is None:
                if final:
                    return
                await self.ops.comment_once(task.number, body)
                shown.comment_id = await self.ops.comment_id(task.number, body)
            else:
                await svc.gh.request("PATCH", f"/repos/{task.repo}/issues/comments/"
                                     f"{shown.comment_id}", json={"body": body.body})
        except (GitHubError, Unavailable) as exc:  # progress is a courtesy
            log.info("progress not shown", extra={"task": task.key, "error": str(exc)})


@dataclass
class _Shown:
    """What show_progress has shown so far."""

    started: float
    comment_id: int | None = None
    logged: str = ""  # the progress text last written to the log


def _fresh_dir(path: Path, owner: tuple[int, int] | None) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.chmod(path, 0o755)
    if owner is not None:
        os.chown(path, *owner)


def _printable(text: str) -> str:
    """Text a process can be given (GitHub's JSON may carry lone surrogates or NULs)."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")[:1000]
