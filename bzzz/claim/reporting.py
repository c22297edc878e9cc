"""Telling GitHub how an attempt ended: the result comment first (a state label without its
comment would be a lie), then the state label, each step durable through an outage. The
texts themselves are report.py's; delivering a task's work (branch, pull request, follow-ups)
is delivery.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ..kinds import Decision
from ..github.client import GitHubError, RateLimited, Unavailable
from ..github.markers import Comment
from . import report
from .attempt import SHUTDOWN_GRACE, SHUTTING_DOWN, Running, Status, Stop
from .delivery import (MAX_FOLLOW_UP_DEPTH, MAX_SUMMARY, Delivered, DeliveryError, FollowUp,
                       PullRef, filed_digests, follow_up_depth, follow_up_markers,
                       parse_follow_ups, read_handed_back)
from .report import marker_authors
from .task import FINISHED, STATE_LABELS, Task

if TYPE_CHECKING:
    from ..exec.shell import Result
    from ..repo.workspace import Checkout
    from .service import ClaimService

log = logging.getLogger("bzzz.claim")


def finished_label(status: Status) -> str:
    return STATE_LABELS["done"] if status is Status.SUCCEEDED else STATE_LABELS["failed"]


class Reporter:
    def __init__(self, svc: ClaimService) -> None:
        self.svc, self.s = svc, svc.s

    async def durably(self, run: Running, what: str,
                      step: Callable[[], Awaitable[object]]) -> bool:
        """Run one reporting step until GitHub answers: an outage delays a report, it never
        loses it (the lease is renewed meanwhile). False if the step cannot succeed (a 4xx)
        or our claim was lost while waiting (its new holder reports instead)."""
        svc, delay, error = self.svc, 1.0, ""
        while run.held is not None:
            try:
                await step()
                return True
            except RateLimited as exc:
                wait, error = max(1.0, exc.reset - svc.clock()), str(exc)
            except Unavailable as exc:
                wait, delay = delay, min(delay * 2, self.s.report_retry_max)
                error = str(exc)
            except GitHubError as exc:
                svc._decide(Decision.REPORT_FAILED, run.task, step=what, error=str(exc))
                log.error("could not report", extra={"task": run.task.key, "step": what,
                                                     "error": str(exc)})
                return False
            else:
                continue
            svc.report_retries += 1
            log.warning("reporting waits for GitHub", extra={
                "task": run.task.key, "step": what, "error": error, "retry_in": round(wait, 1)})
            await trio.sleep(wait)
        svc._decide(Decision.REPORT_DROPPED, run.task, step=what, reason="lease lost")
        return False

    async def finish_labels(self, task: Task, state_label: str) -> None:
        labels = sorted((task.labels - FINISHED
                         - {STATE_LABELS["claimed"], STATE_LABELS["needs-approval"],
                            STATE_LABELS["waiting"]})
                        | {state_label})
        await self.svc.ops[task.repo].set_labels(task.number, labels)

    async def comment_and_label(self, run: Running, task: Task, comment: Comment,
                                label: str, what: str = "comment") -> None:
        """A comment, then (if it was made) a state label: the short endings."""
        ops = self.svc.ops[task.repo]
        if await self.durably(run, what, lambda: ops.comment_once(task.number, comment)):
            await self.durably(run, "labels", lambda: self.finish_labels(task, label))

    async def cancelled(self, task: Task, run: Running, key: str) -> None:
        """The process tree is already stopped. On shutdown the comment gets a short shielded
        window; the lock is released by the caller so a peer can take the task at once."""
        svc = self.svc
        stop = run.stop_reason or SHUTTING_DOWN
        why = str(stop)
        svc._decide(Decision.CANCELLED, task, reason=why)
        if run.held is not None or stop.kind is Stop.LEASE_LOST:
            with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_GRACE):
                try:
                    await svc.ops[task.repo].comment_once(
                        task.number, report.cancelled_comment(key, self.s.node_id, why))
                except GitHubError as exc:
                    log.warning("could not say the task was cancelled",
                                extra={"task": task.key, "error": str(exc)})
        svc._finished({"task": task.key, "status": Status.CANCELLED.value,
                       "node": self.s.node_id})

    async def asked(self, run: Running, task: Task, key: str, question: str) -> None:
        """The task asked a person: post the question, label ``bzzz:needs-input``, release
        the claim (the caller does). Waiting costs nothing; a writer's reply resumes it."""
        self.svc._decide(Decision.ASKED, task, question=question[:2000])
        await self.comment_and_label(run, task,
                                     report.question_comment(key, self.s.node_id, question),
                                     STATE_LABELS["needs-input"], what="question")
        self.svc._finished({"task": task.key, "status": Status.ASKED.value,
                            "node": self.s.node_id})

    async def result(self, task: Task, run: Running, key: str, result: Result) -> None:
        """A result without repository work (or refused by the guardian)."""
        svc, status = self.svc, Status(result.status)
        if status is Status.REFUSED:
            reasons = result.verdict.reasons if result.verdict else ["refused"]
            svc._decide(Decision.GUARDIAN_REFUSED, task, reasons=reasons)
            comment = report.refusal_comment(key, self.s.node_id, reasons)
            label = STATE_LABELS["failed"]
        else:
            usage = report.usage_of(result.extra)
            svc._decide(Decision.RESULT, task, status=status.value, exit_code=result.exit_code,
                        duration=result.duration, output_bytes=result.output_bytes,
                        output=result.output,  # the tail; the log keeps long ones by hash
                        **({"usage": usage} if usage else {}))
            comment = report.result_comment(
                key, self.s.node_id, status.value, result.duration, result.exit_code,
                result.output, result.truncated, egress=result.extra.get("egress"),
                setup=result.extra.get("setup"), check=result.extra.get("check"), usage=usage)
            label = finished_label(status)
        if await self._comment(run, task, comment) and await self._conclude(
                run, task, key, label, status,
                close=status is Status.SUCCEEDED and self.s.close_on_success):
            svc._finished({"task": task.key, "status": status.value,
                           "node": self.s.node_id, "duration": result.duration})

    async def _comment(self, run: Running, task: Task, comment: Comment) -> bool:
        # the comment first: a state label without its result comment would be a lie
        return await self.durably(run, "comment", lambda: self.svc.ops[task.repo].comment_once(
            task.number, comment))

    async def _conclude(self, run: Running, task: Task, key: str, label: str, status: Status,
                        close: bool) -> bool:
        """After the result comment: a failure's plea for a human, the state label,
        (closing the issue), and the ``reported`` decision."""
        svc, ops = self.svc, self.svc.ops[task.repo]
        if not await svc.handoff.exhausted(run, task, key, label):
            return False
        if not await self.durably(run, "labels", lambda: self.finish_labels(task, label)):
            return False
        if close:
            await self.durably(run, "close", lambda: ops.close(task.number))
        svc._decide(Decision.REPORTED, task, status=status.value)
        return True

    async def delivered(self, run: Running, task: Task, key: str, result: Result,
                        co: Checkout | None, prior: PullRef | None, out_dir: Path,
                        comments: list[dict[str, Any]], fresh: dict[str, Any]) -> None:
        """A result with its work: the branch and pull request, the follow-ups filed."""
        svc, status = self.svc, Status(result.status)
        assert svc.work is not None  # a result is delivered only where there is work
        summary = read_handed_back(out_dir, "summary.md", MAX_SUMMARY)
        delivered, error = await self._deliver(co, task, key, result, status, summary, prior,
                                               fresh)
        filed, fu_error, filed_keys = await self.follow_ups(task, out_dir, comments)
        if error and status is Status.SUCCEEDED:
            status = Status.FAILED  # the work did not reach GitHub
        if error and self.s.agent_sessions is not None:  # nor does a session that made it
            await trio.to_thread.run_sync(self.s.agent_sessions.forget, task.repo, task.number)
        usage = report.usage_of(result.extra)
        svc._decide(Decision.RESULT, task, status=status.value, exit_code=result.exit_code,
                    duration=result.duration, output_bytes=result.output_bytes,
                    output=result.output, commit=delivered.commit if delivered else None,
                    branch=delivered.branch if delivered else None,
                    pr=delivered.pr if delivered else None, delivery_error=error,
                    **({"kept_commits": delivered.kept} if delivered and delivered.kept else {}),
                    **({"usage": usage} if usage else {}))
        comment = report.work_comment(
            key, self.s.node_id, status.value, result.duration, result.exit_code, result.output,
            result.truncated, summary=summary,
            pr=delivered.pr if delivered else None, pr_url=delivered.pr_url if delivered else None,
            branch=delivered.branch if delivered else None,
            base=svc.work.base_of(task, task.spec, prior),
            files=len(delivered.files) if delivered else 0, new_round=prior is not None,
            delivery_error=error, follow_ups=[(i.title, n) for i, n in filed],
            follow_up_error=fu_error, filed_keys=filed_keys, egress=result.extra.get("egress"),
            setup=result.extra.get("setup"), check=result.extra.get("check"), usage=usage)
        if not await self._comment(run, task, comment):
            return
        await self._round_answer(run, task, key, delivered, prior, summary)
        label = self._delivered_label(task, status, delivered)
        if await self._conclude(run, task, key, label, status,
                                close=status is Status.SUCCEEDED and self.s.close_on_success
                                and label != STATE_LABELS["review"]):
            svc._finished({"task": task.key, "status": status.value, "node": self.s.node_id,
                           "duration": result.duration,
                           "pr": delivered.pr if delivered else None})

    async def _deliver(self, co: Checkout | None, task: Task, key: str, result: Result,
                       status: Status, summary: str | None, prior: PullRef | None,
                       fresh: dict[str, Any]) -> tuple[Delivered | None, str | None]:
        """Commit, push and open (or update) the pull request: (what was delivered, or
        None; the delivery error, or None)."""
        if co is None:
            return None, None
        assert self.svc.work is not None  # a checkout comes only from there
        try:
            return await self.svc.work.deliver(
                co, task, task.spec, key, summary or result.output[-3000:],
                status is Status.SUCCEEDED, prior,
                fresh.get("html_url") or f"#{task.number}",
                checked="\n".join(report.check_lines(result.extra.get("check"))).strip(),
                leftovers=result.extra.get("leftovers") or ()), None
        except DeliveryError as exc:
            return None, str(exc)

    async def _round_answer(self, run: Running, task: Task, key: str,
                            delivered: Delivered | None,
                            prior: PullRef | None,
                            summary: str | None) -> None:
        """Another round on a pull request: say on it what this round changed."""
        if delivered is None or delivered.pr is None or prior is None:
            return
        answer = report.round_comment(key, self.s.node_id, delivered.commit,
                                      len(delivered.files), summary)
        pr = delivered.pr
        await self.durably(run, "round", lambda: self.svc.ops[task.repo].comment_once(
            pr, answer))

    def _delivered_label(self, task: Task, status: Status,
                         delivered: Delivered | None) -> str:
        if delivered is not None and delivered.pr is not None and status is Status.SUCCEEDED:
            self.svc._decide(Decision.PULL_REQUEST, task, pr=delivered.pr, branch=delivered.branch,
                             opened=delivered.opened, commit=delivered.commit)
            return STATE_LABELS["review"]
        return finished_label(status)

    async def follow_ups(self, task: Task, out_dir: Path, comments: list[dict[str, Any]]
                         ) -> tuple[list[tuple[FollowUp, int]], str | None, list[str]]:
        """File the follow-ups the task handed back: (filed, error, every filed digest)."""
        svc = self.svc
        text = read_handed_back(out_dir, "follow-ups.json", 256 * 1024)
        if text is None or svc.work is None:
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
        trusted = await svc.perms.writers(task.repo, marker_authors(comments))
        before = filed_digests(comments, trusted.__contains__)
        # a task that ran on a writer's approval files follow-ups that wait for one too
        inherits = not await svc._own_trust(task)
        try:
            filed = await svc.work.file_follow_ups(
                task, items, before, follow_up_markers(svc.feed.all_tasks()), inherits)
        except GitHubError as exc:
            return [], f"GitHub refused one: {exc.message}", []
        svc._decide(Decision.FOLLOW_UPS, task, issues=[n for _, n in filed])
        return filed, None, sorted(before | {i.digest for i, _ in filed})
