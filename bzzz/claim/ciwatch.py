"""Watching the CI of the agents' pull requests, and acting on it (bzzz/claim/ciround.py
says what to do; this module reads GitHub and does it).

At each poll (and at once on a ``check_run``, ``check_suite`` or ``status`` webhook, which
wakes the service) every node looks at the head commit of each open pull request of a task
in review: its check runs and statuses, read conditionally (a 304 costs nothing against
GitHub's budget, so a quiet pull request costs nothing either), and the base branch's
required checks. Pending: nothing. Otherwise the one node that takes the repository's
once-only lock for that head acts: a CI round (a comment with what failed, and the task made
claimable again: its next attempt works on the same branch with that comment in
``$BZZZ_FEEDBACK``), a final comment after ``ci_rounds``, or, green, marking a
``pr=ready-when-green`` pull request ready and asking its review.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..github.checks import ChecksReader, Verdict, verdict
from ..github.client import GitHubError
from ..github.pulls import PullInfo
from ..kinds import Decision
from .ciround import Step, give_up_comment, next_step, round_comment, rounds_done
from .delivery import pr_mode
from .task import FINISHED, STATE_LABELS, Task, TaskError, label_names

if TYPE_CHECKING:
    from .service import ClaimService

log = logging.getLogger(__name__)

SEEN_KEPT = 2000  # heads remembered (a daemon runs for months)


class CiWatch:
    def __init__(self, svc: ClaimService) -> None:
        self.svc = svc
        self.reader = ChecksReader(svc.gh)
        self.seen: dict[str, float] = {}  # head sha -> when this node first saw it
        self.acted: set[str] = set()  # heads acted on (by this node or another)

    async def check(self, task: Task, pr: PullInfo) -> None:
        """One look at ``pr``'s head; errors are logged and the next poll looks again."""
        sha = pr.head_sha
        if not sha or sha in self.acted or pr.state != "open":
            return
        try:
            await self._check(task, pr, sha)
        except GitHubError as exc:  # Unavailable included: the next poll looks again
            log.warning("could not read or act on CI", extra={
                "task": task.key, "pr": pr.number, "error": str(exc)})

    async def _check(self, task: Task, pr: PullInfo, sha: str) -> None:
        s, now = self.svc.s, self.svc.clock()
        if len(self.seen) > SEEN_KEPT:
            self.seen.clear()
            self.acted.clear()
        elapsed = now - self.seen.setdefault(sha, now)
        required = await self.reader.required_checks(pr.repo, pr.base) if pr.base else None
        runs, statuses = await self.reader.head(pr.repo, sha)
        v = verdict(runs, statuses, required, elapsed, s.ci_wait, s.ci_settle)
        if v.state == "pending":
            return
        try:
            mode = pr_mode(task.spec)
        except TaskError:
            mode = "draft"
        if v.state == "green" and not (mode == "ready-when-green" and pr.draft):
            self.acted.add(sha)  # stays for review as it is: nothing to do
            return
        ops = self.svc.ops[pr.repo]
        done = 0
        if v.state == "red":
            runs = await self.reader.with_annotations(pr.repo, runs, v)
            v = verdict(runs, statuses, required, elapsed, s.ci_wait, s.ci_settle)
            done = rounds_done(await ops.comments(pr.number), pr.number, s.login)
        if not await self.svc.intake.locks[pr.repo].take(f"ci-{pr.number}-{sha[:20]}"):
            self.acted.add(sha)  # another node acts on this head
            return
        self.acted.add(sha)
        step = next_step(v, done, s.ci_rounds)
        if step.kind == "green":
            await self._ready(task, pr)
        elif step.kind == "round":
            await self._round(task, pr, sha, v, step.round)
        else:
            await ops.comment_once(pr.number, give_up_comment(pr.number, sha, v, s.ci_rounds,
                                                              s.node_id))
            self.svc._decide(Decision.CI_FAILED, task, pr=pr.number, sha=sha,
                             rounds=done, failed=[f.name for f in v.failures])

    async def _ready(self, task: Task, pr: PullInfo) -> None:
        ready = await self.reader.mark_ready(pr.node_id) if pr.node_id else False
        reviewer = task.author if task.author.lower() != self.svc.s.login.lower() else ""
        if reviewer:
            try:
                await self.svc.gh.request(
                    "POST", f"/repos/{pr.repo}/pulls/{pr.number}/requested_reviewers",
                    json={"reviewers": [reviewer]})
            except GitHubError as exc:  # not a collaborator: the pull request is ready anyway
                log.info("review not requested", extra={"task": task.key, "error": str(exc)})
        self.svc._decide(Decision.CI_GREEN, task, pr=pr.number, sha=pr.head_sha, ready=ready)

    async def _round(self, task: Task, pr: PullInfo, sha: str, v: Verdict, k: int) -> None:
        """What failed on the pull request, then the task claimable again (its next attempt
        works on this branch, the failure in its feedback)."""
        svc = self.svc
        ops = svc.ops[pr.repo]
        await ops.comment_once(pr.number, round_comment(pr.number, sha, v, Step("round", k),
                                                        svc.s.ci_rounds, svc.s.node_id))
        doc = await ops.get(task.number)
        labels = label_names(doc)
        if doc.get("state") == "open" and STATE_LABELS["review"] in labels:
            for label in sorted(labels & FINISHED):
                await ops.remove_label(task.number, label)
        svc.not_before.pop(task.key, None)
        svc._decide(Decision.CI_ROUND, task, pr=pr.number, sha=sha, round=k,
                    failed=[f.name for f in v.failures], timed_out=v.timed_out)
        svc.wake.set()
