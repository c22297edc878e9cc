"""The claim-and-run service: poll, choose, claim, run, report, release.

One loop polls every repository (conditional requests), cancels running tasks whose issue
left the open ``bzzz`` list (closed, or label removed), and starts an attempt for each task
the ranking picks. An attempt claims the lock, marks the issue (assignee, ``bzzz:claimed``,
one comment), runs the command under a cancel scope while a sibling task renews the lease,
reports the result (one comment, ``bzzz:done`` or ``bzzz:failed``), and releases the lock.
Every decision goes to the decision log. A GitHub outage pauses polling; running tasks keep
running and report when GitHub answers again.

The service keeps the loop and what the attempts share; the parts are their own modules:
one attempt phase by phase (attempt.py), telling GitHub how it ended (reporting.py),
writers' comment commands (commands.py), hand-off to a helper and adoption (handoff.py),
and the locks behind one protocol (locks.py).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ..kinds import Decision
from ..decisions import DecisionLog
from ..exec.executor import Executor, ShellExecutor
from ..exec.guardian import Policy
from ..exec.sandbox import Sandbox
from ..exec.agents.sessions import SessionStore
from ..repo.setupcache import SetupCache
from ..exec.shell import RunAs
from ..gateway.proxy import Gateway
from ..github.checks import CI_SETTLE
from ..github.client import GitHubClient, GitHubError, RateLimited, Unavailable
from ..github.issues import IssueOps
from ..github.pulls import PullInfo, PullWatch
from ..p2p.capabilities import PeerView
from . import report
from .attempt import Attempt, Phase, Running, Stop, StopReason
from .ciround import CI_ROUNDS, CI_WAIT
from .ciwatch import CiWatch
from .commands import Commands
from .delivery import RepoWork
from .feed import TaskFeed
from .handoff import Handoff
from .intake import CommentIntake, Permissions
from .locks import TaskLock, make_lock
from .reporting import Reporter
from .task import FINISHED, STATE_LABELS, Task, choose, label_names
from .trust import (Approval, approval_state, comment_views, inherited_from, task_digest,
                    voices)
from .waiting import NOTICE_AFTER, due, speaker, unmet, waiting_comment

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from ..help.service import HelpService

log = logging.getLogger("bzzz.claim")


@dataclass
class ClaimSettings:
    repos: list[str]
    node_id: str
    peer_id: str
    login: str
    max_tasks: int = 1
    poll_interval: float = 5.0
    lease: float = 60.0
    grace: float = 5.0
    exec_timeout: float = 600.0
    close_on_success: bool = False
    policy: Policy | None = None
    workroot: Path = Path("./data/work")
    user: RunAs | None = None  # who tasks run as (None: the agent's own user)
    sandbox: Sandbox | None = None  # where tasks run (None: unconfined, as NoSandbox(user))
    defer_window: float = 10.0
    retry_after_failure: float = 30.0
    report_retry_max: float = 30.0  # longest wait between report attempts during an outage
    claim_mode: str = "ref"  # "ref" (the git-ref lock) or "assign" (weaker, see assignlock.py)
    settle: float = 2.0  # assign mode: seconds to wait for concurrent assignments to show
    max_help: int = 3  # help requests per task, across the mesh, before a human takes over
    help_wait: float = 3.0  # seconds the origin waits for offers
    help_retry: float = 2.0  # pause between unanswered help requests
    trust_ttl: float = 60.0  # seconds a permission answer is cached
    intake_state: Path | None = None  # where the comment intake keeps its cursor and ids
    sandbox_owner: tuple[int, int] | None = None  # (uid, gid) that must own a task's files
    keep_workspaces: bool = False  # leave each attempt's directories behind (debugging, tests)
    input_timeout: float = 72 * 3600.0  # a question unanswered this long fails the task
    progress_interval: float = 30.0  # seconds between updates of a long run's progress comment
    waiting_notice: float = NOTICE_AFTER  # a task nobody can take says so after this (0: off)
    ci_rounds: int = CI_ROUNDS  # CI rounds on a pull request before a person is asked
    ci_wait: float = CI_WAIT
    ci_settle: float = CI_SETTLE
    gateway: Gateway | None = None  # task_network = "gateway": each task's only way out
    egress: list[str] = field(default_factory=list)  # task_egress
    egress_max: list[str] = field(default_factory=list)  # task_egress_max
    setup_timeout: float = 900.0  # seconds for all of a repository's setup steps together
    setup_cache: SetupCache | None = None  # where setups' results are kept (None: nowhere)
    test_timeout: float = 600.0  # seconds for one run of a repository's own check
    # the coding-agent CLIs' sessions kept between a task's rounds (None: none kept)
    agent_sessions: SessionStore | None = None


class ClaimService:
    def __init__(self, gh: GitHubClient, settings: ClaimSettings, decisions: DecisionLog, *,
                 capabilities: Callable[[], Sequence[str]] = lambda: [],
                 peers: Callable[[], Sequence[PeerView]] = lambda: [],
                 on_load: Callable[[int], None] = lambda n: None,
                 helper: HelpService | None = None, clock: Callable[[], float] = time.time,
                 work: RepoWork | None = None,
                 executors: dict[str, Executor] | None = None) -> None:
        self.gh = gh
        self.work = work  # repository work (checkouts, pull requests); None: empty workspaces
        self.executors: dict[str, Executor] = {
            "shell": ShellExecutor("shell", settings.sandbox, settings.policy, settings.user),
            **({"container": ShellExecutor("container", settings.sandbox, settings.policy,
                                           settings.user)}
               if settings.sandbox is not None and settings.sandbox.kind == "container" else {}),
            **(executors or {})}
        self.s = settings
        self.decisions = decisions
        self.capabilities = capabilities
        self.peers = peers
        self.on_load = on_load
        self.helper = helper  # bzzz.help.service.HelpService, or None (help off)
        self.handoff = Handoff(self)
        self.ci = CiWatch(self)
        self.reporter = Reporter(self)
        if helper is not None:
            helper.on_handoff = self.handoff.adopt
        self.clock = clock
        self.feed = TaskFeed(gh, settings.repos)
        self.locks: dict[str, TaskLock] = {
            r: make_lock(settings.claim_mode, gh, r, settings.node_id, settings.peer_id,
                         settings.login, lease=settings.lease, grace=settings.grace,
                         settle=settings.settle, clock=clock) for r in settings.repos}
        self.ops = {r: IssueOps(gh, r) for r in settings.repos}
        self.perms = Permissions(gh, ttl=settings.trust_ttl)
        self.commands = Commands(self)
        self.intake = CommentIntake(
            gh, self.perms,
            {r: lock.command_lock() for r, lock in self.locks.items()},
            self.commands.on_command, state_file=settings.intake_state, route=self._route,
            waiting=lambda repo, n: (t := self.feed.repos[repo].tasks.get(n)) is not None
            and STATE_LABELS["needs-input"] in t.labels)
        self.pulls = PullWatch(gh, settings.repos, settings.login) if work is not None else None
        self.announced: dict[str, str] = {}  # task key -> task digest we saw announced
        self.running: dict[str, Running] = {}
        self.not_before: dict[str, float] = {}  # task key -> when to look at it again
        self.first_seen: dict[str, float] = {}
        self.waiting_said: set[str] = set()  # notices this node made or found (waiting.py)
        # the latest finished attempts (bounded: a daemon runs for months) and all, by status
        self.completed: deque[dict[str, Any]] = deque(maxlen=1000)
        self.finished: Counter[str] = Counter()
        self.paused_until = 0.0
        self.taking = True  # False once the agent is stopping: no new claim, no hand-off
        self.report_retries = 0
        self.github_ok = True
        self.wake = trio.Event()
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------------ bookkeeping

    def _finished(self, entry: dict[str, Any]) -> None:
        self.completed.append(entry)
        self.finished[entry.get("status") or "?"] += 1

    def _decide(self, kind: Decision, task: Task | None = None, **fields: Any) -> None:
        entry: dict[str, Any] = {"type": kind, "node": self.s.node_id, **fields}
        if task is not None:
            entry.update(repo=task.repo, issue=task.number)
        self.decisions.append(entry)

    def on_webhook(self, event: str, repo: str, payload: dict[str, Any]) -> None:
        """A verified delivery for one of our repositories: poll now instead of waiting."""
        ours = {r.lower(): r for r in self.s.repos}.get(repo.lower())
        if ours is not None:
            self.intake.on_webhook(event, ours, payload)
            self.wake.set()

    def status(self) -> list[dict[str, Any]]:
        return [{"repo": r.task.repo, "issue": r.task.number, "state": r.state,
                 "since": round(r.since, 3), **({"progress": r.progress} if r.progress else {})}
                for r in self.running.values()]

    # ------------------------------------------------------------------ the loop

    async def run(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.intake.run)
            task_status.started()
            while True:
                # fixed-rate polling: the interval runs from the start of each tick
                next_at = trio.current_time() + self.s.poll_interval
                await self.tick()
                with trio.move_on_at(next_at):
                    await self.wake.wait()
                self.wake = trio.Event()

    async def tick(self) -> None:
        now = self.clock()
        if now < self.paused_until:
            return
        polled: set[str] = set()
        for repo in self.s.repos:
            try:
                await self.feed.poll(repo)
                polled.add(repo)
                if self.pulls is not None:
                    await self._watch_pulls(repo)  # first: comments may be on a new PR
                await self.intake.poll(repo)
                await self._check_waiting(repo)
                if not self.github_ok:
                    self.github_ok = True
                    self._decide(Decision.GITHUB_RECOVERED)
            except RateLimited as exc:
                self.paused_until = exc.reset
                self._decide(Decision.RATE_LIMITED, resume_at=exc.reset)
                log.warning("GitHub rate limit exhausted; polling paused",
                            extra={"resume_at": exc.reset})
                return
            except (Unavailable, GitHubError) as exc:
                if self.github_ok:
                    self._decide(Decision.GITHUB_UNAVAILABLE, repo=repo, error=str(exc))
                self.github_ok = False
                log.warning("polling failed", extra={"repo": repo, "error": str(exc)})
        self._cancel_vanished(polled)
        self._schedule()
        await self._say_waiting()

    async def _route(self, repo: str, number: int) -> int | None:
        """The task a command on ``number`` is about: the issue itself, or the issue whose
        pull request it is (a pull request opened since the last list read is looked up)."""
        if number in self.feed.repos[repo].tasks:
            return number
        if self.pulls is None:
            return None
        issue = self.pulls.issue_of(repo, number)
        if issue is None:
            issue = await self.pulls.lookup(repo, number)
        return issue

    async def _watch_pulls(self, repo: str) -> None:
        assert self.pulls is not None and self._nursery is not None
        closed, _ = await self.pulls.poll(repo)
        for info in closed:
            self._nursery.start_soon(self._pull_closed, info)
        for task in list(self.feed.repos[repo].tasks.values()):
            if STATE_LABELS["review"] not in task.labels:
                continue
            pr = self.pulls.of_issue(repo, task.number)
            if pr is None or pr.state != "open":
                continue
            # every poll (conditional: a 304 is free). updated_at has one-second resolution,
            # so "the pull request moved" cannot tell a review from the push just before it
            for review in await self.pulls.new_reviews(repo, pr.number):
                await self.intake.take_review(repo, pr.number, review)
            await self.ci.check(task, pr)

    async def _pull_closed(self, info: PullInfo) -> None:
        """A pull request of ours closed. Merged: GitHub closed the issue (``Fixes #n``);
        it is labelled done. Closed unmerged: the users said no; the task ends. Either way
        the CLIs' sessions this node kept for it go."""
        if self.s.agent_sessions is not None:
            await trio.to_thread.run_sync(self.s.agent_sessions.forget, info.repo, info.issue)
        ops = self.ops[info.repo]
        try:
            doc = await ops.get(info.issue)
            labels = label_names(doc)
            if STATE_LABELS["review"] not in labels:
                return  # acted on already (or another round runs)
            keep = sorted(labels - FINISHED - {STATE_LABELS["claimed"]})
            if info.merged:
                await ops.set_labels(info.issue, keep + [STATE_LABELS["done"]])
                self._decide(Decision.MERGED, repo=info.repo, issue=info.issue, pr=info.number)
                return
            lock = self.intake.locks[info.repo]
            if not await lock.take(f"closed-{info.number}"):
                return
            await ops.comment_once(info.issue, report.pr_closed_comment(info.number,
                                                                        self.s.node_id))
            await ops.set_labels(info.issue, keep + [STATE_LABELS["failed"]])
            if doc.get("state") == "open":
                await self.gh.request("PATCH", f"/repos/{info.repo}/issues/{info.issue}",
                                      json={"state": "closed", "state_reason": "not_planned"})
            self._decide(Decision.PULL_CLOSED, repo=info.repo, issue=info.issue, pr=info.number)
        except (GitHubError, Unavailable) as exc:
            log.warning("could not record a closed pull request",
                        extra={"repo": info.repo, "pr": info.number, "error": str(exc)})

    def _cancel_vanished(self, polled: set[str]) -> None:
        """A running task missing from a poll may only have moved between pages while we
        read them (they are sorted by update time): confirm with a direct read first."""
        for run in list(self.running.values()):
            if run.task.repo in polled and run.task.number not in self.feed.repos[run.task.repo].tasks:
                if run.scope is not None and run.stop_reason is None and not run.verifying:
                    run.verifying = True
                    assert self._nursery is not None
                    self._nursery.start_soon(self._confirm_vanished, run)

    async def _confirm_vanished(self, run: Running) -> None:
        try:
            doc = await self.ops[run.task.repo].get(run.task.number)
        except (GitHubError, Unavailable):
            return  # cannot tell: keep running; the next poll asks again
        finally:
            run.verifying = False
        labels = label_names(doc)
        if doc.get("state") != "open" or "bzzz" not in labels:
            if run.scope is not None and run.stop_reason is None:
                run.stop_reason = StopReason(Stop.ISSUE_CLOSED if doc.get("state") != "open"
                                             else Stop.UNLABELLED)
                run.scope.cancel()

    def _forget_old(self, now: float, seen: set[str]) -> None:
        """Waits that have passed, and first sightings of tasks the feed no longer lists
        (closed, relabelled): what a daemon keeps per task must not grow for ever."""
        if len(self.not_before) > 256:
            for key in [k for k, t in self.not_before.items() if t <= now]:
                del self.not_before[key]
        if len(self.first_seen) > 2 * max(128, len(seen)):
            for key in [k for k in self.first_seen if k not in seen]:
                del self.first_seen[key]

    def stop_taking(self) -> None:
        """The agent is stopping: claim nothing more and adopt no hand-off (what runs is
        cancelled with the service, reported and released as ever)."""
        self.taking = False

    def _schedule(self) -> None:
        if not self.taking:
            return
        now = self.clock()
        candidates = []
        listed = self.feed.all_tasks()
        self._forget_old(now, {t.key for t in listed})
        for task in listed:
            self.first_seen.setdefault(task.key, now)
            if task.key in self.running or now < self.not_before.get(task.key, 0):
                continue
            if STATE_LABELS["needs-approval"] in task.labels and \
                    self.announced.get(task.key) == task_digest(task.title, task.body):
                continue  # waits for a writer; an edit of the title or body is checked again
            candidates.append(task)
        choice = choose(candidates, list(self.capabilities()), len(self.running),
                        self.s.max_tasks, list(self.peers()), self.first_seen, now,
                        self.s.defer_window, self.s.node_id, me=self.s.peer_id)
        for task in choice.take:
            self.running[task.key] = Running(task, now)
            self.on_load(len(self.running))
            assert self._nursery is not None
            self._nursery.start_soon(self._attempt, task)

    async def _say_waiting(self, at_most: int = 5) -> None:
        """Tasks no live node can take: one comment for the whole mesh and the label
        (bzzz/claim/waiting.py); a few a tick, the rest on the next ones."""
        if not self.taking or not self.s.waiting_notice:
            return
        peers = list(self.peers())
        if not speaker(self.s.peer_id or self.s.node_id, peers):
            return
        now, mine = self.clock(), list(self.capabilities())
        for task in self.feed.all_tasks():
            if at_most <= 0:
                return
            if task.key in self.running or not due(self.first_seen.get(task.key, now), now,
                                                   self.s.waiting_notice):
                continue
            u = unmet(task, self.s.node_id, mine, peers)
            if u is None or u.key in self.waiting_said:
                continue
            at_most -= 1
            ops, note = self.ops[task.repo], waiting_comment(u)
            try:
                said = await ops.has_comment(task.number, note)
                if not said:
                    await ops.comment_once(task.number, note)
                if STATE_LABELS["waiting"] not in task.labels:
                    await ops.add_labels(task.number, [STATE_LABELS["waiting"]])
            except GitHubError as exc:  # Unavailable included: next tick
                log.warning("could not say a task is waiting", extra={
                    "task": task.key, "error": str(exc)})
                continue
            self.waiting_said.add(u.key)
            if not said:
                self._decide(Decision.WAITING, task, needs=list(u.needs),
                             missing=list(u.missing), nodes=len(u.offers))

    # ------------------------------------------------------------------ one attempt

    async def _attempt(self, task: Task,
                       body: Callable[[Task], Awaitable[None]] | None = None) -> None:
        try:
            await (body or self._claim_and_run)(task)
        except* GitHubError as group:  # Unavailable and RateLimited too; nurseries wrap them
            exc = _first_leaf(group)
            self._decide(Decision.ATTEMPT_FAILED, task, error=str(exc))
            self.not_before[task.key] = self.clock() + self.s.retry_after_failure
            log.warning("task attempt failed", extra={"task": task.key, "error": str(exc)})
        except* Exception as group:  # a bug met by one task must not stop the agent
            exc = _first_leaf(group)
            self._decide(Decision.ATTEMPT_CRASHED, task, error=f"{type(exc).__name__}: {exc}"[:500])
            self.not_before[task.key] = self.clock() + self.s.retry_after_failure * 4
            log.error("task attempt crashed", exc_info=exc, extra={"task": task.key})
        finally:
            run = self.running.pop(task.key, None)
            if run is not None and run.phase is not Phase.DONE:
                run.move(Phase.DONE)
            self.on_load(len(self.running))
            # our view of this task is stale until the next poll shows what became of it:
            # do not claim it again from that view (a failure may have set a later time)
            self.not_before[task.key] = max(self.not_before.get(task.key, 0.0),
                                            self.clock() + 2 * self.s.poll_interval)
            # a slot is free (or the claim was lost): take the next candidate the last poll
            # saw now, not at the next poll tick (a stale view costs at most a lost claim)
            if self._nursery is not None and not self._nursery.cancel_scope.cancel_called \
                    and not trio.current_effective_deadline() < trio.current_time() \
                    and self.clock() >= self.paused_until:
                self._schedule()

    async def _check_waiting(self, repo: str) -> None:
        """Questions nobody answered within ``input_timeout``: the task fails, once."""
        now = self.clock()
        for task in list(self.feed.repos[repo].tasks.values()):
            if STATE_LABELS["needs-input"] not in task.labels or task.key in self.running \
                    or now - task.updated_at < self.s.input_timeout:
                continue
            if self.not_before.get(f"timeout:{task.key}", 0) > now:
                continue
            self.not_before[f"timeout:{task.key}"] = now + max(60.0, self.s.poll_interval * 10)
            assert self._nursery is not None
            self._nursery.start_soon(self._input_timed_out, task)

    async def _input_timed_out(self, task: Task) -> None:
        ops = self.ops[task.repo]
        try:
            if not await self.intake.locks[task.repo].take(
                    f"input-timeout-{task.number}-{int(task.updated_at)}"):
                return
            hours = self.s.input_timeout / 3600
            await ops.comment_once(task.number, report.input_timeout_comment(
                f"{task.number}-{int(task.updated_at)}", self.s.node_id, hours))
            labels = sorted(task.labels - FINISHED - {STATE_LABELS["claimed"]}
                            | {STATE_LABELS["failed"]})
            await ops.set_labels(task.number, labels)
            self._decide(Decision.INPUT_TIMED_OUT, task)
        except (GitHubError, Unavailable) as exc:
            log.warning("could not end a task that waited too long",
                        extra={"task": task.key, "error": str(exc)})

    async def _claim_and_run(self, task: Task) -> None:
        await Attempt(self, self.running[task.key]).claim_and_run()

    # ------------------------------------------------------------------ trust and commands

    async def _own_trust(self, task: Task) -> bool:
        """Whether the task runs on its author's own write access: a writer's issue that
        inherits no approval (a follow-up of an approved outsider's task does)."""
        return inherited_from(task.body) is None and bool(task.author) \
            and await self.perms.writer(task.repo, task.author)

    async def _trusted(self, task: Task) -> bool:
        """The trust rule (trust.py): the author may push, or a writer approved this very
        title and body. Otherwise the issue waits, labelled, with one comment announcing its
        hash."""
        ops = self.ops[task.repo]
        if await self._own_trust(task):
            return True
        state = await self._approval(ops, task.number, task_digest(task.title, task.body))
        if state.approved:
            self._decide(Decision.APPROVED, task, digest=state.short, approvers=list(state.approvers))
            return True
        if not state.announced:
            await ops.comment_once(task.number, report.approval_comment(
                state.digest, task.author or "(unknown)", self.s.node_id,
                inherits=inherited_from(task.body)))
        if STATE_LABELS["needs-approval"] not in task.labels:
            await ops.add_labels(task.number, [STATE_LABELS["needs-approval"]])
        self.announced[task.key] = state.digest
        self._decide(Decision.AWAITING_APPROVAL, task, digest=state.short, author=task.author)
        return False

    async def _approval(self, ops: IssueOps, number: int, digest: str) -> Approval:
        """Whether the task of ``digest`` (trust.task_digest) is approved, from the issue's
        comments and their authors' access."""
        views = comment_views(await ops.comments(number))
        return approval_state(digest, views, await self.perms.writers(ops.repo, voices(views)))






def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
