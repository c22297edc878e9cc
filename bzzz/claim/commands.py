"""Writers' comment commands (``/bzzz approve|retry|cancel|answer``, and review feedback),
as every agent sees them: what changes here (a running task stopped, a wait lifted) and,
for the one agent acting (it created the command's ref), the once-only part on GitHub.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..kinds import Decision
from . import report
from .attempt import Stop, StopReason
from ..github.client import GitHubError
from ..github.issues import IssueOps
from .task import FINISHED, STATE_LABELS, TaskError, label_names, parse_issue
from .trust import Command, Verb, task_digest

if TYPE_CHECKING:
    from .service import ClaimService

log = logging.getLogger("bzzz.claim")
WAKING = (Verb.RETRY, Verb.APPROVE, Verb.FEEDBACK, Verb.ANSWER)  # the task may be claimable


class Commands:
    def __init__(self, svc: ClaimService) -> None:
        self.svc = svc
        self.verbs = {Verb.CANCEL: self.cancel, Verb.RETRY: self.retry,
                      Verb.APPROVE: self.approve, Verb.FEEDBACK: self.feedback,
                      Verb.ANSWER: self.answer}

    async def on_command(self, cmd: Command, acting: bool) -> None:
        """A writer's command, seen by every agent; ``acting``: this agent does its once-only
        part on GitHub (it created the command's ref)."""
        svc = self.svc
        svc._decide(Decision.COMMAND, repo=cmd.repo, issue=cmd.issue, verb=cmd.verb.value,
                    by=cmd.author, comment=cmd.comment_id, acting=acting)
        handler = self.verbs.get(cmd.verb)
        if handler is not None:
            await handler(svc.ops[cmd.repo], cmd, acting)
        if cmd.verb in WAKING:
            svc.wake.set()

    async def cancel(self, ops: IssueOps, cmd: Command, acting: bool) -> None:
        run = self.svc.running.get(cmd.key)
        if run is not None and run.scope is not None and run.stop_reason is None:
            run.stop_reason = StopReason(Stop.CANCELLED, cmd.author)
            run.scope.cancel()
        if acting:
            await ops.add_labels(cmd.issue, [STATE_LABELS["failed"]])
            await self.react(ops, cmd, "+1")

    async def retry(self, ops: IssueOps, cmd: Command, acting: bool) -> None:
        self.svc.not_before.pop(cmd.key, None)
        if acting:
            labels = label_names(await ops.get(cmd.issue))
            for label in sorted(labels & (FINISHED | {STATE_LABELS["claimed"]})):
                await ops.remove_label(cmd.issue, label)
            await self.react(ops, cmd, "rocket")

    async def approve(self, ops: IssueOps, cmd: Command, acting: bool) -> None:
        self.svc.announced.pop(cmd.key, None)
        self.svc.not_before.pop(cmd.key, None)
        if acting:
            await self._approve(ops, cmd)

    async def feedback(self, ops: IssueOps, cmd: Command, acting: bool) -> None:
        """Another round for a task that finished (in review, done, failed): the next
        attempt gets this and all earlier feedback in $BZZZ_FEEDBACK."""
        self.svc.not_before.pop(cmd.key, None)
        if acting:
            doc = await ops.get(cmd.issue)
            labels = label_names(doc)
            # only a task in review starts again on feedback; a done or failed one
            # takes "/bzzz retry" (the feedback still reaches its next attempt)
            again = doc.get("state") == "open" and STATE_LABELS["review"] in labels
            for label in sorted(labels & FINISHED) if again else ():
                await ops.remove_label(cmd.issue, label)
            await self.react(ops, cmd, "rocket" if again else "eyes")

    async def answer(self, ops: IssueOps, cmd: Command, acting: bool) -> None:
        """An answer to the task's question: it can run again, with the answer in
        $BZZZ_FEEDBACK (every question and answer so far)."""
        self.svc.not_before.pop(cmd.key, None)
        if acting:
            doc = await ops.get(cmd.issue)
            waiting = doc.get("state") == "open" and \
                STATE_LABELS["needs-input"] in label_names(doc)
            if waiting:
                await ops.remove_label(cmd.issue, STATE_LABELS["needs-input"])
            await self.react(ops, cmd, "rocket" if waiting else "eyes")

    async def _approve(self, ops: IssueOps, cmd: Command) -> None:
        try:
            task = parse_issue(ops.repo, await ops.get(cmd.issue))
        except TaskError as exc:  # not an issue as GitHub sends them: nothing to approve
            log.warning("approval of a malformed issue", extra={"issue": cmd.issue,
                                                                 "error": str(exc)})
            return
        state = await self.svc._approval(ops, cmd.issue, task_digest(task.title, task.body))
        if state.approved:
            await ops.remove_label(cmd.issue, STATE_LABELS["needs-approval"])
            await self.react(ops, cmd, "+1")
            return
        await self.react(ops, cmd, "confused")
        await ops.comment_once(cmd.issue, report.approval_mismatch_comment(
            state.digest, cmd.arg, self.svc.s.node_id))

    async def react(self, ops: IssueOps, cmd: Command, content: str) -> None:
        if cmd.source != "comment":
            return  # reviews take no reactions
        try:
            await ops.react(cmd.comment_id, content)
        except GitHubError as exc:  # a missing reaction is cosmetic
            log.warning("could not react to a command", extra={"error": str(exc)})
