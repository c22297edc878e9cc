"""What a node does with a help request (a core, no I/O): drop it, offer help, or forward.

- Drops are counted by reason (``malformed``, ``oversized``, ``forged``, ``rewritten``,
  ``misaddressed``, ``loop``, ``hop_limit``, ``expired``, ``duplicate``).
- A node that can take the task (it has every needed capability and a free slot, and is not
  the origin) offers; the offer goes to the origin directly.
- A node that cannot forwards to its best candidates not yet on the path, unless the request
  was already forwarded ``MAX_FORWARDS`` times: so a request reaches at most
  ``fanout * (1 + fanout + fanout^2 + fanout^3)`` nodes, and each node handles it once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ..p2p.capabilities import PeerView, matches
from .messages import MAX_FORWARDS, HelpDrop, HelpRequest, Verify, decode_request


def rank(req_needs: Sequence[str], candidates: Sequence[PeerView], exclude: set[str],
         k: int) -> list[str]:
    """Best first: can do the task, then free slots, then fresh, then peer id (stable)."""
    def score(c: PeerView) -> tuple[bool, int, int, float, str]:
        free = c.max_tasks - c.running
        return (not matches(req_needs, c.capabilities), -(free > 0), c.running, c.age, c.peer_id)
    return [c.peer_id for c in sorted(candidates, key=score) if c.peer_id not in exclude][:k]


class Action(StrEnum):
    """What a node does with a help request it received."""

    DROP = "drop"  # junk, a duplicate or our own: not relayed, counted
    OFFER = "offer"  # we can do it: offer to the origin
    FORWARD = "forward"  # we cannot: pass it on (hops left)
    DECLINE = "decline"  # we cannot, and nobody is left to ask


@dataclass
class Verdict:
    action: Action
    request: HelpRequest | None = None
    reason: str = ""
    forward_to: tuple[str, ...] = ()


class HelpRouter:
    def __init__(self, me: str, verify: Verify, *, fanout: int = 3) -> None:
        self.me = me
        self.verify = verify
        self.fanout = fanout
        self.seen: dict[str, float] = {}  # request id -> its deadline
        self.drops: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()  # received, offered, forwarded, declined

    def _forget_expired(self, now: float) -> None:
        if len(self.seen) > 256:
            for rid in [r for r, d in self.seen.items() if d < now]:
                del self.seen[rid]

    def mark_seen(self, req: HelpRequest) -> None:
        self.seen[req.id] = req.deadline

    def receive(self, data: bytes, sender: str | None, now: float, *,
                capabilities: Sequence[str], running: int, max_tasks: int,
                candidates: Sequence[PeerView], broadcaster: str | None = None) -> Verdict:
        """``sender``: the peer a stream came from; ``broadcaster``: the signer of a gossip
        message (None for a stream). A drop without a request is junk; one with a request
        (ours, or seen before) is a valid request that needs nothing more."""
        self._forget_expired(now)
        try:
            req = decode_request(data, self.me, sender, self.verify, now, broadcaster)
        except HelpDrop as exc:
            self.drops[exc.reason] += 1
            return Verdict(Action.DROP, reason=str(exc))
        if req.id in self.seen:
            self.drops["duplicate"] += 1
            return Verdict(Action.DROP, req, "duplicate")
        self.seen[req.id] = req.deadline
        self.counts["received"] += 1
        if req.origin == self.me:
            self.drops["own"] += 1
            return Verdict(Action.DROP, req, "our own request")
        if matches(req.needs, capabilities) and running < max_tasks:
            self.counts["offered"] += 1
            return Verdict(Action.OFFER, req)
        why = "busy" if matches(req.needs, capabilities) else "lacks " + ", ".join(
            n for n in req.needs if not matches([n], capabilities))
        if req.forwards >= MAX_FORWARDS:
            self.drops["hop_limit"] += 1
            return Verdict(Action.DECLINE, req, f"{why}; not forwarded (hop limit)")
        targets = rank(req.needs, candidates, set(req.path()) | {self.me}, self.fanout)
        if not targets:
            return Verdict(Action.DECLINE, req, f"{why}; nobody left to forward to")
        self.counts["forwarded"] += 1
        return Verdict(Action.FORWARD, req, why, tuple(targets))
