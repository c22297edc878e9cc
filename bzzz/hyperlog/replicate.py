"""Log replication, ``/bzzz/hyperlog/1.0.0``: any holder of a verified copy serves it.

Messages are msgpack maps, each behind a 4-byte big-endian length; one request, one answer.

- ``{"op": "head", "key", ["after": n, "wait": s]}`` -> ``{"op": "head", "public_key",
  "length", "fork", "tree_hash", "signature", "roots": [[index, size, hash], ...]}``, or
  ``{"op": "conflict", ...evidence}`` for a frozen log, or ``{"op": "unknown"}``. With
  ``after`` the answer waits (up to ``wait`` seconds) for a head longer than ``n``: following.
  With ``near`` (a length), the answer may instead be a head the peer stored at or after
  that length, for a reader that seals a long copy in steps.
- ``{"op": "blocks", "key", "start", "end", "length"}`` -> ``{"op": "blocks", "start",
  "blocks": [...], "proof": [[index, size, hash], ...]}``: blocks from ``start`` (as many as
  fit in a message, at least one) proven against the roots of the head at ``length``.
- ``{"op": "upgrade", "key", "from", "length"}`` -> ``{"op": "upgrade", "proof": [...]}``:
  the nodes that lift the roots at ``from`` to those at ``length`` (the log only grew).
- ``{"op": "list"}`` -> ``{"op": "list", "keys": [...]}``: the logs this peer serves.

Every wait has a deadline: a reader gives up on a stream whose answer does not come within
REPLY_TIMEOUT (after the ``wait`` it asked for, when following), and a server on one whose
next request does not come within SERVE_IDLE; the caller opens a new stream. A connection
that died without closing its streams (a peer killed and back under another address) so
costs one deadline, never a follower waiting for ever.

The reader checks everything before it stores anything: the key against the manifest, the
roots against the tree hash, the signature, every block range and every upgrade against the
signed roots. Anything wrong raises :class:`PeerMisbehaved` (the caller drops the peer).
Two valid signatures over different trees of one log (its key was used twice) freeze that log:
the evidence is kept and served instead of the log, so every replica freezes it.
"""

from __future__ import annotations

import os
from collections import Counter
from contextlib import aclosing
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import msgpack
import trio

from . import flat
from .crypto import Verifier, core_key, leaf_hash, tree_hash
from .proof import ProofError, climb, needed, range_nodes
from .store import Head, Hyperlog, LogError
from .tree import Node

PROTOCOL = "/bzzz/hyperlog/1.0.0"
MAX_MESSAGE = 9 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024  # per message; measured fastest over py-libp2p's yamux
CHUNK_BLOCKS = 8192
MAX_WAIT = 30.0
REPLY_TIMEOUT = 15.0  # seconds an answer may take beyond the wait asked for
SERVE_IDLE = MAX_WAIT + 2 * REPLY_TIMEOUT  # seconds a server waits for the next request
SEAL_STEP = 16384  # blocks: how far a long copy goes between durable seals
CONFLICT_FILE = "conflict"
Msg = dict[str, Any]  # one message of the protocol, a msgpack map


class ReplicationError(LogError):
    pass


