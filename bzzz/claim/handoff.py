"""Hand-off through the claim: a task that failed here is offered to the mesh (bzzz/help),
and the claim itself moves to the helper that takes it; a task handed to us is adopted.

Only a lock that ``supports_handoff`` (locks.py) takes part: the hand-off is one
fast-forward of the git-ref claim, and the help requests made travel in the claim, so the
helper sees every earlier one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from ..kinds import Decision
from ..github.client import GitHubError, Unavailable
from . import report
from .attempt import Attempt, Running
from .gitlock import Held, Lost
from .locks import HandoffLock, can_hand_off
from .task import STATE_LABELS, Task, TaskError, parse_issue

if TYPE_CHECKING:
    from ..help.service import Ask
    from .service import ClaimService

log = logging.getLogger("bzzz.claim")


def help_history(run: Running) -> list[dict[str, Any]]:
    """The help requests recorded in the claim, oldest first."""
    out: list[dict[str, Any]] = []
    for line in run.held.claim.help if run.held else ():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


class Handoff:
    def __init__(self, svc: ClaimService) -> None:
        self.svc, self.s = svc, svc.s

    async def seek(self, run: Running, task: Task, key: str, reason: str,
                   extra_needs: Sequence[str] = ()) -> bool:
        """Ask the mesh for help until someone takes the task (True: handed over) or the
        task has had its ``max_help`` requests (False: report the failure)."""
        svc, lock = self.svc, self.svc.locks[task.repo]
        if not can_hand_off(lock):
            return False  # handoff moves the git-ref claim; the assign mode has none
        while run.held is not None and len(run.held.claim.help) < self.s.max_help:
            asked = len(run.held.claim.help) + 1
            ask, pick, entry = await self._ask(task, reason, asked, extra_needs)
            async with run.ref_lock:
                if run.held is None:
                    return True
                sent = svc.clock()  # the claim is ours until GitHub takes the hand-off
                try:
                    outcome = await self._record(lock, run.held, pick, entry)
                except (GitHubError, Unavailable) as exc:
                    log.warning("could not record a help request", extra={"error": str(exc)})
                    return False
                if isinstance(outcome, Lost):
                    svc._decide(Decision.LEASE_LOST, task, during="help")
                    run.held = None
                    return True
                if pick is None:
                    run.held = outcome
                    svc._decide(Decision.HELP_UNANSWERED, task, ask=asked, request=ask.request_id)
                    await trio.sleep(self.s.help_retry)
                    continue
                # the claim is the helper's now: ours is gone, nothing to release
                run.held = None
            await self._hand_over(task, key, reason, asked, ask, pick, outcome, sent)
            return True
        return False

    async def _ask(self, task: Task, reason: str, asked: int, extra_needs: Sequence[str]
                   ) -> tuple[Ask, dict[str, Any] | None, dict[str, Any]]:
        """One help request: the answer, the offer picked (None: nobody offered) and the
        entry that records it in the claim."""
        helper = self.svc.helper
        assert helper is not None  # a task seeks help only where help is on
        info = {"repo": task.repo, "issue": task.number, "title": task.title[:200],
                "needs": sorted(set(task.needs) | set(extra_needs))}
        ask = await helper.ask(info, reason, asked, wait=self.s.help_wait)
        entry: dict[str, Any] = {"ask": asked, "by": self.s.node_id, "reason": reason,
                 "at": int(self.svc.clock()), "request": ask.request_id,
                 "offers": [o.get("helper_node", "?") for o in ask.offers],
                 "declines": [[d.get("helper_node", "?"), d.get("reason", "")[:100]]
                              for d in ask.declines], "to": None}
        pick = ask.offers[0] if ask.offers else None
        if pick is not None:
            entry["to"] = pick.get("helper_node", "?")
        return ask, pick, entry

    async def _record(self, lock: HandoffLock, held: Held, pick: dict[str, Any] | None,
                      entry: dict[str, Any]) -> Held | Lost:
        """The request goes into the claim: a renewal carrying it, or the hand-off."""
        if pick is None:
            return await lock.record_help(held, json.dumps(entry))
        return await lock.handoff(held, pick["helper_node"], pick["helper"],
                                  pick.get("login") or self.s.login, json.dumps(entry))

    async def _hand_over(self, task: Task, key: str, reason: str, asked: int, ask: Ask,
                         pick: dict[str, Any], outcome: Held, sent: float) -> None:
        """The claim is the helper's: log it, tell the helper, say so on the issue."""
        from ..help.messages import encode_handoff
        svc, helper = self.svc, self.svc.helper
        assert helper is not None  # it asked, above
        # released_at: when the hand-off was sent. The helper may log its start before
        # this decision is written (GitHub moved the claim first), never before that.
        svc._decide(Decision.HELP_HANDED_OVER, task, ask=asked, helper=pick["helper"],
                    helper_node=pick.get("helper_node"), request=ask.request_id,
                    sha=outcome.sha, released_at=round(sent, 3))
        await helper.send_handoff(pick["helper"], encode_handoff(
            helper.sign, ask.request_id, helper.me, pick["helper"], task.repo,
            task.number, outcome.sha, svc.clock()), pick.get("addrs") or ())
        handover = report.handover_comment(key, self.s.node_id, pick.get("helper_node", "?"),
                                           pick["helper"], reason)
        try:
            await svc.ops[task.repo].comment_once(task.number, handover)
        except GitHubError as exc:
            log.warning("could not say the task was handed over", extra={"error": str(exc)})

    async def exhausted(self, run: Running, task: Task, key: str, label: str) -> bool:
        """A failure after every help request it may make: say so, for a human (False: the
        comment could not be made and the report stops)."""
        svc = self.svc
        history = help_history(run)
        if label != STATE_LABELS["failed"] or svc.helper is None or \
                len(history) < self.s.max_help:
            return True
        svc._decide(Decision.HELP_EXHAUSTED, task, asks=len(history))
        review = report.review_comment(key, self.s.node_id, history)
        return await svc.reporter.durably(run, "review", lambda: svc.ops[task.repo].comment_once(
            task.number, review))

    async def adopt(self, body: dict[str, Any]) -> None:
        """A peer handed us a task through its claim (bzzz/help): take it and run it."""
        svc = self.svc
        repo, number = body["repo"], body["issue"]
        lock = svc.locks.get(repo)
        if lock is None or not can_hand_off(lock) or svc._nursery is None \
                or not svc.taking:
            return
        svc._nursery.start_soon(self._adopt, lock, repo, number, body)

    async def _adopt(self, lock: HandoffLock, repo: str, number: int,
                     body: dict[str, Any]) -> None:
        svc = self.svc
        try:
            outcome = await lock.adopt(number, body["sha"])
            if isinstance(outcome, Lost):
                svc._decide(Decision.HELP_ADOPT_FAILED, repo=repo, issue=number, reason=outcome.reason)
                return
            task = parse_issue(repo, await svc.ops[repo].get(number))
        except (GitHubError, Unavailable, TaskError) as exc:
            svc._decide(Decision.HELP_ADOPT_FAILED, repo=repo, issue=number, reason=str(exc))
            return
        if task.key in svc.running:
            return
        run = svc.running[task.key] = Running(task, svc.clock())
        run.handed_from = body.get("origin")
        svc.on_load(len(svc.running))
        await svc._attempt(task, lambda t: Attempt(svc, run).hold(outcome))
