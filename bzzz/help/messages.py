"""Help requests and responses (a protocol core, no I/O; signing passed in).

A request is the origin's signed ``body`` (msgpack bytes, signed as sent) plus a chain of
hops. Each hop ``(by, to, sig)`` is signed by ``by`` over a digest of everything before it and
the peer it is addressed to, so:

- the hop count is the length of a signature chain: nobody can drop hops and re-sign, because
  a receiver only accepts a chain whose last hop is addressed to itself by the peer it came
  from, and each hop names the next;
- nobody can rewrite the path (every hop signs the digest of the ones before);
- the origin's broadcast on gossip is hop 0 addressed to ``*``.

A request is discarded once it has been forwarded ``MAX_FORWARDS`` times (hops beyond the
first), after its deadline, when seen before, or when any signature fails.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from ..errors import InputError

MAX_FORWARDS = 3
MAX_MESSAGE = 16 * 1024
MAX_DEADLINE = 300.0  # seconds ahead a deadline may be
BROADCAST = "*"
_HOP_TAG = b"bzzz-help-hop\0"
_REQ_TAG = b"bzzz-help-request\0"
_RESP_TAG = b"bzzz-help-response\0"
_HANDOFF_TAG = b"bzzz-help-handoff\0"

Sign = Callable[[bytes], bytes]
Verify = Callable[[str, bytes, bytes], bool]  # (peer id, data, signature)


class HelpDrop(InputError):
    """A message that is dropped; ``reason`` is the counter label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Hop:
    by: str
    to: str
    sig: bytes


@dataclass(frozen=True)
class HelpRequest:
    body_bytes: bytes
    sig: bytes
    hops: tuple[Hop, ...]
    body: dict[str, Any] = field(compare=False, hash=False, default_factory=dict)

    # the body's fields
    @property
    def id(self) -> str:
        return str(self.body["id"])

    @property
    def origin(self) -> str:
        return str(self.body["origin"])

    @property
    def task(self) -> dict[str, Any]:
        task: dict[str, Any] = self.body["task"]  # a dict: checked on decoding
        return task

    @property
    def needs(self) -> list[str]:
        return list(self.body["task"].get("needs", []))

    @property
    def deadline(self) -> float:
        return float(self.body["deadline"])

    @property
    def forwards(self) -> int:
        return max(0, len(self.hops) - 1)

    def path(self) -> list[str]:
        """Every peer the request went through (origin first), broadcast excluded."""
        out = [self.origin]
        out += [h.to for h in self.hops if h.to != BROADCAST]
        return out

    def encode(self) -> bytes:
        data: bytes = msgpack.packb({"v": 1, "type": "help_request", "body": self.body_bytes,
                              "sig": self.sig, "hops": [[h.by, h.to, h.sig] for h in self.hops]},
                             use_bin_type=True)
        return data


def _digest(req_body: bytes, sig: bytes, hops: tuple[Hop, ...]) -> bytes:
    d = hashlib.blake2b(req_body + sig, digest_size=32).digest()
    for h in hops:
        d = hashlib.blake2b(d + h.by.encode() + b"\0" + h.to.encode() + b"\0" + h.sig,
                            digest_size=32).digest()
    return d


def _addrs(addrs: list[str] | None) -> list[str]:
    """Where a sender listens, as it puts it in a message: a few, of sane length."""
    return [a for a in (addrs or [])[:8] if isinstance(a, str) and len(a) <= 200]


def new_request(sign: Sign, origin: str, origin_node: str, task: dict[str, Any], reason: str,
                deadline: float, ask: int, now: float, addrs: list[str] | None = None) -> HelpRequest:
    """``addrs``: where the origin listens, so a helper answers without a DHT walk."""
    body = {"id": os.urandom(16).hex(), "origin": origin, "origin_node": origin_node,
            "task": task, "reason": reason[:500], "deadline": float(deadline), "ask": int(ask),
            "ts": float(now), "addrs": _addrs(addrs)}
    body_bytes: bytes = msgpack.packb(body, use_bin_type=True)
    return HelpRequest(body_bytes, sign(_REQ_TAG + body_bytes), (), body)


def add_hop(req: HelpRequest, sign: Sign, by: str, to: str) -> HelpRequest:
    """The request as ``by`` sends it to ``to`` (``*``: the origin's broadcast)."""
    digest = _digest(req.body_bytes, req.sig, req.hops)
    hop = Hop(by, to, sign(_HOP_TAG + digest + to.encode()))
    return HelpRequest(req.body_bytes, req.sig, req.hops + (hop,), req.body)


