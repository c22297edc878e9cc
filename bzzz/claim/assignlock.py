"""The weaker claim mode, ``claim_mode = "assign"``: for tokens without contents write.

GitHub has no compare-and-set on issues (shared/FACTS.md), so this mode builds a lock from
what an issues-only token can do, and is weaker than the ref lock:

- claim: assign our login (additive), wait ``settle`` seconds so concurrent assignments
  become visible, then read the issue's events: among the logins assigned now, the one whose
  current assignment is the earliest (event time, then event id) wins; losers unassign.
- the winner posts its claim comment, which carries a hidden lease record; renewing edits
  that record; releasing marks it released (the assignee stays: the visible marker).
- an assignee counts as holding the task while its lease record is live, or while its
  assignment is younger than ``settle + grace`` (a claimer still settling). Anything else
  assigned is stale and is unassigned by the next claimer (a takeover).

What makes it weaker: every agent must have its own login (agents sharing a login cannot be
told apart by assignment: use the ref mode), and it relies on the event list showing every
assignment within ``settle`` seconds. The ref mode has neither limit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import trio

from ..github.client import GitHubClient, GitHubError
from . import report
from .gitlock import Held, Lost, git_time
from .intake import EveryoneActs
from .lease import DEFAULT_LEASE, TAKEOVER_GRACE, Claim, parse_claim

_RECORD_RE = re.compile(r"<!-- bzzz-lease\n(?P<record>.*?)\n-->", re.S)
DEFAULT_SETTLE = 2.0


@dataclass(frozen=True)
class LeaseRecord:
    comment_id: int
    claim: Claim
    released: bool


def lease_body(claim: Claim, key: str, released: bool = False) -> str:
    visible = report.claim_comment(claim.node, claim.peer, key).body
    state = "released" if released else "held"
    return f"{visible}\n<!-- bzzz-lease\n{claim.message()}state: {state}\n-->"


def parse_lease(comment: dict[str, Any]) -> LeaseRecord | None:
    m = _RECORD_RE.search(comment.get("body") or "")
    if m is None or not isinstance(comment.get("id"), int):
        return None
    claim = parse_claim(m["record"])
    if claim is None:
        return None
    return LeaseRecord(comment["id"], claim, "\nstate: released" in m["record"])


def current_assignments(assignees: list[str], events: list[dict[str, Any]]
                        ) -> dict[str, tuple[float, int]]:
    """For each login assigned now, (time, id) of the event that assigned it last."""
    latest: dict[str, tuple[float, int]] = {}
    for e in events:
        who = (e.get("assignee") or {}).get("login") if isinstance(e, dict) else None
        if e.get("event") != "assigned" or not who or not isinstance(e.get("id"), int):
            continue
        at = (git_time(e.get("created_at")), e["id"])
        if at > latest.get(who, (float("-inf"), -1)):
            latest[who] = at
    return {a: latest[a] for a in assignees if a in latest}


def winner(assignments: dict[str, tuple[float, int]]) -> str | None:
    """The login whose current assignment is the earliest."""
    return min(assignments, key=assignments.__getitem__) if assignments else None


def live(login: str, assigned_at: float, records: dict[str, LeaseRecord], now: float,
         settle: float, grace: float) -> bool:
    record = records.get(login)
    if record is not None and not record.released and now <= record.claim.lease_expires + grace:
        return True
    return now <= assigned_at + settle + grace


class AssignLock:
    """Same interface as :class:`~bzzz.claim.gitlock.ClaimLock`; ``Held.sha`` is the id of
    the claim comment holding the lease record. Posts the claim comment itself."""

    supports_handoff = False  # no ref to fast-forward: a claim cannot be handed over
    names_holder = True  # acquiring assigns our login and posts the claim comment (locks.py)

    def __init__(self, client: GitHubClient, repo: str, node: str, peer: str, login: str, *,
                 lease: float = DEFAULT_LEASE, grace: float = TAKEOVER_GRACE,
                 settle: float = DEFAULT_SETTLE, clock: Callable[[], float] = time.time) -> None:
        self.gh = client
        self.repo = repo
        self.node, self.peer, self.login = node, peer, login
        self.lease, self.grace, self.settle = lease, grace, settle
        self.clock = clock

    def _path(self, number: int, tail: str = "") -> str:
        return f"/repos/{self.repo}/issues/{number}{tail}"

    async def _all(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, 51):
            reply = await self.gh.request("GET", path, params={"per_page": 100, "page": page})
            items.extend(x for x in reply.data or [] if isinstance(x, dict))
            if 'rel="next"' not in reply.headers.get("link", ""):
                break
        return items

    async def _state(self, number: int) -> tuple[dict[str, tuple[float, int]], dict[str, LeaseRecord]]:
        issue = (await self.gh.request("GET", self._path(number))).data
        assignees = [a["login"] for a in issue.get("assignees") or [] if isinstance(a, dict)]
        events = await self._all(self._path(number, "/events"))
        records: dict[str, LeaseRecord] = {}
        for c in await self._all(self._path(number, "/comments")):
            rec = parse_lease(c)
            author = (c.get("user") or {}).get("login")
            if rec is None or author != rec.claim.login:
                continue  # only a login's own comment speaks for it (anyone can comment)
            if (rec.claim.login not in records
                                    or rec.comment_id > records[rec.claim.login].comment_id):
                records[rec.claim.login] = rec
        return current_assignments(assignees, events), records

    def key(self, claim: Claim) -> str:
        return f"{claim.node}:{claim.generation}"

    async def acquire(self, number: int, probe_first: bool = False) -> Held | Lost:
        assignments, records = await self._state(number)
        now = self.clock()
        stale = []
        for login, (at, _) in assignments.items():
            if login == self.login:
                continue
            if live(login, at, records, now, self.settle, self.grace):
                rec = records.get(login)
                return Lost(number, "held", rec.claim if rec else None)
            stale.append(login)
        previous = max((r.claim.generation for r in records.values()), default=0)
        if stale:  # a takeover: the stale holders go first
            await self.gh.request("DELETE", self._path(number, "/assignees"),
                                  json={"assignees": stale})
        await self.gh.request("POST", self._path(number, "/assignees"),
                              json={"assignees": [self.login]})
        await trio.sleep(self.settle)
        assignments, records = await self._state(number)
        if self.login not in assignments:
            return Lost(number, "raced")  # a takeover removed us while we settled
        now = self.clock()
        contenders = {login: at for login, at in assignments.items()
                      if login == self.login
                      or live(login, at[0], records, now, self.settle, self.grace)}
        if winner(contenders) != self.login:
            await self.gh.request("DELETE", self._path(number, "/assignees"),
                                  json={"assignees": [self.login]})
            other = records.get(winner(contenders) or "")
            return Lost(number, "raced", other.claim if other else None)
        claim = Claim(f"{self.repo}#{number}", self.node, self.peer, self.login,
                      self.clock() + self.lease, previous + 1)
        reply = await self.gh.request("POST", self._path(number, "/comments"), retry=False,
                                      json={"body": lease_body(claim, self.key(claim))})
        return Held(number, str(reply.data["id"]), claim, taken_over=bool(stale))

    async def _write(self, held: Held, claim: Claim, released: bool) -> None:
        await self.gh.request("PATCH", f"/repos/{self.repo}/issues/comments/{held.sha}",
                              json={"body": lease_body(claim, self.key(held.claim), released)})

    async def renew(self, held: Held) -> Held | Lost:
        issue = (await self.gh.request("GET", self._path(held.number))).data
        if self.login not in [a.get("login") for a in issue.get("assignees") or []
                              if isinstance(a, dict)]:
            return Lost(held.number, "held")  # unassigned: taken over
        # the generation counts claims, not renewals: the comment (and its key) stay the same
        claim = replace(held.claim, lease_expires=self.clock() + self.lease)
        await self._write(held, claim, released=False)
        return Held(held.number, held.sha, claim, held.taken_over)

    def command_lock(self) -> EveryoneActs:
        """This mode's tokens may not create refs: every agent acts (intake.EveryoneActs)."""
        return EveryoneActs()

    async def release(self, held: Held) -> bool:
        try:
            await self._write(held, held.claim, released=True)
        except GitHubError as exc:
            if exc.status == 404:
                return False
            raise
        return True