class PeerMisbehaved(ReplicationError):
    """A bad proof, bad signature, malformed or oversized message: drop that peer."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class LogConflict(ReplicationError):
    pass


class ChannelClosed(ReplicationError):
    pass


class ChannelTimeout(ChannelClosed):
    """No message within the deadline: the stream is given up."""


# ---------------------------------------------------------------------- framing

class Channel:
    """Length-prefixed msgpack over any byte stream (``read(n)`` returns up to n bytes,
    ``b""`` at the end; ``write(data)``)."""

    def __init__(self, read: Callable[[int], Awaitable[bytes]],
                 write: Callable[[bytes], Awaitable[Any]]) -> None:
        self._read, self._write = read, write
        self._buf = bytearray()
        self.bytes_in = 0

    async def _exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = await self._read(max(65536, n - len(self._buf)))
            if not chunk:
                raise ChannelClosed("the stream ended")
            self._buf += chunk
            self.bytes_in += len(chunk)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def send(self, msg: Msg) -> None:
        data: bytes = msgpack.packb(msg, use_bin_type=True)
        await self._write(len(data).to_bytes(4, "big") + data)

    async def recv(self, timeout: float | None = None) -> Msg:  # noqa: ASYNC109 -- ChannelTimeout
        """The next message; ChannelTimeout if it has not come whole within ``timeout`` (the
        protocol's own error, which its callers handle: not a caller's cancel scope)."""
        if timeout is None:
            return await self._recv()
        with trio.move_on_after(timeout):
            return await self._recv()
        raise ChannelTimeout(f"no answer within {timeout:g} s")

    async def _recv(self) -> Msg:
        size = int.from_bytes(await self._exactly(4), "big")
        if size > MAX_MESSAGE:
            raise PeerMisbehaved("oversized", f"a message of {size} bytes")
        try:
            msg = msgpack.unpackb(await self._exactly(size), raw=False, strict_map_key=True)
        except ReplicationError:
            raise
        except Exception as exc:  # msgpack raises many types on bad input
            raise PeerMisbehaved("malformed", f"not msgpack ({type(exc).__name__})") from exc
        if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
            raise PeerMisbehaved("malformed", "not a message")
        return msg


def _nodes_out(nodes: list[Node]) -> list[list[int | bytes]]:
    return [[n.index, n.size, n.hash] for n in nodes]


def _nodes_in(raw: Any, limit: int = 4096) -> list[Node]:
    if not isinstance(raw, list) or len(raw) > limit:
        raise PeerMisbehaved("malformed", "node list")
    out: list[Node] = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], int)
                and isinstance(item[1], int) and isinstance(item[2], bytes)
                and len(item[2]) == 32 and item[0] >= 0 and item[1] >= 0):
            raise PeerMisbehaved("malformed", "node")
        out.append(Node(item[0], item[1], item[2]))
    return out


def _head_out(h: Head) -> list[int | bytes]:
    return [h.length, h.fork, h.tree_hash, h.signature]


def _head_in(raw: Any) -> Head:
    if not (isinstance(raw, list) and len(raw) == 4 and isinstance(raw[0], int)
            and isinstance(raw[1], int) and isinstance(raw[2], bytes) and len(raw[2]) == 32
            and isinstance(raw[3], bytes) and len(raw[3]) == 64 and raw[0] >= 0 and raw[1] >= 0):
        raise PeerMisbehaved("malformed", "head")
    return Head(raw[0], raw[1], raw[2], raw[3])


# ---------------------------------------------------------------------- conflicts

@dataclass(frozen=True)
class Conflict:
    """Proof that a key signed two different histories: a head at ``short.length`` whose
    tree differs from the tree at that length inside the signed ``long`` head (roots of
    ``short.length`` in the long tree, lifted to the long head's roots by ``proof``)."""

    public_key: bytes
    short: Head
    long: Head
    alt_roots: list[Node]  # the long history's roots at short.length
    long_roots: list[Node]
    proof: list[Node]

    def to_msg(self) -> Msg:
        return {"op": "conflict", "public_key": self.public_key, "short": _head_out(self.short),
                "long": _head_out(self.long), "alt_roots": _nodes_out(self.alt_roots),
                "long_roots": _nodes_out(self.long_roots), "proof": _nodes_out(self.proof)}

    @classmethod
    def from_msg(cls, msg: Msg) -> "Conflict":
        pk = msg.get("public_key")
        if not isinstance(pk, bytes) or len(pk) != 32:
            raise PeerMisbehaved("malformed", "conflict key")
        return cls(pk, _head_in(msg.get("short")), _head_in(msg.get("long")),
                   _nodes_in(msg.get("alt_roots")), _nodes_in(msg.get("long_roots")),
                   _nodes_in(msg.get("proof")))

    def valid(self) -> bool:
        v = Verifier(self.public_key)
        s, lg = self.short, self.long
        if s.fork != lg.fork or s.length > lg.length:
            return False
        if not (v.verify_head(s.tree_hash, s.length, s.fork, s.signature)
                and v.verify_head(lg.tree_hash, lg.length, lg.fork, lg.signature)):
            return False
        if [r.index for r in self.alt_roots] != flat.full_roots(2 * s.length) or \
                [r.index for r in self.long_roots] != flat.full_roots(2 * lg.length):
            return False
        alt = tree_hash((r.index, r.size, r.hash) for r in self.alt_roots)
        if alt == s.tree_hash:
            return False  # the same history
        if tree_hash((r.index, r.size, r.hash) for r in self.long_roots) != lg.tree_hash:
            return False
        try:
            climb(self.alt_roots, self.long_roots, self.proof)
        except ProofError:
            return False
        return True

    def save(self, path: Path) -> None:
        from ..fsutil import write_synced
        write_synced(path / CONFLICT_FILE, msgpack.packb(self.to_msg(), use_bin_type=True),
                     mode=0o644)

    @classmethod
    def load(cls, path: Path) -> "Conflict | None":
        try:
            msg = msgpack.unpackb((path / CONFLICT_FILE).read_bytes(), raw=False)
            c = cls.from_msg(msg)
        except (OSError, ValueError, ReplicationError, msgpack.UnpackException):
            return None
        return c if c.valid() else None


def conflict_from(log: Hyperlog, theirs: Head) -> Conflict | None:
    """Evidence, if ``theirs`` (validly signed, not longer than our verified sealed log)
    contradicts what we hold; None when it agrees."""
    ours = log.head
    if ours is None or theirs.length > ours.length:
        return None
    alt = log.roots_at(theirs.length)
    if tree_hash((r.index, r.size, r.hash) for r in alt) == theirs.tree_hash:
        return None
    long_roots = log.roots_at(ours.length)
    proof = [log.node(i) for i in needed([r.index for r in alt], [r.index for r in long_roots])]
    c = Conflict(log.public_key, theirs, ours, alt, long_roots, proof)
    return c if c.valid() else None


# ---------------------------------------------------------------------- serving

class LogServer:
    """Serves every log it holds: its own and the replicas it verified."""

    def __init__(self) -> None:
        self.logs: dict[bytes, Hyperlog] = {}
        self.conflicts: dict[bytes, Conflict] = {}
        self.served: Counter[str] = Counter()
        self._grown: dict[bytes, trio.Event] = {}  # followers waiting for a longer head
        self._token: trio.lowlevel.TrioToken | None = None

    def add(self, log: Hyperlog) -> None:
        self.logs[log.key] = log
        log.listeners.append(partial(self._poke, log.key))

    def _poke(self, key: bytes) -> None:
        """A log got a new head (called from whatever thread wrote it)."""
        if self._token is not None:
            try:
                self._token.run_sync_soon(self._wake, key)
            except trio.RunFinishedError:
                pass

    def _wake(self, key: bytes) -> None:
        event = self._grown.pop(key, None)
        if event is not None:
            event.set()

    def freeze(self, key: bytes, conflict: Conflict) -> None:
        self.conflicts[key] = conflict

    async def serve(self, channel: Channel) -> None:
        """Answer requests until the stream ends."""
        while True:
            try:
                req = await channel.recv(SERVE_IDLE)
            except ChannelClosed:
                return
            async with aclosing(self.respond(req)) as answers:
                async for answer in answers:
                    with trio.move_on_after(SERVE_IDLE) as scope:
                        await channel.send(answer)
                    if scope.cancelled_caught:
                        return  # the reader stopped reading

    async def respond(self, req: Msg) -> AsyncGenerator[Msg, None]:
        """The answers to one request: one, or for ``blocks`` with ``all`` the whole range,
        chunk after chunk (the stream's window paces them)."""
        answer = await self.answer(req)
        yield answer
        if req.get("op") == "blocks" and req.get("all") is True:
            while answer.get("op") == "blocks":
                nxt = answer["start"] + len(answer["blocks"])
                if nxt >= int(req["end"]):
                    return
                answer = await self.answer({**req, "start": nxt})
                yield answer

    async def answer(self, req: Msg) -> Msg:
        op = req["op"]
        self.served[op] += 1
        if op == "list":
            return {"op": "list", "keys": list(self.logs)}
        key = req.get("key")
        if key in self.conflicts:
            return self.conflicts[key].to_msg()
        log = self.logs.get(key) if isinstance(key, bytes) else None
        if log is None:
            return {"op": "unknown"}
        try:
            if op == "head":
                return await self._head(log, req)
            if op == "blocks":
                return self._blocks(log, req)
            if op == "upgrade":
                return self._upgrade(log, req)
        except (LogError, ProofError, TypeError, ValueError) as exc:
            return {"op": "error", "message": str(exc)[:200]}
        return {"op": "error", "message": f"unknown op {op[:20]!r}"}

    async def _head(self, log: Hyperlog, req: Msg) -> Msg:
        near = req.get("near")
        if isinstance(near, int) and log.head is not None and 0 < near < log.head.length:
            mid = log.head_after(near - 1)  # a head stored around there, if any
            if mid is not None:
                return self._head_msg(log, mid)
        after = req.get("after")
        if isinstance(after, int):
            self._token = trio.lowlevel.current_trio_token()
            wait = min(float(req.get("wait") or MAX_WAIT), MAX_WAIT)
            with trio.move_on_after(wait):
                while True:
                    # the event exists before the check, so a head written after the check
                    # sets it (listeners wake on every append and every replica's seal)
                    event = self._grown.setdefault(log.key, trio.Event())
                    if log.head is not None and log.head.length > after:
                        break
                    await event.wait()
        head = log.head
        if head is None:
            return {"op": "head", "public_key": log.public_key, "length": 0, "fork": 0,
                    "tree_hash": b"", "signature": b"", "roots": []}
        return self._head_msg(log, head)

    @staticmethod
    def _head_msg(log: Hyperlog, head: Head) -> Msg:
        return {"op": "head", "public_key": log.public_key, "length": head.length,
                "fork": head.fork, "tree_hash": head.tree_hash, "signature": head.signature,
                "roots": _nodes_out(log.roots_at(head.length))}

    def _blocks(self, log: Hyperlog, req: Msg) -> Msg:
        start, end, length = int(req["start"]), int(req["end"]), int(req["length"])
        head = log.head
        if head is None or not 0 <= start < end <= length <= head.length:
            raise ValueError("range outside the log")
        blocks: list[bytes] = []
        size = 0
        for i in range(start, min(end, start + CHUNK_BLOCKS)):
            data = log.get(i)  # checked against its leaf: corrupt data is never served
            if blocks and size + len(data) > CHUNK_BYTES:
                break
            blocks.append(data)
            size += len(data)
        spans = flat.spans(start, start + len(blocks))
        proof = [log.node(i) for i in needed(spans, flat.full_roots(2 * length))]
        return {"op": "blocks", "start": start, "blocks": blocks, "proof": _nodes_out(proof)}

    def _upgrade(self, log: Hyperlog, req: Msg) -> Msg:
        old, length = int(req["from"]), int(req["length"])
        head = log.head
        if head is None or not 0 < old <= length <= head.length:
            raise ValueError("upgrade outside the log")
        proof = needed(flat.full_roots(2 * old), flat.full_roots(2 * length))
        return {"op": "upgrade", "proof": _nodes_out([log.node(i) for i in proof])}


# ---------------------------------------------------------------------- reading

@dataclass
class Progress:
    length: int  # blocks verified (sealed or not)
    target: int
    bytes: int


class Replicator:
    """Copies one log from a peer into ``path``, verifying everything first. Keeps its
    verified state across calls (a dropped stream resumes where it stopped)."""

    def __init__(self, key: bytes, path: str | os.PathLike[str],
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self.key = key
        self.path = Path(path)
        self.log: Hyperlog | None = None
        self.on_progress = on_progress
        self.conflict: Conflict | None = Conflict.load(self.path)
        self.bytes = 0
        self.on_open: Callable[[Hyperlog], None] = lambda log: None  # e.g. start serving it
        self.waiting_on = ""  # what the current sync waits for (said when it stalls)

    def _ensure(self, public_key: bytes) -> Hyperlog:
        if core_key(public_key) != self.key:
            raise PeerMisbehaved("bad_key", "the manifest does not hash to the log key")
        if self.log is None:
            self.log = Hyperlog.create_replica(self.path, public_key)
            self.on_open(self.log)
        return self.log

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    async def _ask(self, ch: Channel, req: Msg, want: str) -> Msg:
        self.waiting_on = f"sending {req['op']}"
        await ch.send({**req, "key": self.key})
        wait = float(req.get("wait") or 0)
        self.waiting_on = (f"a head longer than {req['after']} (following)" if "after" in req
                           else f"the answer to {req['op']}")
        msg = await ch.recv(wait + REPLY_TIMEOUT)
        if msg["op"] == "conflict":
            await self._on_conflict(msg)
        if msg["op"] == "unknown":
            raise ReplicationError("the peer does not hold this log")
        if msg["op"] == "error":
            raise ReplicationError(f"the peer said: {str(msg.get('message'))[:200]}")
        if msg["op"] != want:
            raise PeerMisbehaved("malformed", f"expected {want}, got {msg['op'][:20]}")
        return msg

    async def _on_conflict(self, msg: Msg) -> None:
        c = Conflict.from_msg(msg)
        if core_key(c.public_key) != self.key or not c.valid():
            raise PeerMisbehaved("bad_conflict", "conflict evidence does not hold")
        self._freeze(c)

    def _freeze(self, c: Conflict) -> None:
        self.conflict = c
        self.path.mkdir(parents=True, exist_ok=True)
        c.save(self.path)
        raise LogConflict(f"log {self.key.hex()[:16]}… is frozen: its key signed two "
                          f"histories (lengths {c.short.length} and {c.long.length})")

    def _check_head(self, msg: Msg) -> tuple[Head, list[Node], Verifier]:
        pk = msg.get("public_key")
        if not isinstance(pk, bytes) or len(pk) != 32:
            raise PeerMisbehaved("malformed", "public key")
        log = self._ensure(pk)
        length = msg.get("length")
        if not isinstance(length, int) or length < 0:
            raise PeerMisbehaved("malformed", "length")
        if length == 0:
            return Head(0, 0, b"", b""), [], log.verifier
        head = _head_in([length, msg.get("fork"), msg.get("tree_hash"), msg.get("signature")])
        roots = _nodes_in(msg.get("roots"))
        if [r.index for r in roots] != flat.full_roots(2 * length):
            raise PeerMisbehaved("bad_proof", "roots do not fit the length")
        if tree_hash((r.index, r.size, r.hash) for r in roots) != head.tree_hash:
            raise PeerMisbehaved("bad_proof", "roots do not hash to the tree hash")
        if not log.verifier.verify_head(head.tree_hash, head.length, head.fork, head.signature):
            raise PeerMisbehaved("bad_signature", f"head at length {length}")
        return head, roots, log.verifier

    async def sync(self, ch: Channel, *, follow: bool = False, wait: float = 25.0) -> int:
        """Bring the copy up to the peer's head (and keep following if asked). Returns the
        verified length."""
        if self.conflict is not None:
            raise LogConflict(f"log {self.key.hex()[:16]}… is frozen (conflict on record)")
        after: int | None = None
        while True:
            req: Msg = {"op": "head"}
            if after is not None:
                req.update(after=after, wait=wait)
            head, roots, _ = self._check_head(await self._ask(ch, req, "head"))
            log = self.log
            assert log is not None
            # a long way to go: seal in steps at heads the peer stored on the way, so an
            # interrupted copy keeps what it verified even across restarts
            while head.length - log.length > SEAL_STEP:
                mid, mid_roots, _ = self._check_head(await self._ask(
                    ch, {"op": "head", "near": log.length + SEAL_STEP}, "head"))
                if not log.length < mid.length < head.length:
                    break
                await self._catch_up(ch, log, mid, mid_roots, target=head.length)
            if head.length:
                await self._catch_up(ch, log, head, roots)
            if not follow:
                return log.length
            after = max(head.length, log.length)

    async def _catch_up(self, ch: Channel, log: Hyperlog, head: Head, roots: list[Node],
                        target: int | None = None) -> None:
        have = log.length  # verified, possibly past the last seal
        if head.length <= have:
            sealed = log.head.length if log.head else 0
            if head.length <= sealed:
                c = conflict_from(log, head)
                if c is not None:
                    self._freeze(c)
            elif log.tree_hash_at(head.length) != head.tree_hash:
                raise PeerMisbehaved("bad_proof", "a head that our verified blocks contradict")
            if head.length == have and log.unsealed():
                log.ingest([], head)  # seal what we verified earlier
            return
        if have:
            up = await self._ask(ch, {"op": "upgrade", "from": have, "length": head.length},
                                 "upgrade")
            try:
                climb(log.roots_at(have), roots, _nodes_in(up.get("proof")))
            except ProofError as exc:
                raise PeerMisbehaved("bad_proof", f"upgrade: {exc}") from None
        pos = have
        # one request, the answers streamed back to back (no round trip per chunk)
        await ch.send({"op": "blocks", "key": self.key, "start": pos, "end": head.length,
                       "length": head.length, "all": True})
        while pos < head.length:
            self.waiting_on = f"blocks {pos}..{head.length}"
            msg = await ch.recv(REPLY_TIMEOUT)
            if msg["op"] == "error":
                raise ReplicationError(f"the peer said: {str(msg.get('message'))[:200]}")
            blocks = msg.get("blocks")
            if msg["op"] != "blocks" or msg.get("start") != pos or not isinstance(blocks, list) \
                    or not blocks or len(blocks) > head.length - pos or \
                    not all(isinstance(b, bytes) for b in blocks):
                raise PeerMisbehaved("malformed", "blocks")
            leaves = [leaf_hash(b) for b in blocks]
            try:
                climb(range_nodes(blocks, pos, leaves), roots, _nodes_in(msg.get("proof")))
            except ProofError as exc:
                raise PeerMisbehaved("bad_proof", f"blocks {pos}..: {exc}") from None
            pos += len(blocks)
            self.bytes += sum(len(b) for b in blocks)
            log.ingest(blocks, head if pos == head.length else None, leaves)
            if self.on_progress is not None:
                self.on_progress(Progress(pos, target or head.length, self.bytes))


async def list_logs(ch: Channel) -> list[bytes]:
    await ch.send({"op": "list"})
    msg = await ch.recv(REPLY_TIMEOUT)
    keys = msg.get("keys")
    if msg["op"] != "list" or not isinstance(keys, list):
        raise PeerMisbehaved("malformed", "list")
    return [k for k in keys if isinstance(k, bytes) and len(k) == 32]

