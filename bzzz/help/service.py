"""Help requests on the wire: ``/bzzz/help/1.0.0`` streams and the ``bzzz/help/1`` topic.

A stream carries one message (4-byte length, then the message) and is closed. The origin sends
its request to its best candidates and broadcasts it on the topic for peers it does not know;
every node routes it once (bzzz/help/router.py); helpers answer the origin directly (dialling
it, through the DHT if need be). The origin waits a short while for offers; handing the task
over is the claim service's business (bzzz/claim/service.py), using :meth:`send_handoff`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import multiaddr.exceptions
import trio
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerstore import PeerStoreError

from ..kinds import Decision
from ..decisions import DecisionLog
from ..errors import closing_quietly
from ..p2p.capabilities import PeerView
from ..p2p.frames import FrameCut, FrameMalformed, FrameTooLarge, read_frame
from ..p2p.mesh import TOPIC_HELP
from .keys import signer, verify_peer
from .messages import (BROADCAST, MAX_MESSAGE, HelpDrop, HelpRequest, add_hop, decode_handoff,
                       decode_response, encode_response, message_type, new_request)
from .router import Action, HelpRouter, Verdict, rank

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from ..identity import Identity
    from ..p2p.node import P2PNode

log = logging.getLogger("bzzz.help")
HELP_PROTOCOL = TProtocol("/bzzz/help/1.0.0")
SEND_TIMEOUT = 5.0
DROP_LOG_INTERVAL = 60.0  # seconds between debug lines about dropped messages


@dataclass
class Ask:
    """One help request of ours: the answers that came back."""

    request_id: str
    task: dict[str, Any]
    sent_to: list[str]
    offers: list[dict[str, Any]] = field(default_factory=list)
    declines: list[dict[str, Any]] = field(default_factory=list)
    first_offer: trio.Event = field(default_factory=trio.Event)
    started: float = 0.0
    first_offer_at: float | None = None


class HelpService:
    def __init__(self, node: P2PNode, identity: Identity, node_id: str, decisions: DecisionLog, *,
                 capabilities: Callable[[], Sequence[str]],
                 load: Callable[[], tuple[int, int]],
                 candidates: Callable[[], list[PeerView]],
                 login: Callable[[], str] = lambda: "",
                 fanout: int = 3, broadcast: bool = True, keep_connections: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self.me = identity.peer_id.to_base58()
        self.node_id = node_id
        self.sign = signer(identity)
        self.decisions = decisions
        self.capabilities, self.load, self.candidates = capabilities, load, candidates
        self.login = login
        self.broadcast = broadcast
        # False in a sparse mesh: a connection opened just to deliver a message is closed
        # again, so answering a request does not reshape the mesh
        self.keep_connections = keep_connections
        self._opened: set[str] = set()  # peers connected to only to deliver help messages
        self.clock = clock
        self.router = HelpRouter(self.me, verify_peer, fanout=fanout)
        self.asks: dict[str, Ask] = {}
        self.sent: Counter[str] = Counter()  # messages sent, by kind
        self.send_failures = 0
        self.read_failures = 0  # streams that broke or stalled before their message was whole
        self.on_handoff: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self._nursery: trio.Nursery | None = None
        self._drop_logged_at = float("-inf")

    def _dropped(self, reason: str, sender: str | None = None) -> None:
        """A message dropped: counted by reason (``bzzz_help_dropped``), never written to the
        log, and told at debug level at most once a minute (junk must not make us write)."""
        self.router.drops[reason] += 1
        self._log_drops(reason, sender)

    def _log_drops(self, reason: str, sender: str | None) -> None:
        now = self.clock()
        if now - self._drop_logged_at >= DROP_LOG_INTERVAL:
            self._drop_logged_at = now
            log.debug("help messages dropped (latest: %s from %s); totals %s", reason,
                      sender, dict(self.router.drops))

    # ------------------------------------------------------------------ plumbing

    def _decide(self, kind: Decision, **fields: Any) -> None:
        self.decisions.append({"type": kind, "node": self.node_id, **fields})

    async def run(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.node.host.set_stream_handler(HELP_PROTOCOL, self._handle_stream)
            self.node.on_message(TOPIC_HELP, self._on_gossip)
            await self.node.subscribe(TOPIC_HELP)
            task_status.started()
            await trio.sleep_forever()

    async def _send(self, peer: str, data: bytes, kind: str,
                    addrs: Sequence[str] = ()) -> bool:
        """Deliver one message; ``addrs`` (signed by the peer itself) spare a DHT walk."""
        try:
            with trio.fail_after(SEND_TIMEOUT):
                pid = ID.from_base58(peer)
                connected = pid in self.node.host.get_connected_peers()
                if not connected and addrs:
                    self._learn(pid, addrs)
                if not connected and not self._known(pid):
                    await self._find(pid)
                if not connected and not self.keep_connections:
                    self._opened.add(peer)
                stream = await self.node.open_stream(pid, [HELP_PROTOCOL])
                await stream.write(len(data).to_bytes(4, "big") + data)
                await stream.close()
                if peer in self._opened:  # a connection of ours, only for help: close it
                    self._opened.discard(peer)
                    await self.node.host.disconnect(pid)
        except Exception as exc:  # dialling, the DHT and the stream raise many types: counted
            self.send_failures += 1
            log.debug("help message not delivered", extra={"peer": peer, "kind": kind,
                                                           "error": repr(exc)})
            return False
        self.sent[kind] += 1
        return True

    def _learn(self, pid: ID, addrs: Sequence[str]) -> None:
        from multiaddr import Multiaddr
        good = []
        for a in addrs[:8]:
            if not isinstance(a, str):  # a peer's word, not checked on decoding
                continue
            try:
                m = Multiaddr(a.split("/p2p/")[0])
            except (ValueError, multiaddr.exceptions.Error):
                continue
            if "/ip4/0.0.0.0" not in str(m):
                good.append(m)
        if good:
            self.node.host.get_peerstore().add_addrs(pid, good, 120)

    def _known(self, pid: ID) -> bool:
        try:
            return bool(self.node.host.get_peerstore().addrs(pid))
        except PeerStoreError:  # never heard of it, or expired
            return False

    async def _find(self, pid: ID) -> None:
        """A peer we never met: ask the DHT where it is."""
        info = await self.node.dht.find_peer(pid)
        if info is not None and info.addrs:
            self.node.host.get_peerstore().add_addrs(pid, info.addrs, 600)

    async def _handle_stream(self, stream: INetStream) -> None:
        sender = stream.muxed_conn.peer_id.to_base58()
        data: bytes | None = None
        try:
            with trio.fail_after(SEND_TIMEOUT):
                data = await read_frame(stream, MAX_MESSAGE)
        except (FrameTooLarge, FrameMalformed) as exc:  # the peer's message: dropped, counted
            self._dropped(exc.reason, sender)
        except (trio.TooSlowError, FrameCut):  # the stream failed, not the message: no drop
            self.read_failures += 1
            log.debug("help stream from %s ended badly", sender, exc_info=True)
        finally:
            with closing_quietly(log, "a help stream"):
                await stream.close()
        if data is None:
            return
        await self._dispatch(data, sender)

    def _on_gossip(self, signer_peer: str, data: bytes) -> bool:
        """The help topic's validator: its answer decides whether pubsub relays the message,
        so the request is checked here, before anything is forwarded; junk is refused."""
        if self._nursery is None:
            return False
        verdict = self._receive(data, None, signer_peer)
        if verdict.request is None:
            return False  # junk: dropped and counted, never relayed
        if verdict.action is not Action.DROP:
            self._nursery.start_soon(self._act, verdict)
        return True  # a valid request (ours or one seen already included) travels on

    async def _dispatch(self, data: bytes, sender: str) -> None:
        kind = message_type(data)
        if kind == "help_request":
            verdict = self._receive(data, sender, None)
            if verdict.action is not Action.DROP:
                await self._act(verdict)
        elif kind == "help_response":
            self._on_response(data, sender)
        elif kind == "help_handoff":
            await self._on_handoff(data, sender)
        else:
            self._dropped("malformed", sender)

    # ------------------------------------------------------------------ as a peer

    def _receive(self, data: bytes, sender: str | None, broadcaster: str | None) -> Verdict:
        """Check a request and decide (no I/O): junk comes back as a drop without a request;
        a valid request we do not act on (ours, seen before) as a drop with it."""
        running, max_tasks = self.load()
        verdict = self.router.receive(
            data, sender, self.clock(), capabilities=list(self.capabilities()),
            running=running, max_tasks=max_tasks, candidates=self.candidates(),
            broadcaster=broadcaster)
        if verdict.request is None:  # counted by the router
            self._log_drops(verdict.reason, sender or broadcaster)
        return verdict

    async def _act(self, verdict: Verdict) -> None:
        req = verdict.request
        assert req is not None
        task = f"{req.task['repo']}#{req.task['issue']}"
        if verdict.action is Action.OFFER:
            self._decide(Decision.HELP_OFFERED, request=req.id, origin=req.origin, task=task,
                         hops=len(req.hops))
            await self._send(req.origin, encode_response(
                self.sign, req.id, self.me, self.node_id, True, "can take it", self.clock(),
                self.login(), self.node.addrs(), len(req.hops)), "response",
                req.body.get("addrs", ()))
        elif verdict.action is Action.FORWARD:
            self._decide(Decision.HELP_FORWARDED, request=req.id, task=task, to=list(verdict.forward_to),
                         reason=verdict.reason)
            for peer in verdict.forward_to:
                await self._send(peer, add_hop(req, self.sign, self.me, peer).encode(), "forward")
        else:
            self._decide(Decision.HELP_DECLINED, request=req.id, task=task, reason=verdict.reason)
            await self._send(req.origin, encode_response(
                self.sign, req.id, self.me, self.node_id, False, verdict.reason, self.clock(),
                addrs=self.node.addrs()), "response", req.body.get("addrs", ()))

    async def _on_handoff(self, data: bytes, sender: str) -> None:
        try:
            body = decode_handoff(data, verify_peer)
        except HelpDrop as exc:
            self._dropped(exc.reason, sender)
            return
        if body["helper"] != self.me or body["origin"] != sender:
            self._dropped("misaddressed", sender)
            return
        self._decide(Decision.HELP_HANDOFF_RECEIVED, request=body["request"], origin=body["origin"],
                     task=f"{body['repo']}#{body['issue']}")
        if self.on_handoff is not None:
            await self.on_handoff(body)

    # ------------------------------------------------------------------ as the origin

    def _on_response(self, data: bytes, sender: str) -> None:
        try:
            body = decode_response(data, verify_peer)
        except HelpDrop as exc:
            self._dropped(exc.reason, sender)
            return
        ask = self.asks.get(body["request"])
        if ask is None or body["helper"] != sender:
            self._dropped("unexpected", sender)
            return
        body["_at"] = self.clock()  # when it arrived (latency figures)
        if body["accept"]:
            ask.offers.append(body)
            if ask.first_offer_at is None:
                ask.first_offer_at = self.clock()
            ask.first_offer.set()
        else:
            ask.declines.append(body)

    async def ask(self, task: dict[str, Any], reason: str, ask_no: int, *, wait: float = 3.0,
                  grace: float = 0.2, deadline: float = 30.0) -> Ask:
        """Send a help request and collect answers: until ``grace`` after the first offer,
        or ``wait`` seconds."""
        now = self.clock()
        req = new_request(self.sign, self.me, self.node_id, task, reason, now + deadline,
                          ask_no, now, self.node.addrs())
        self.router.mark_seen(req)
        targets = rank(task.get("needs", []), self.candidates(), {self.me},
                       self.router.fanout)
        ask = Ask(req.id, task, targets, started=now)
        self.asks[req.id] = ask
        self._decide(Decision.HELP_REQUESTED, request=req.id, task=f"{task['repo']}#{task['issue']}",
                     ask=ask_no, reason=reason[:200], to=targets)
        async with trio.open_nursery() as nursery:
            for peer in targets:
                nursery.start_soon(self._send, peer, add_hop(req, self.sign, self.me, peer).encode(),
                                   "request")
            if self.broadcast:
                nursery.start_soon(self._broadcast, add_hop(req, self.sign, self.me, BROADCAST))
        with trio.move_on_after(wait):
            await ask.first_offer.wait()
            await trio.sleep(grace)
        return ask

    async def _broadcast(self, req: HelpRequest) -> None:
        try:
            await self.node.publish(TOPIC_HELP, req.encode())
            self.sent["broadcast"] += 1
        except Exception as exc:  # gossip is a best effort beside the streams: never fatal
            log.debug("help broadcast failed", extra={"error": repr(exc)})

    async def send_handoff(self, helper: str, data: bytes, addrs: Sequence[str] = ()) -> bool:
        return await self._send(helper, data, "handoff", addrs)

    def status(self) -> dict[str, Any]:
        return {"sent": dict(self.sent), "dropped": dict(self.router.drops),
                "counts": dict(self.router.counts), "send_failures": self.send_failures,
                "read_failures": self.read_failures}