def _check_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise HelpDrop("malformed", "body")
    task = body.get("task")
    ok = (isinstance(body.get("id"), str) and 0 < len(body["id"]) <= 64
          and isinstance(body.get("origin"), str) and 0 < len(body["origin"]) <= 128
          and isinstance(body.get("origin_node"), str)
          and isinstance(body.get("reason"), str)
          and isinstance(body.get("deadline"), (int, float))
          and isinstance(body.get("ask"), int) and 1 <= body["ask"] <= 100
          and isinstance(body.get("ts"), (int, float))
          and isinstance(body.get("addrs", []), list)
          and all(isinstance(a, str) for a in body.get("addrs", []))
          and isinstance(task, dict) and isinstance(task.get("repo"), str)
          and isinstance(task.get("issue"), int) and isinstance(task.get("title", ""), str)
          and isinstance(task.get("needs", []), list)
          and all(isinstance(n, str) for n in task.get("needs", [])))
    if not ok:
        raise HelpDrop("malformed", "body fields")
    return body


def decode_request(data: bytes, me: str, sender: str | None, verify: Verify,
                   now: float, broadcaster: str | None = None) -> HelpRequest:
    """Check a request as received by ``me`` from ``sender`` (None: from gossip, where
    ``broadcaster``, the peer that signed the pubsub message, must be the origin). Raises
    HelpDrop with the reason to count."""
    req = _parse_request(data)
    _check_signed_path(req, verify)
    _check_arrival(req, me, sender, broadcaster)
    _check_bounds(req, now)
    return req


def _parse_request(data: bytes) -> HelpRequest:
    """The request's envelope, body and hops, each of the right shape (nothing verified)."""
    if len(data) > MAX_MESSAGE:
        raise HelpDrop("oversized", f"{len(data)} bytes")
    try:
        msg = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:  # a peer's bytes: msgpack raises many types on bad input
        raise HelpDrop("malformed", "not msgpack") from None
    if not isinstance(msg, dict) or msg.get("type") != "help_request":
        raise HelpDrop("malformed", "not a help request")
    body_bytes, sig, raw_hops = msg.get("body"), msg.get("sig"), msg.get("hops")
    if not isinstance(body_bytes, bytes) or not isinstance(sig, bytes) or \
            not isinstance(raw_hops, list) or len(raw_hops) > MAX_FORWARDS + 2:
        raise HelpDrop("malformed", "fields")
    try:
        body = _check_body(msgpack.unpackb(body_bytes, raw=False, strict_map_key=True))
    except HelpDrop:
        raise
    except Exception:  # a peer's bytes: msgpack raises many types on bad input
        raise HelpDrop("malformed", "body") from None
    hops: list[Hop] = []
    for h in raw_hops:
        if not (isinstance(h, list) and len(h) == 3 and isinstance(h[0], str)
                and isinstance(h[1], str) and isinstance(h[2], bytes)):
            raise HelpDrop("malformed", "hop")
        hops.append(Hop(h[0], h[1], h[2]))
    return HelpRequest(body_bytes, sig, tuple(hops), body)


def _check_signed_path(req: HelpRequest, verify: Verify) -> None:
    """The origin's signature, then the chain of hops: it starts at the origin, each hop
    leaves from where the last one arrived, and each is signed by the peer it leaves."""
    body_bytes, sig, hops = req.body_bytes, req.sig, req.hops
    if not verify(req.origin, _REQ_TAG + body_bytes, sig):
        raise HelpDrop("forged", "origin signature")
    if not hops:
        raise HelpDrop("malformed", "no hop")
    if hops[0].by != req.origin:
        raise HelpDrop("rewritten", "first hop not from the origin")
    for i, h in enumerate(hops):
        if i and h.by != hops[i - 1].to and hops[i - 1].to != BROADCAST:
            raise HelpDrop("rewritten", f"hop {i} does not continue the path")
        if i and h.to == BROADCAST:
            raise HelpDrop("rewritten", "only the origin broadcasts")
        if not verify(h.by, _HOP_TAG + _digest(body_bytes, sig, tuple(hops[:i])) + h.to.encode(),
                      h.sig):
            raise HelpDrop("forged", f"hop {i} signature")


