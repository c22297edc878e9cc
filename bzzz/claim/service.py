"""The claim-and-run service: poll, choose, claim, run, report, release.

One loop polls every repository (conditional requests), cancels running tasks whose issue
left the open ``bzzz`` list (closed, or label removed), and starts an attempt for each task
the ranking picks. An attempt claims the lock, marks the issue (assignee, ``bzzz:claimed``,
one comment), runs the command under a cancel scope while a sibling task renews the lease,
reports the result (one comment, ``bzzz:done`` or ``bzzz:failed``), and releases the lock.
Every decision goes to the decision log. A GitHub outage pauses polling; running tasks keep
running and report when GitHub answers again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from ..decisions import DecisionLog
from ..exec.guardian import Policy
from ..exec.sandbox import Sandbox
from ..exec.executor import Executor, ShellExecutor
from ..exec.shell import RunAs
from . import report
from .report import find_markers, marker_authors
from .feed import TaskFeed
from .github import GitHubClient, GitHubError, RateLimited, Unavailable
from .assignlock import AssignLock
from .gitlock import ClaimLock, Lost
from .intake import CommentIntake, Permissions
from .attempt import (SHUTDOWN_GRACE, SHUTTING_DOWN, Attempt, Phase, Running, Status, Stop,
                      StopReason)
from .locks import HandoffLock, TaskLock
from .issues import IssueOps
from .pulls import PullInfo, PullWatch
from .task import (FINISHED, STATE_LABELS, PeerView, Task, TaskError, choose, label_names,
                   parse_issue)
from .trust import (Approval, Command, Verb, approval_state, comment_views, inherited_from,
                    parse_command, task_digest, voices)
from .delivery import (MAX_FOLLOW_UP_DEPTH, MAX_SUMMARY, DeliveryError, PullRef, RepoWork,
                       filed_digests, follow_up_depth, follow_up_markers, parse_follow_ups,
                       read_handed_back)

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


class ClaimService:
    def __init__(self, gh: GitHubClient, settings: ClaimSettings, decisions: DecisionLog, *,
                 capabilities: Callable[[], Sequence[str]] = lambda: [],
                 peers: Callable[[], Sequence[PeerView]] = lambda: [],
                 on_load: Callable[[int], None] = lambda n: None,
                 helper=None, clock: Callable[[], float] = time.time,
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
        if helper is not None:
            helper.on_handoff = self.adopt
        self.clock = clock
        self.feed = TaskFeed(gh, settings.repos)
        self.locks: dict[str, TaskLock] = {}
        for r in settings.repos:
            if settings.claim_mode == "assign":
                self.locks[r] = AssignLock(gh, r, settings.node_id, settings.peer_id,
                                           settings.login, lease=settings.lease,
                                           grace=settings.grace, settle=settings.settle,
                                           clock=clock)
            else:
                self.locks[r] = ClaimLock(gh, r, settings.node_id, settings.peer_id,
                                          settings.login, lease=settings.lease,
                                          grace=settings.grace, clock=clock)
        self.ops = {r: IssueOps(gh, r) for r in settings.repos}
        self.perms = Permissions(gh, ttl=settings.trust_ttl)
        self.intake = CommentIntake(
            gh, self.perms,
            {r: lock.command_lock() for r, lock in self.locks.items()},
            self.on_command, state_file=settings.intake_state, route=self._route,
            waiting=lambda repo, n: (t := self.feed.repos[repo].tasks.get(n)) is not None
            and STATE_LABELS["needs-input"] in t.labels)
        self.pulls = PullWatch(gh, settings.repos, settings.login) if work is not None else None
        self.announced: dict[str, str] = {}  # task key -> task digest we saw announced
        self.running: dict[str, Running] = {}
        self.not_before: dict[str, float] = {}  # task key -> when to look at it again
        self.first_seen: dict[str, float] = {}
        # the latest finished attempts (bounded: a daemon runs for months) and all, by status
        self.completed: deque[dict] = deque(maxlen=1000)
        self.finished: Counter = Counter()
        self.paused_until = 0.0
        self.report_retries = 0
        self.github_ok = True
        self.wake = trio.Event()
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------------ bookkeeping

    def _finished(self, entry: dict) -> None:
        self.completed.append(entry)
        self.finished[entry.get("status") or "?"] += 1

    def _decide(self, kind: str, task: Task | None = None, **fields) -> None:
        entry = {"type": kind, "node": self.s.node_id, **fields}
        if task is not None:
            entry.update(repo=task.repo, issue=task.number)
        self.decisions.append(entry)

    def on_webhook(self, event: str, repo: str, payload: dict) -> None:
        """A verified delivery for one of our repositories: poll now instead of waiting."""
        ours = {r.lower(): r for r in self.s.repos}.get(repo.lower())
        if ours is not None:
            self.intake.on_webhook(event, ours, payload)
            self.wake.set()

    def status(self) -> list[dict]:
        return [{"repo": r.task.repo, "issue": r.task.number, "state": r.state,
                 "since": round(r.since, 3), **({"progress": r.progress} if r.progress else {})}
                for r in self.running.values()]

    # ------------------------------------------------------------------ the loop

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
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
                    self._decide("github_recovered")
            except RateLimited as exc:
                self.paused_until = exc.reset
                self._decide("rate_limited", resume_at=exc.reset)
                log.warning("GitHub rate limit exhausted; polling paused",
                            extra={"resume_at": exc.reset})
                return
            except (Unavailable, GitHubError) as exc:
                if self.github_ok:
                    self._decide("github_unavailable", repo=repo, error=str(exc))
                self.github_ok = False
                log.warning("polling failed", extra={"repo": repo, "error": str(exc)})
        self._cancel_vanished(polled)
        self._schedule()

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
            info = self.pulls.of_issue(repo, task.number)
            if info is None or info.state != "open":
                continue
            # every poll (conditional: a 304 is free). updated_at has one-second resolution,
            # so "the pull request moved" cannot tell a review from the push just before it
            for review in await self.pulls.new_reviews(repo, info.number):
                await self.intake.take_review(repo, info.number, review)

    async def _pull_closed(self, info: PullInfo) -> None:
        """A pull request of ours closed. Merged: GitHub closed the issue (``Fixes #n``);
        it is labelled done. Closed unmerged: the users said no; the task ends."""
        ops = self.ops[info.repo]
        try:
            doc = await ops.get(info.issue)
            labels = label_names(doc)
            if STATE_LABELS["review"] not in labels:
                return  # acted on already (or another round runs)
            keep = sorted(labels - FINISHED - {STATE_LABELS["claimed"]})
            if info.merged:
                await ops.set_labels(info.issue, keep + [STATE_LABELS["done"]])
                self._decide("merged", repo=info.repo, issue=info.issue, pr=info.number)
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
            self._decide("pull_closed", repo=info.repo, issue=info.issue, pr=info.number)
        except (GitHubError, Unavailable) as exc:
            log.warning("could not record a closed pull request",
                        extra={"repo": info.repo, "pr": info.number, "error": str(exc)})

    def _cancel_vanished(self, polled: set[str]) -> None:
        """A running task missing from a poll may only have moved between pages while we
        read them (they are sorted by update time): confirm with a direct read first."""
        for key, run in list(self.running.items()):
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

    def _schedule(self) -> None:
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

    # ------------------------------------------------------------------ one attempt

    async def _attempt(self, task: Task, body=None) -> None:
        try:
            await (body or self._claim_and_run)(task)
        except* GitHubError as group:  # Unavailable and RateLimited too; nurseries wrap them
            exc = _first_leaf(group)
            self._decide("attempt_failed", task, error=str(exc))
            self.not_before[task.key] = self.clock() + self.s.retry_after_failure
            log.warning("task attempt failed", extra={"task": task.key, "error": str(exc)})
        except* Exception as group:  # a bug met by one task must not stop the agent
            exc = _first_leaf(group)
            self._decide("attempt_crashed", task, error=f"{type(exc).__name__}: {exc}"[:500])
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

    async def _ask(self, run: Running, task: Task, key: str, question: str) -> None:
        """The task asked a person: post the question, label ``bzzz:needs-input``, release
        the claim (the caller does). Waiting costs nothing; a writer's reply resumes it."""
        ops = self.ops[task.repo]
        self._decide("asked", task, question=question[:2000])
        comment = report.question_comment(key, self.s.node_id, question)
        if await self._durably(run, "question", lambda: ops.comment_once(task.number, comment)):
            await self._durably(run, "labels", lambda: self._finish_labels(
                task, STATE_LABELS["needs-input"]))
        self._finished({"task": task.key, "status": Status.ASKED.value, "node": self.s.node_id})

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
            self._decide("input_timed_out", task)
        except (GitHubError, Unavailable) as exc:
            log.warning("could not end a task that waited too long",
                        extra={"task": task.key, "error": str(exc)})

    async def _feedback(self, task: Task, comments: list[dict], prior: PullRef | None) -> str:
        """``$BZZZ_FEEDBACK``: writers' ``/bzzz`` comments on the issue, and on its pull
        request every writer's comment, review and review comment, oldest first."""
        ops = self.ops[task.repo]
        items: list[tuple[str, str, str, str]] = []  # (time, who, where, text)
        asked = False
        for c in comments:
            body, who = c.get("body") or "", (c.get("user") or {}).get("login", "?")
            marks = find_markers(body)
            if any(kind == "question" for kind, _ in marks):
                asked = True
                text = body.split("\n", 1)[1] if "\n" in body else body
                items.append((c.get("created_at") or "", who, "(the task) asked", text))
            elif not marks and (asked or parse_command(body) is not None):
                # a plain reply after a question answers it
                items.append((c.get("created_at") or "", who, "on the issue", body))
        if prior is not None:
            n = prior.number
            for c in await ops.comments(n):
                if not find_markers(c.get("body") or ""):
                    items.append((c.get("created_at") or "", (c.get("user") or {}).get("login", "?"),
                                  "on the pull request", c.get("body") or ""))
            for r in await ops.pull_list(n, "reviews"):
                if (r.get("body") or "").strip() or r.get("state") == "CHANGES_REQUESTED":
                    state = (r.get("state") or "").lower().replace("_", " ")
                    items.append((r.get("submitted_at") or "", (r.get("user") or {}).get("login", "?"),
                                  f"in a review ({state})", r.get("body") or ""))
            for c in await ops.pull_list(n, "comments"):
                where = f"on {c.get('path', '?')} line {c.get('line') or c.get('original_line') or '?'}"
                items.append((c.get("created_at") or "", (c.get("user") or {}).get("login", "?"),
                              where, c.get("body") or ""))
        writers = await self.perms.writers(task.repo, {who for _, who, _, _ in items})
        kept = sorted((i for i in items if i[1] in writers), key=lambda i: i[0])
        return "".join(f"## {when} @{who} {where}\n\n{text.strip()}\n\n"
                       for when, who, where, text in kept)

    async def _deliver_and_report(self, run: Running, task: Task, key: str, result, co,
                                  prior: PullRef | None, out_dir: Path, comments: list[dict],
                                  fresh: dict) -> None:
        assert self.work is not None
        ops = self.ops[task.repo]
        status = Status(result.status)
        summary = read_handed_back(out_dir, "summary.md", MAX_SUMMARY)
        delivered, error = None, None
        if co is not None:
            try:
                delivered = await self.work.deliver(
                    co, task, task.spec, key, summary or result.output[-3000:],
                    status is Status.SUCCEEDED, prior, fresh.get("html_url") or f"#{task.number}")
            except DeliveryError as exc:
                error = str(exc)
        filed, fu_error, filed_keys = await self._follow_ups(task, out_dir, comments)
        if error and status is Status.SUCCEEDED:
            status = Status.FAILED  # the work did not reach GitHub
        self._decide("result", task, status=status.value, exit_code=result.exit_code,
                     duration=result.duration, output_bytes=result.output_bytes,
                     output=result.output, commit=delivered.commit if delivered else None,
                     branch=delivered.branch if delivered else None,
                     pr=delivered.pr if delivered else None, delivery_error=error)
        comment = report.work_comment(
            key, self.s.node_id, status.value, result.duration, result.exit_code, result.output,
            result.truncated, summary=summary,
            pr=delivered.pr if delivered else None, pr_url=delivered.pr_url if delivered else None,
            branch=delivered.branch if delivered else None,
            base=self.work.base_of(task, task.spec, prior),
            files=len(delivered.files) if delivered else 0, new_round=prior is not None,
            delivery_error=error, follow_ups=[(i.title, n) for i, n in filed],
            follow_up_error=fu_error, filed_keys=filed_keys)
        if not await self._durably(run, "comment", lambda: ops.comment_once(task.number, comment)):
            return
        if delivered is not None and delivered.pr is not None and prior is not None:
            answer = report.round_comment(key, self.s.node_id, delivered.commit,
                                          len(delivered.files), summary)
            await self._durably(run, "round", lambda: ops.comment_once(delivered.pr, answer))
        if delivered is not None and delivered.pr is not None and status is Status.SUCCEEDED:
            label = STATE_LABELS["review"]
            self._decide("pull_request", task, pr=delivered.pr, branch=delivered.branch,
                         opened=delivered.opened, commit=delivered.commit)
        else:
            label = STATE_LABELS["done"] if status is Status.SUCCEEDED else STATE_LABELS["failed"]
        if not await self._help_exhausted(run, task, key, label):
            return
        if not await self._durably(run, "labels", lambda: self._finish_labels(task, label)):
            return
        if status is Status.SUCCEEDED and self.s.close_on_success and label != STATE_LABELS["review"]:
            await self._durably(run, "close", lambda: ops.close(task.number))
        self._decide("reported", task, status=status.value)
        self._finished({"task": task.key, "status": status.value, "node": self.s.node_id,
                               "duration": result.duration,
                               "pr": delivered.pr if delivered else None})

    async def _follow_ups(self, task: Task, out_dir: Path, comments: list[dict]
                          ) -> tuple[list, str | None, list[str]]:
        text = read_handed_back(out_dir, "follow-ups.json", 256 * 1024)
        if text is None or self.work is None:
            return [], None, []
        try:
            items = parse_follow_ups(text)
        except ValueError as exc:
            return [], str(exc), []
        if not items:
            return [], None, []
        if follow_up_depth(task.body) >= MAX_FOLLOW_UP_DEPTH:
            return [], (f"this task is a follow-up {MAX_FOLLOW_UP_DEPTH} levels deep; "
                        "it files no more"), []
        trusted = await self.perms.writers(task.repo, marker_authors(comments))
        before = filed_digests(comments, trusted.__contains__)
        # a task that ran on a writer's approval files follow-ups that wait for one too
        inherits = not await self._own_trust(task)
        try:
            filed = await self.work.file_follow_ups(
                task, items, before, follow_up_markers(self.feed.all_tasks()), inherits)
        except GitHubError as exc:
            return [], f"GitHub refused one: {exc.message}", []
        self._decide("follow_ups", task, issues=[n for _, n in filed])
        return filed, None, sorted(before | {i.digest for i, _ in filed})

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
            self._decide("approved", task, digest=state.short, approvers=list(state.approvers))
            return True
        if not state.announced:
            await ops.comment_once(task.number, report.approval_comment(
                state.digest, task.author or "(unknown)", self.s.node_id,
                inherits=inherited_from(task.body)))
        if STATE_LABELS["needs-approval"] not in task.labels:
            await ops.add_labels(task.number, [STATE_LABELS["needs-approval"]])
        self.announced[task.key] = state.digest
        self._decide("awaiting_approval", task, digest=state.short, author=task.author)
        return False

    async def on_command(self, cmd: Command, acting: bool) -> None:
        """A writer's command, seen by every agent; ``acting``: this agent does its once-only
        part on GitHub (it created the command's ref)."""
        self._decide("command", repo=cmd.repo, issue=cmd.issue, verb=cmd.verb.value,
                     by=cmd.author, comment=cmd.comment_id, acting=acting)
        ops = self.ops[cmd.repo]
        if cmd.verb is Verb.CANCEL:
            run = self.running.get(cmd.key)
            if run is not None and run.scope is not None and run.stop_reason is None:
                run.stop_reason = StopReason(Stop.CANCELLED, cmd.author)
                run.scope.cancel()
            if acting:
                await ops.add_labels(cmd.issue, [STATE_LABELS["failed"]])
                await self._react(ops, cmd, "+1")
        elif cmd.verb is Verb.RETRY:
            self.not_before.pop(cmd.key, None)
            if acting:
                doc = await ops.get(cmd.issue)
                labels = label_names(doc)
                for label in sorted(labels & (FINISHED | {STATE_LABELS["claimed"]})):
                    await ops.remove_label(cmd.issue, label)
                await self._react(ops, cmd, "rocket")
        elif cmd.verb is Verb.APPROVE:
            self.announced.pop(cmd.key, None)
            self.not_before.pop(cmd.key, None)
            if acting:
                await self._approve(ops, cmd)
        elif cmd.verb is Verb.FEEDBACK:
            # another round for a task that finished (in review, done, failed): the next
            # attempt gets this and all earlier feedback in $BZZZ_FEEDBACK
            self.not_before.pop(cmd.key, None)
            if acting:
                doc = await ops.get(cmd.issue)
                labels = label_names(doc)
                # only a task in review starts again on feedback; a done or failed one
                # takes "/bzzz retry" (the feedback still reaches its next attempt)
                again = doc.get("state") == "open" and STATE_LABELS["review"] in labels
                for label in sorted(labels & FINISHED) if again else ():
                    await ops.remove_label(cmd.issue, label)
                await self._react(ops, cmd, "rocket" if again else "eyes")
        elif cmd.verb is Verb.ANSWER:
            # an answer to the task's question: it can run again, with the answer in
            # $BZZZ_FEEDBACK (every question and answer so far)
            self.not_before.pop(cmd.key, None)
            if acting:
                doc = await ops.get(cmd.issue)
                labels = label_names(doc)
                waiting = doc.get("state") == "open" and STATE_LABELS["needs-input"] in labels
                if waiting:
                    await ops.remove_label(cmd.issue, STATE_LABELS["needs-input"])
                await self._react(ops, cmd, "rocket" if waiting else "eyes")
        if cmd.verb in (Verb.RETRY, Verb.APPROVE, Verb.FEEDBACK, Verb.ANSWER):
            self.wake.set()  # the task may be claimable now

    async def _approval(self, ops: IssueOps, number: int, digest: str) -> Approval:
        """Whether the task of ``digest`` (trust.task_digest) is approved, from the issue's
        comments and their authors' access."""
        views = comment_views(await ops.comments(number))
        return approval_state(digest, views, await self.perms.writers(ops.repo, voices(views)))

    async def _approve(self, ops: IssueOps, cmd: Command) -> None:
        try:
            task = parse_issue(ops.repo, await ops.get(cmd.issue))
        except TaskError as exc:  # not an issue as GitHub sends them: nothing to approve
            log.warning("approval of a malformed issue", extra={"issue": cmd.issue,
                                                                 "error": str(exc)})
            return
        state = await self._approval(ops, cmd.issue, task_digest(task.title, task.body))
        if state.approved:
            await ops.remove_label(cmd.issue, STATE_LABELS["needs-approval"])
            await self._react(ops, cmd, "+1")
            return
        await self._react(ops, cmd, "confused")
        await ops.comment_once(cmd.issue, report.approval_mismatch_comment(
            state.digest, cmd.arg, self.s.node_id))

    async def _react(self, ops: IssueOps, cmd: Command, content: str) -> None:
        if cmd.source != "comment":
            return  # reviews take no reactions
        try:
            await ops.react(cmd.comment_id, content)
        except GitHubError as exc:  # a missing reaction is cosmetic
            log.warning("could not react to a command", extra={"error": str(exc)})

    async def _finish_labels(self, task: Task, state_label: str) -> None:
        labels = sorted((task.labels - FINISHED
                         - {STATE_LABELS["claimed"], STATE_LABELS["needs-approval"]})
                        | {state_label})
        await self.ops[task.repo].set_labels(task.number, labels)

    def _help_history(self, run: Running) -> list[dict]:
        import json
        out = []
        for line in run.held.claim.help if run.held else ():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    async def _seek_help(self, run: Running, task: Task, key: str, reason: str,
                         extra_needs: Sequence[str] = ()) -> bool:
        """Ask the mesh for help until someone takes the task (True: handed over) or the
        task has had its ``max_help`` requests (False: report the failure)."""
        import json
        lock, ops = self.locks[task.repo], self.ops[task.repo]
        if not lock.supports_handoff:
            return False  # handoff moves the git-ref claim; the assign mode has none
        while run.held is not None and len(run.held.claim.help) < self.s.max_help:
            asked = len(run.held.claim.help) + 1
            info = {"repo": task.repo, "issue": task.number, "title": task.title[:200],
                    "needs": sorted(set(task.needs) | set(extra_needs))}
            ask = await self.helper.ask(info, reason, asked, wait=self.s.help_wait)
            entry = {"ask": asked, "by": self.s.node_id, "reason": reason, "at": int(self.clock()),
                     "request": ask.request_id,
                     "offers": [o.get("helper_node", "?") for o in ask.offers],
                     "declines": [[d.get("helper_node", "?"), d.get("reason", "")[:100]]
                                  for d in ask.declines], "to": None}
            pick = ask.offers[0] if ask.offers else None
            if pick is not None:
                entry["to"] = pick.get("helper_node", "?")
            async with run.ref_lock:
                if run.held is None:
                    return True
                sent = self.clock()  # the claim is ours until GitHub takes the hand-off
                try:
                    if pick is None:
                        outcome = await lock.record_help(run.held, json.dumps(entry))
                    else:
                        outcome = await lock.handoff(run.held, pick["helper_node"], pick["helper"],
                                                     pick.get("login") or self.s.login,
                                                     json.dumps(entry))
                except (GitHubError, Unavailable) as exc:
                    log.warning("could not record a help request", extra={"error": str(exc)})
                    return False
                if isinstance(outcome, Lost):
                    self._decide("lease_lost", task, during="help")
                    run.held = None
                    return True
                if pick is None:
                    run.held = outcome
                    self._decide("help_unanswered", task, ask=asked, request=ask.request_id)
                    await trio.sleep(self.s.help_retry)
                    continue
                # the claim is the helper's now: ours is gone, nothing to release
                run.held = None
            from ..help.messages import encode_handoff
            # released_at: when the hand-off was sent. The helper may log its start before
            # this decision is written (GitHub moved the claim first), never before that.
            self._decide("help_handed_over", task, ask=asked, helper=pick["helper"],
                         helper_node=pick.get("helper_node"), request=ask.request_id,
                         sha=outcome.sha, released_at=round(sent, 3))
            await self.helper.send_handoff(pick["helper"], encode_handoff(
                self.helper.sign, ask.request_id, self.helper.me, pick["helper"], task.repo,
                task.number, outcome.sha, self.clock()), pick.get("addrs") or ())
            handover = report.handover_comment(key, self.s.node_id, pick.get("helper_node", "?"),
                                               pick["helper"], reason)
            try:
                await ops.comment_once(task.number, handover)
            except GitHubError as exc:
                log.warning("could not say the task was handed over", extra={"error": str(exc)})
            return True
        return False

    async def adopt(self, body: dict) -> None:
        """A peer handed us a task through its claim (bzzz/help): take it and run it."""
        repo, number = body["repo"], body["issue"]
        lock = self.locks.get(repo)
        if lock is None or not lock.supports_handoff or self._nursery is None:
            return
        self._nursery.start_soon(self._adopt, lock, repo, number, body)

    async def _adopt(self, lock: HandoffLock, repo: str, number: int, body: dict) -> None:
        try:
            outcome = await lock.adopt(number, body["sha"])
            if isinstance(outcome, Lost):
                self._decide("help_adopt_failed", repo=repo, issue=number, reason=outcome.reason)
                return
            task = parse_issue(repo, await self.ops[repo].get(number))
        except (GitHubError, Unavailable, TaskError) as exc:
            self._decide("help_adopt_failed", repo=repo, issue=number, reason=str(exc))
            return
        if task.key in self.running:
            return
        run = self.running[task.key] = Running(task, self.clock())
        run.handed_from = body.get("origin")
        self.on_load(len(self.running))
        await self._attempt(task, lambda t: Attempt(self, run).hold(outcome))

    async def _durably(self, run: Running, what: str, step: Callable[[], Awaitable[object]]) -> bool:
        """Run one reporting step until GitHub answers: an outage delays a report, it never
        loses it (the lease is renewed meanwhile). False if the step cannot succeed (a 4xx)
        or our claim was lost while waiting (its new holder reports instead)."""
        delay, error = 1.0, ""
        while run.held is not None:
            try:
                await step()
                return True
            except RateLimited as exc:
                wait, error = max(1.0, exc.reset - self.clock()), str(exc)
            except Unavailable as exc:
                wait, delay = delay, min(delay * 2, self.s.report_retry_max)
                error = str(exc)
            except GitHubError as exc:
                self._decide("report_failed", run.task, step=what, error=str(exc))
                log.error("could not report", extra={"task": run.task.key, "step": what,
                                                     "error": str(exc)})
                return False
            else:
                continue
            self.report_retries += 1
            log.warning("reporting waits for GitHub", extra={
                "task": run.task.key, "step": what, "error": error, "retry_in": round(wait, 1)})
            await trio.sleep(wait)
        self._decide("report_dropped", run.task, step=what, reason="lease lost")
        return False

    async def _report_cancelled(self, task: Task, run: Running, key: str) -> None:
        """The process tree is already stopped. On shutdown the comment gets a short shielded
        window; the lock is released by the caller so a peer can take the task at once."""
        stop = run.stop_reason or SHUTTING_DOWN
        why = str(stop)
        self._decide("cancelled", task, reason=why)
        if run.held is not None or stop.kind is Stop.LEASE_LOST:
            with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_GRACE):
                try:
                    await self.ops[task.repo].comment_once(
                        task.number, report.cancelled_comment(key, self.s.node_id, why))
                except GitHubError as exc:
                    log.warning("could not say the task was cancelled",
                                extra={"task": task.key, "error": str(exc)})
        self._finished({"task": task.key, "status": Status.CANCELLED.value, "node": self.s.node_id})

    async def _help_exhausted(self, run: Running, task: Task, key: str, label: str) -> bool:
        """A failure after every help request it may make: say so, for a human (False: the
        comment could not be made and the report stops)."""
        history = self._help_history(run)
        if label != STATE_LABELS["failed"] or self.helper is None or \
                len(history) < self.s.max_help:
            return True
        self._decide("help_exhausted", task, asks=len(history))
        review = report.review_comment(key, self.s.node_id, history)
        return await self._durably(run, "review", lambda: self.ops[task.repo].comment_once(
            task.number, review))

    async def _report(self, task: Task, run: Running, key: str, result) -> None:
        ops = self.ops[task.repo]
        status = Status(result.status)
        if status is Status.REFUSED:
            reasons = result.verdict.reasons if result.verdict else ["refused"]
            self._decide("guardian_refused", task, reasons=reasons)
            comment = report.refusal_comment(key, self.s.node_id, reasons)
            status_label = STATE_LABELS["failed"]
        else:
            self._decide("result", task, status=status.value, exit_code=result.exit_code,
                         duration=result.duration, output_bytes=result.output_bytes,
                         output=result.output)  # the tail; the log keeps long ones by hash
            comment = report.result_comment(
                key, self.s.node_id, status.value, result.duration, result.exit_code,
                result.output, result.truncated)
            status_label = STATE_LABELS["done"] if status is Status.SUCCEEDED else STATE_LABELS["failed"]
        # the comment first: a state label without its result comment would be a lie
        if not await self._durably(run, "comment", lambda: ops.comment_once(task.number, comment)):
            return
        if not await self._help_exhausted(run, task, key, status_label):
            return
        if not await self._durably(run, "labels", lambda: self._finish_labels(task, status_label)):
            return
        if status is Status.SUCCEEDED and self.s.close_on_success:
            await self._durably(run, "close", lambda: ops.close(task.number))
        self._decide("reported", task, status=status.value)
        self._finished({"task": task.key, "status": status.value,
                               "node": self.s.node_id, "duration": result.duration})


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
