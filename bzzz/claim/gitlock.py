"""The claim lock on GitHub: claim commits and ``refs/bzzz/claims/<n>`` (see lease.py).

Costs per claim: one commit and one ref creation (the base tree is read once per repository
and cached); a renewal or takeover is one commit and one ref update; a release is one read
and one delete.

An uncertain ref creation (the connection dropped after sending) is settled by reading the
ref: if it points at our commit, we won. Claim commits are content-addressed orphans until
a ref points at them, so creating one twice is harmless.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..github.client import GitHubClient, GitHubError, Unavailable
from .intake import CommandLock
from .lease import DEFAULT_LEASE, TAKEOVER_GRACE, Claim, claim_ref, expired, parse_claim


@dataclass(frozen=True)
class Held:
    number: int
    sha: str
    claim: Claim
    taken_over: bool = False


@dataclass(frozen=True)
class Lost:
    number: int
    reason: str  # "held" (someone else holds it), "raced" (lost a concurrent update)
    holder: Claim | None = None


@dataclass(frozen=True)
class Current:
    sha: str
    claim: Claim | None
    commit_time: float


def git_time(iso: str | None) -> float:
    if not iso:
        return 0.0
    return float(calendar.timegm(time.strptime(iso.replace("Z", "")[:19], "%Y-%m-%dT%H:%M:%S")))


class RefRecords:
    """Records kept as commits under refs of a repository (the claim lock, schedule slots):
    the repository's paths, and record commits on the default branch's tree, so a record
    costs one small commit object and no new tree. Needs ``gh``, ``repo`` and ``_base``."""

    gh: GitHubClient
    repo: str
    _base: tuple[str, str] | None

    def _path(self, tail: str) -> str:
        return f"/repos/{self.repo}/{tail}"

    async def _base_commit(self) -> tuple[str, str]:
        if self._base is None:
            repo = (await self.gh.request("GET", f"/repos/{self.repo}")).data
            branch = repo.get("default_branch", "main")
            ref = (await self.gh.request("GET", self._path(f"git/ref/heads/{branch}"))).data
            sha = ref["object"]["sha"]
            commit = (await self.gh.request("GET", self._path(f"git/commits/{sha}"))).data
            self._base = (sha, commit["tree"]["sha"])
        return self._base

    async def _record_commit(self, message: str, parent: str) -> str:
        _, tree = await self._base_commit()
        reply = await self.gh.request("POST", self._path("git/commits"), retry=True,
                                      json={"message": message, "tree": tree,
                                            "parents": [parent]})
        sha: str = reply.data["sha"]
        return sha


class ClaimLock(RefRecords):
    supports_handoff = True  # the claim moves to a helper in one fast-forward (locks.py)
    names_holder = False  # the service assigns and comments once it holds the claim

    def __init__(self, client: GitHubClient, repo: str, node: str, peer: str, login: str, *,
                 lease: float = DEFAULT_LEASE, grace: float = TAKEOVER_GRACE,
                 clock: Callable[[], float] = time.time) -> None:
        self.gh = client
        self.repo = repo
        self.node, self.peer, self.login = node, peer, login
        self.lease = lease
        self.grace = grace
        self.clock = clock
        self._base: tuple[str, str] | None = None  # (commit sha, tree sha) of the default branch

    async def _commit(self, claim: Claim, parent: str) -> str:
        return await self._record_commit(claim.message(), parent)

    async def read(self, number: int) -> Current | None:
        sha = await self.ref_sha(number)
        if sha is None:
            return None
        commit = (await self.gh.request("GET", self._path(f"git/commits/{sha}"))).data
        return Current(sha, parse_claim(commit.get("message", "")),
                       git_time(commit.get("committer", {}).get("date")))

    def _new_claim(self, number: int) -> Claim:
        return Claim(f"{self.repo}#{number}", self.node, self.peer, self.login,
                     self.clock() + self.lease)

    async def acquire(self, number: int, probe_first: bool = False) -> Held | Lost:
        """Claim the task, or take over an expired claim; Lost if someone else holds it.
        ``probe_first``: read the ref before writing anything (cheaper for tasks that are
        probably held: two reads instead of a commit, a failed create and two reads)."""
        if probe_first:
            current = await self.read(number)
            if current is not None:
                if expired(current.claim, self.clock(), current.commit_time, self.lease,
                           self.grace):
                    return await self._advance(number, current, takeover=True)
                return Lost(number, "held", current.claim)
        base_sha, _ = await self._base_commit()
        claim = self._new_claim(number)
        sha = await self._commit(claim, base_sha)
        uncertain = False
        for _ in range(3):
            try:
                await self.gh.request("POST", self._path("git/refs"), retry=False,
                                      json={"ref": claim_ref(number), "sha": sha})
                return Held(number, sha, claim)
            except Unavailable:
                uncertain = True  # did it land? settle it by reading, then maybe try again
                current = await self.read(number)
                if current is not None:
                    break
            except GitHubError as exc:
                if exc.status != 422:
                    raise
                break
        current = await self.read(number)
        if current is None:
            return Lost(number, "raced")  # released between our attempt and our read
        if uncertain and current.sha == sha:
            return Held(number, sha, claim)
        if expired(current.claim, self.clock(), current.commit_time, self.lease, self.grace):
            return await self._advance(number, current, takeover=True)
        return Lost(number, "held", current.claim)

    async def _advance(self, number: int, current: Current, takeover: bool,
                       previous: Claim | None = None) -> Held | Lost:
        now = self.clock()
        if takeover:
            base = current.claim or self._new_claim(number)
            claim = base.taken_over_by(self.node, self.peer, self.login, now, self.lease)
        else:
            kept = previous or current.claim
            assert kept is not None  # a renewal passes the claim it holds
            claim = kept.renewed(now, self.lease)
        return await self._fast_forward(number, current.sha, claim, takeover)

    async def _fast_forward(self, number: int, parent: str, claim: Claim,
                            taken_over: bool = False) -> Held | Lost:
        """Move the ref to a new claim commit, child of ``parent``: one winner among
        concurrent updates (``force=false`` refuses anything but a fast-forward)."""
        sha = await self._commit(claim, parent)
        try:
            await self.gh.request("PATCH", self._path(f"git/refs/bzzz/claims/{number}"),
                                  json={"sha": sha, "force": False})
        except GitHubError as exc:
            if exc.status != 422:
                raise
            after = await self.read(number)
            if after is not None and after.sha == sha:  # a retried PATCH that had landed
                return Held(number, sha, claim, taken_over=taken_over)
            return Lost(number, "raced", after.claim if after else None)
        return Held(number, sha, claim, taken_over=taken_over)

    async def renew(self, held: Held) -> Held | Lost:
        """Extend our lease by fast-forwarding the ref to a child of our claim commit (no read
        first: a ref that moved refuses the fast-forward); Lost if it moved under us."""
        current = Current(held.sha, held.claim, 0.0)
        result = await self._advance(held.number, current, takeover=False, previous=held.claim)
        if isinstance(result, Lost) and result.holder is None:
            after = await self.read(held.number)
            return Lost(held.number, "held", after.claim if after else None)
        return result

    async def handoff(self, held: Held, node: str, peer: str, login: str,
                      help_entry: str) -> Held | Lost:
        """Hand the claim to a helper: fast-forward the ref to a commit naming it (one
        winner, as for any update). Returns the helper's Held (ours is gone); Lost if the
        ref moved under us."""
        claim = held.claim.taken_over_by(node, peer, login, self.clock(), self.lease, help_entry)
        return await self._fast_forward(held.number, held.sha, claim)

    async def adopt(self, number: int, sha: str) -> Held | Lost:
        """Take a claim handed to us: the ref must point at ``sha`` and name us."""
        current = await self.read(number)
        if current is None or current.sha != sha or current.claim is None or \
                (current.claim.node, current.claim.peer) != (self.node, self.peer):
            return Lost(number, "not handed to us", current.claim if current else None)
        return Held(number, sha, current.claim)

    async def record_help(self, held: Held, entry: str) -> Held | Lost:
        """Add a help request to the claim (a renewal carrying it)."""
        claim = held.claim.with_help(entry).renewed(self.clock(), self.lease)
        return await self._fast_forward(held.number, held.sha, claim)

    async def ref_sha(self, number: int) -> str | None:
        try:
            ref = (await self.gh.request("GET", self._path(f"git/ref/bzzz/claims/{number}"))).data
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        sha: str = ref["object"]["sha"]
        return sha

    async def still_ours(self, held: Held) -> bool:
        return await self.ref_sha(held.number) == held.sha

    def command_lock(self) -> CommandLock:
        """Commands are taken once, by whoever creates their ref (intake.CommandLock)."""
        return CommandLock(self.gh, self.repo, self.node, self._base_commit)

    async def release(self, held: Held) -> bool:
        """Delete the claim ref if it is still ours (True), else leave it (False). While our
        lease is valid with a margin nobody can have taken over, so no check is needed."""
        safe = self.clock() < held.claim.lease_expires - self.lease / 3
        if not safe and not await self.still_ours(held):
            return False
        try:
            await self.gh.request("DELETE", self._path(f"git/refs/bzzz/claims/{held.number}"))
        except GitHubError as exc:
            if exc.status == 422:  # already gone
                return False
            raise
        return True