def _check_arrival(req: HelpRequest, me: str, sender: str | None,
                   broadcaster: str | None) -> None:
    """The last hop is to us and from the peer that sent it; gossip carries only the
    origin's own broadcast."""
    last = req.hops[-1]
    if last.to not in (me, BROADCAST):
        raise HelpDrop("misaddressed", "not sent to us")
    if sender is not None and last.by != sender:
        raise HelpDrop("rewritten", "last hop not from the sending peer")
    if sender is None and (len(req.hops) != 1 or last.to != BROADCAST):
        raise HelpDrop("rewritten", "gossip carries only the origin's broadcast")
    if sender is None and broadcaster is not None and broadcaster != req.origin:
        raise HelpDrop("rewritten", "broadcast by a peer that is not its origin")


def _check_bounds(req: HelpRequest, now: float) -> None:
    """No loop, not too many forwards, a deadline neither past nor too far ahead."""
    path = req.path()
    if len(set(path)) != len(path):
        raise HelpDrop("loop", "a peer twice on the path")
    if req.forwards > MAX_FORWARDS:
        raise HelpDrop("hop_limit", f"{req.forwards} forwards")
    if now > req.deadline:
        raise HelpDrop("expired", "past its deadline")
    if req.deadline > now + MAX_DEADLINE:
        raise HelpDrop("malformed", "deadline too far ahead")


# ---------------------------------------------------------------------- responses, handoffs

def _signed(kind: str, tag: bytes, sign: Sign, body: dict[str, Any]) -> bytes:
    body_bytes: bytes = msgpack.packb(body, use_bin_type=True)
    data: bytes = msgpack.packb({"v": 1, "type": kind, "body": body_bytes,
                                 "sig": sign(tag + body_bytes)}, use_bin_type=True)
    return data


def _open_signed(data: bytes, kind: str, tag: bytes, signer_field: str,
                 verify: Verify) -> dict[str, Any]:
    if len(data) > MAX_MESSAGE:
        raise HelpDrop("oversized", f"{len(data)} bytes")
    try:
        msg = msgpack.unpackb(data, raw=False, strict_map_key=True)
        body = msgpack.unpackb(msg["body"], raw=False, strict_map_key=True)
    except Exception:  # a peer's bytes: msgpack raises many types; msg may be no map
        raise HelpDrop("malformed", kind) from None
    if not isinstance(msg, dict) or msg.get("type") != kind or not isinstance(body, dict) \
            or not isinstance(body.get(signer_field), str) or not isinstance(msg.get("sig"), bytes):
        raise HelpDrop("malformed", kind)
    if not verify(body[signer_field], tag + msg["body"], msg["sig"]):
        raise HelpDrop("forged", f"{kind} signature")
    return body


def message_type(data: bytes) -> str | None:
    try:
        msg = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:  # a peer's bytes: msgpack raises many types on bad input
        return None
    kind = msg.get("type") if isinstance(msg, dict) else None
    return kind if isinstance(kind, str) else None


def encode_response(sign: Sign, request_id: str, helper: str, helper_node: str, accept: bool,
                    reason: str, now: float, login: str = "",
                    addrs: list[str] | None = None, hops: int = 0) -> bytes:
    return _signed("help_response", _RESP_TAG, sign, {
        "request": request_id, "helper": helper, "helper_node": helper_node,
        "accept": bool(accept), "reason": reason[:300], "login": login, "ts": float(now),
        "hops": int(hops),
        "addrs": _addrs(addrs)})


def decode_response(data: bytes, verify: Verify) -> dict[str, Any]:
    body = _open_signed(data, "help_response", _RESP_TAG, "helper", verify)
    if not isinstance(body.get("request"), str) or not isinstance(body.get("accept"), bool):
        raise HelpDrop("malformed", "response fields")
    return body


def encode_handoff(sign: Sign, request_id: str, origin: str, helper: str, repo: str,
                   issue: int, sha: str, now: float) -> bytes:
    return _signed("help_handoff", _HANDOFF_TAG, sign, {
        "request": request_id, "origin": origin, "helper": helper, "repo": repo,
        "issue": int(issue), "sha": sha, "ts": float(now)})


def decode_handoff(data: bytes, verify: Verify) -> dict[str, Any]:
    body = _open_signed(data, "help_handoff", _HANDOFF_TAG, "origin", verify)
    if not (isinstance(body.get("repo"), str) and isinstance(body.get("issue"), int)
            and isinstance(body.get("sha"), str) and isinstance(body.get("helper"), str)):
        raise HelpDrop("malformed", "handoff fields")
    return body
