"""Capability announcements and the live peer table, on top of :class:`P2PNode`.

Announces at start, on change and every ``interval`` seconds; says goodbye on shutdown;
drops a peer after 3 silent intervals; validates every message and counts each drop by kind.

The goodbye goes out twice: on the topic (for peers we are not connected to) and, to every
connected peer, on a stream of its own (``/bzzz/bye/1.0.0``) that the peer acknowledges
once its table has dropped us, so no connected peer misses it because the connection
closed before gossip's queue was written out. After it, this node announces no more (a peer
that redials us while we close must not learn of us again).
"""

from __future__ import annotations

import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from .. import __version__
from ..errors import closing_quietly
from ..metrics import Metrics
from . import envelope
from .envelope import Announcement, Departure, EnvelopeError
from .frames import FrameMalformed, FrameTooLarge, frame, read_frame
from .node import P2PNode

if TYPE_CHECKING:
    from trio_typing import TaskStatus
from .peertable import PeerTable

log = logging.getLogger("bzzz.mesh")

TOPIC_CAPABILITIES = "bzzz/capabilities/1"
TOPIC_HELP = "bzzz/help/1"
BYE_PROTOCOL = TProtocol("/bzzz/bye/1.0.0")
BYE_TIMEOUT = 1.0  # seconds a goodbye stream may take, either side
SILENT_INTERVALS = 3


