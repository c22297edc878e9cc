"""Which agent decisions may speak for a task, and whose log a log is.

A signed log proves who wrote an entry, not that its author had any business writing it: a
peer could log "claimed", "pull_request" or "reported succeeded" for any issue. So the monitor
lets a decision about a task change the task (its state, its pull request, a job's callbacks)
only when it *counts*:

- a claim (``claimed``, ``taken_over``) counts when GitHub's claim lock says this peer held
  that task at that generation: the ref ``refs/bzzz/claims/<n>`` names the peer now with that
  generation or a later one (renewals), or the claim commit the entry names (``claim``: its
  sha; the ref is deleted once the task is released, the commit stays) is a claim of this
  task naming this peer at this generation. Creating claim commits and refs needs write access
  to the repository, so a peer that cannot write there cannot make a claim count; a peer that
  can write could move the ref anyway, so this is as strong as the lock itself.
- any other decision about a task counts when the same log's latest claim of that task
  counted (the holder, and afterwards the one that delivered it: ``merged``, ``pull_closed``);
- a ``/bzzz cancel`` command an agent logs counts when GitHub shows that comment, by that
  author, on that issue, and the author may push (the permission API);
- a decision dated more than ``FUTURE_SKEW`` seconds ahead of the monitor's clock counts never
  (it would pin the task's state until then).

Decisions that do not count stay in the log and its index (the timeline shows them); they are
counted by reason. Each claim is asked of GitHub once per (task, peer, generation) and the
answer cached, never once per entry: the indexer resolves the claims of a batch before
indexing it (:meth:`Trust.prepare`), and the index asks the cache (:meth:`Trust.claim`).

Whose log a log is: an agent's log is signed with its libp2p identity key (the same Ed25519
seed), and a log's key is the hash of its manifest, which holds that public key. So the peer
a log belongs to is derived from the log itself (:func:`log_peer`), and an announcement of a
``log_key`` is believed only from that peer (:func:`owns`): nobody else can announce a log as
theirs, whoever relays or serves it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import trio

from ..github.client import GitHubClient, GitHubError, RateLimited, Unavailable
from ..claim.lease import Claim, parse_claim
from ..hyperlog.crypto import core_key
from ..kinds import Decision
from .state import STATE_KINDS

log = logging.getLogger("bzzz.monitor.trust")

FUTURE_SKEW = 300.0  # seconds a decision may be ahead of the monitor's clock
CLAIMS = frozenset({Decision.CLAIMED, Decision.TAKEN_OVER})
# decisions about a task that count only from the log of its (verified) claim holder
HELD = (STATE_KINDS | {Decision.RESULT, Decision.PULL_REQUEST}) - CLAIMS
COMMAND = Decision.COMMAND
CACHE = 100_000  # verdicts kept
CHECK_TIMEOUT = 20.0  # seconds for the GitHub checks of one batch
RETRY_AFTER = 5.0  # seconds before a batch whose checks GitHub did not answer is tried again
CheckKey = tuple[str | int, ...]  # what a verdict is cached under


class Writers(Protocol):
    """Who may push to a repository (bzzz/claim/intake.py's Permissions)."""

    async def writer(self, repo: str, login: str) -> bool: ...


# ---------------------------------------------------------------------- whose log


@lru_cache(maxsize=4096)
def _public_key_of(peer: str) -> bytes | None:
    from libp2p.peer.id import ID
    try:
        key = ID.from_base58(peer).extract_public_key()
    except ValueError:  # not base58 (UnicodeEncodeError too: not even ASCII)
        return None
    return key.to_bytes() if key is not None else None  # None: no key inside the id


@lru_cache(maxsize=4096)
def log_key_of(peer: str) -> str | None:
    """The key (hex) of the log a peer signs with its identity, or None for a peer id that
    does not embed an Ed25519 key."""
    pk = _public_key_of(peer)
    return core_key(pk).hex() if pk is not None and len(pk) == 32 else None


def owns(peer: str, log_key: str) -> bool:
    """Whether ``log_key`` (hex) is the log signed by ``peer``'s identity."""
    return bool(log_key) and log_key_of(peer) == log_key.lower()


def log_peer(public_key: bytes) -> str:
    """The peer id whose identity key signs a log with this public key."""
    from libp2p.crypto.ed25519 import Ed25519PublicKey
    from libp2p.peer.id import ID
    return ID.from_pubkey(Ed25519PublicKey.from_bytes(public_key)).to_base58()


# ---------------------------------------------------------------------- the checks


@dataclass(frozen=True)
class ClaimCheck:
    repo: str  # as the entry spells it (the cache key lowers it)
    issue: int
    peer: str
    generation: int
    sha: str | None

    @property
    def key(self) -> CheckKey:
        return ("claim", self.repo.lower(), self.issue, self.peer, self.generation)


@dataclass(frozen=True)
class CommandCheck:
    repo: str
    issue: int
    comment: int
    verb: str
    author: str

    @property
    def key(self) -> CheckKey:
        return ("command", self.repo.lower(), self.issue, self.comment, self.verb,
                self.author.lower())


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ts(entry: Mapping[str, Any]) -> float:
    ts = entry.get("ts")
    return float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else 0.0


def check_of(peer: str, entry: Mapping[str, Any]) -> ClaimCheck | CommandCheck | None:
    """What must be asked of GitHub before ``entry`` (from ``peer``'s log) can count, or None
    (nothing to ask: it counts or not on its own)."""
    repo, issue, kind = entry.get("repo"), _int(entry.get("issue")), entry.get("type")
    if not isinstance(repo, str) or issue is None or not peer:
        return None
    if kind in CLAIMS:
        gen = _int(entry.get("generation"))
        sha = entry.get("claim")
        if gen is None:
            return None
        return ClaimCheck(repo, issue, peer, gen,
                          sha if isinstance(sha, str) and sha.isalnum() and len(sha) <= 64
                          else None)
    if kind == COMMAND and entry.get("verb") == "cancel":
        comment, author = _int(entry.get("comment")), entry.get("by")
        if comment is None or not isinstance(author, str) or not author:
            return None
        return CommandCheck(repo, issue, comment, "cancel", author)
    return None


class Trust:
    """The verdict cache, filled from GitHub by :meth:`prepare`; asked by the index."""

    def __init__(self, gh: GitHubClient | None, clock: Callable[[], float] = time.time,
                 permissions: Writers | None = None) -> None:
        self.gh = gh
        self.clock = clock
        if permissions is None and gh is not None:
            from ..claim.intake import Permissions
            permissions = Permissions(gh)
        self.perms = permissions
        self._verdicts: OrderedDict[CheckKey, bool] = OrderedDict()
        self.refused: Counter[str] = Counter()  # decisions that did not count, by reason
        self.lookups = 0  # checks asked of GitHub

    # ------------------------------------------------------------------ asked by the index

    def timely(self, entry: Mapping[str, Any]) -> bool:
        return _ts(entry) <= self.clock() + FUTURE_SKEW

    def verdict(self, peer: str, entry: Mapping[str, Any]) -> bool:
        """The cached answer for a claim or command entry (False when none: not prepared,
        malformed, or refused)."""
        check = check_of(peer, entry)
        return check is not None and self._verdicts.get(check.key, False)

    def refuse(self, reason: str) -> None:
        self.refused[reason] += 1

    # ------------------------------------------------------------------ asked of GitHub

    def pending(self, peer: str, entries: Iterable[Mapping[str, Any] | None]
                ) -> list[tuple[int, ClaimCheck | CommandCheck]]:
        """(position, check) of the entries whose check is not cached yet."""
        out: list[tuple[int, ClaimCheck | CommandCheck]] = []
        seen: set[CheckKey] = set()
        for i, entry in enumerate(entries):
            if entry is None:
                continue
            check = check_of(peer, entry)
            if check is None or check.key in self._verdicts or check.key in seen \
                    or not self.timely(entry):
                continue
            seen.add(check.key)
            out.append((i, check))
        return out

    async def prepare(self, peer: str, entries: Sequence[Mapping[str, Any] | None]
                      ) -> int | None:
        """Ask GitHub what the batch's claims and commands need. Returns None when every
        check is answered, else the position of the first entry whose check GitHub did not
        answer (unavailable, rate-limited, too slow): index only up to there, retry later."""
        todo = self.pending(peer, entries)
        if not todo:
            return None
        if self.gh is None:  # nothing to check against: no claim can count
            for _, check in todo:
                self._remember(check.key, False)
            return None
        unanswered: list[int] = []

        async def one(pos: int, check: ClaimCheck | CommandCheck) -> None:
            try:
                ok = await (self._claim(check) if isinstance(check, ClaimCheck)
                            else self._command(check))
            except (GitHubError, Unavailable, OSError) as exc:
                log.info("a claim could not be checked yet", extra={
                    "repo": check.repo, "issue": check.issue, "error": str(exc)[:200]})
                unanswered.append(pos)
                return
            self._remember(check.key, ok)

        with trio.move_on_after(CHECK_TIMEOUT) as scope:
            async with trio.open_nursery() as nursery:
                for pos, check in todo[:16]:  # a few at a time: the rest with the next batch
                    nursery.start_soon(one, pos, check)
        if scope.cancelled_caught:
            unanswered += [pos for pos, c in todo[:16] if c.key not in self._verdicts]
        if len(todo) > 16:
            unanswered.append(todo[16][0])
        return min(unanswered) if unanswered else None

    def _remember(self, key: CheckKey, ok: bool) -> None:
        self._verdicts[key] = ok
        self._verdicts.move_to_end(key)
        while len(self._verdicts) > CACHE:
            self._verdicts.popitem(last=False)

    async def _get(self, path: str) -> Any | None:
        """GET a GitHub document; None when it does not exist or the monitor may not read it
        (then nothing it would prove counts)."""
        assert self.gh is not None  # prepare asks nothing of GitHub without a client
        self.lookups += 1
        try:
            return (await self.gh.request("GET", path)).data
        except GitHubError as exc:
            if isinstance(exc, (Unavailable, RateLimited)) or exc.status not in (401, 403, 404, 409, 410, 422):
                raise
            return None

    async def _claim_at(self, repo: str, sha: str) -> Claim | None:
        commit = await self._get(f"/repos/{repo}/git/commits/{sha}")
        return parse_claim(commit.get("message", "")) if isinstance(commit, dict) else None

    async def _claim(self, c: ClaimCheck) -> bool:
        task = f"{c.repo}#{c.issue}".lower()

        def names(claim: Claim | None, exact: bool) -> bool:
            return claim is not None and claim.task.lower() == task and claim.peer == c.peer \
                and (claim.generation == c.generation if exact
                     else claim.generation >= c.generation)

        ref = await self._get(f"/repos/{c.repo}/git/ref/bzzz/claims/{c.issue}")
        head = ((ref or {}).get("object") or {}).get("sha") if isinstance(ref, dict) else None
        if isinstance(head, str) and names(await self._claim_at(c.repo, head), exact=False):
            return True
        if c.sha and c.sha != head:
            return names(await self._claim_at(c.repo, c.sha), exact=True)
        return False

    async def _command(self, c: CommandCheck) -> bool:
        doc = await self._get(f"/repos/{c.repo}/issues/comments/{c.comment}")
        if not isinstance(doc, dict):
            return False
        user = (doc.get("user") or {}).get("login") or ""
        on = str(doc.get("issue_url") or "").rstrip("/").rsplit("/", 1)[-1]
        body = str(doc.get("body") or "")
        if user.lower() != c.author.lower() or on != str(c.issue) or \
                not any(line.strip().startswith(f"/bzzz {c.verb}") for line in body.splitlines()):
            return False
        assert self.perms is not None  # set whenever there is a client (see prepare)
        return await self.perms.writer(c.repo, user)