class Mesh:
    def __init__(self, node: P2PNode, node_id: str, capabilities: list[str], *,
                 interval: float = 5.0, max_tasks: int = 1, log_key: str = "",
                 log_length: Callable[[], int] = lambda: 0,
                 metrics: Metrics | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self.node_id = node_id
        self.capabilities = list(capabilities)
        self.interval = interval
        self.max_tasks = max_tasks
        self.running_tasks = 0
        self.log_key = log_key
        self.presets: list[str] = []  # bzzz/exec/agents/versions.py announced
        self.log_length = log_length  # our own log's length, told in each announcement
        self.metrics = metrics or Metrics()
        self.table = PeerTable(timeout=SILENT_INTERVALS * interval)
        self.drops: dict[str, int] = {r: 0 for r in envelope.REASONS}
        self.ages: deque[float] = deque(maxlen=2048)  # recent announcement ages on arrival
        self._wall = wall_clock
        self._seq = 0
        self.leaving = False  # a goodbye was said: announce no more
        self._changed = trio.Event()
        self.table_changed = trio.Event()  # replaced after each set; for waiters
        node.on_message(TOPIC_CAPABILITIES, self._handle)

    # ---------------------------------------------------------------- inbound

    def _handle(self, signer: str, data: bytes) -> bool:
        if signer == self.node.peer_id:
            return True  # our own publish, validated on the way out
        now = self._wall()
        try:
            msg = envelope.parse(data, signer, now)
        except EnvelopeError as exc:
            self._dropped(exc.reason)
            log.debug("dropped capability message from %s: %s", signer, exc)
            return False
        if isinstance(msg, Announcement):
            self.metrics.messages_received.labels(TOPIC_CAPABILITIES, "capabilities").inc()
            age = max(0.0, now - msg.ts)
            self.ages.append(age)
            self.metrics.announce_latency.observe(age)
            event = self.table.update(msg, now)
            if event in ("new", "changed"):
                self.metrics.peer_events.labels(event).inc()
                if event == "new":
                    log.info("peer joined", extra={"peer": signer, "peer_node": msg.node_id})
                self._notify()
            self.node.offer_peer(msg.peer_id, msg.addrs, "announcement")
        elif isinstance(msg, Departure):
            self._departed(msg, now)
        self.metrics.peers.set(len(self.table))
        return True

    def _departed(self, msg: Departure, now: float) -> None:
        self.metrics.messages_received.labels(TOPIC_CAPABILITIES, "departure").inc()
        if self.table.depart(msg.peer_id, msg.ts, now):
            self.metrics.peer_events.labels("departed").inc()
            self.metrics.peers.set(len(self.table))
            log.info("peer departed", extra={"peer": msg.peer_id, "peer_node": msg.node_id})
            self._notify()

    def _dropped(self, reason: str) -> None:
        self.drops[reason] += 1
        self.metrics.messages_dropped.labels(TOPIC_CAPABILITIES, reason).inc()

    def announced_log_length(self, peer_id: str) -> int:
        """The length of its own log that a peer told in its latest announcement (0: none)."""
        entry = self.table.get(peer_id)
        return entry.announcement.log_length if entry is not None else 0

    def age_quantiles(self) -> dict[str, float | int]:
        """p50/p99 (ms) of recent announcement ages on arrival: gossip propagation delay."""
        ages = sorted(self.ages)
        if not ages:
            return {"n": 0}

        def pick(q: float) -> float:
            return round(1000 * ages[min(len(ages) - 1, int(q * len(ages)))], 2)
        return {"n": len(ages), "p50_ms": pick(0.5), "p99_ms": pick(0.99)}

    def _notify(self) -> None:
        self.table_changed.set()
        self.table_changed = trio.Event()

    # ---------------------------------------------------------------- outbound

    def announcement(self) -> Announcement:
        self._seq += 1
        return Announcement(
            peer_id=self.node.peer_id, node_id=self.node_id, ts=self._wall(),
            capabilities=tuple(self.capabilities), addrs=tuple(self.node.addrs()),
            log_key=self.log_key, load=(self.running_tasks, self.max_tasks), seq=self._seq,
            peers=tuple(sorted(str(p) for p in self.node.connected_peers())[:envelope.MAX_PEERS]),
            version=__version__, log_length=self.log_length(), presets=tuple(self.presets))

    def set_presets(self, presets: list[str]) -> None:
        """The coding-agent presets this node runs, one line each (announced if any)."""
        presets = list(presets)[:envelope.MAX_PRESETS]
        if presets != self.presets:
            self.presets = presets
            self._changed.set()

    def set_capabilities(self, capabilities: list[str]) -> None:
        if list(capabilities) != self.capabilities:
            self.capabilities = list(capabilities)
            self._changed.set()

    def set_load(self, running: int) -> None:
        if running != self.running_tasks:
            self.running_tasks = running
            self._changed.set()

    async def announce(self) -> None:
        if self.leaving:
            return
        await self.node.publish(TOPIC_CAPABILITIES, envelope.encode_announcement(self.announcement()))
        self.metrics.announcements_sent.inc()

    async def depart(self) -> None:
        """Say goodbye: on the topic, and on a stream to each connected peer, waiting (at
        most BYE_TIMEOUT) for each to acknowledge it."""
        self.leaving = True
        data = envelope.encode_departure(Departure(self.node.peer_id, self.node_id, self._wall()))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.node.publish, TOPIC_CAPABILITIES, data)
            for peer in self.node.host.get_connected_peers():
                nursery.start_soon(self._send_bye, peer, data)

    async def _send_bye(self, peer: ID, data: bytes) -> None:
        with trio.move_on_after(BYE_TIMEOUT):
            try:
                stream = await self.node.open_stream(peer, [BYE_PROTOCOL])
                try:
                    await stream.write(frame(data))
                    await stream.read(1)  # the peer's acknowledgement (or the end)
                finally:
                    await stream.close()
            except Exception as exc:  # an older peer, a connection closing: gossip remains
                log.debug("goodbye stream failed", extra={"peer": str(peer), "error": repr(exc)})

    async def _handle_bye(self, stream: INetStream) -> None:
        """A connected peer's goodbye: the signer is the connection's authenticated peer."""
        signer = stream.muxed_conn.peer_id.to_base58()
        try:
            with trio.move_on_after(BYE_TIMEOUT):
                data = await read_frame(stream, envelope.MAX_SIZE)
                now = self._wall()
                try:
                    msg = envelope.parse(data, signer, now)
                except EnvelopeError as exc:
                    return self._dropped(exc.reason)
                if not isinstance(msg, Departure):
                    return self._dropped("unknown_type")
                self._departed(msg, now)
                await stream.write(b"\x01")
        except (FrameTooLarge, FrameMalformed):
            self._dropped("malformed")
        except Exception as exc:  # a peer's stream cut, reset or closed: the gossip copy remains
            log.debug("goodbye stream broke", extra={"peer": signer, "error": repr(exc)})
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(BYE_TIMEOUT), \
                    closing_quietly(log, "a goodbye stream"):
                await stream.close()

    async def run(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.node.host.set_stream_handler(BYE_PROTOCOL, self._handle_bye)
        await self.node.subscribe(TOPIC_CAPABILITIES)
        known_subscribers: set[ID] = set()
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._expire_loop)
            next_at = trio.current_time()
            while True:
                # Announce at once when a peer subscribes to the topic, so a newcomer does
                # not wait a whole interval to learn about us.
                subscribers = set(self.node.pubsub.peer_topics.get(TOPIC_CAPABILITIES, ()))
                newcomer = bool(subscribers - known_subscribers)
                known_subscribers = subscribers
                self.metrics.connections.set(len(self.node.connected_peers()))
                if newcomer or self._changed.is_set() or trio.current_time() >= next_at:
                    self._changed = trio.Event()
                    try:
                        await self.announce()
                    except Exception:  # one failed announcement ends no loop (counted)
                        self.metrics.loop_errors.labels("announce").inc()
                        log.exception("announcement failed")
                    next_at = trio.current_time() + self.interval
                with trio.move_on_after(min(0.25, self.interval)):
                    await self._changed.wait()

    async def _expire_loop(self) -> None:
        while True:
            await trio.sleep(min(1.0, self.interval / 2))
            gone = self.table.expire(self._wall())
            for pid in gone:
                self.metrics.peer_events.labels("expired").inc()
                log.info("peer silent for %d intervals, dropped", SILENT_INTERVALS,
                         extra={"peer": pid})
            if gone:
                self.metrics.peers.set(len(self.table))
                self._notify()


async def leave(mesh: Mesh, node: P2PNode, budget: float = 3.0) -> None:
    """Say goodbye, flush it, close connections (bounded by ``budget`` seconds, shielded:
    a daemon's shutdown after SIGTERM)."""
    with trio.CancelScope(shield=True), trio.move_on_after(budget):
        try:
            await mesh.depart()
            await node.flush(1.0)
        except Exception:  # shutting down: whatever failed, the connections still close
            log.exception("departure announcement failed")
        await node.close_connections()


async def until_stop_signal() -> None:
    """Return at SIGTERM (what Docker Swarm sends) or SIGINT, saying which."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("signal received, shutting down",
                     extra={"signal": signal.Signals(signum).name})
            return
