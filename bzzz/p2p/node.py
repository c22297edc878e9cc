"""The P2P node: one libp2p host with gossipsub, Kademlia, mDNS and a dialler.

The rest of Bzzz sees only this class: ``publish``, ``on_message`` (a validating handler per
topic), the advertised addresses and the connected peers.

Messages are handled in the pubsub *topic validator*: py-libp2p calls it once per new message
before delivery, while its subscription channel holds 32 messages and drops the rest under
load. A handler returns True to accept (and forward) a message, False to reject it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import trio
from libp2p.abc import INetConn, INetStream, INetwork, INotifee, ISubscriptionAPI
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.peer.peerstore import PeerStoreError
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr
from multiaddr.exceptions import Error as MultiaddrError

from ..identity import Identity
from . import addrs as addrs_mod
from .connector import DialPlan
from .host import SECURITY_STATS, build_host
from .mdns import MdnsDiscovery, Sighting
from .pnet import PnetStats

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("bzzz.p2p")

# py-libp2p logs a warning for every message its small subscription channel drops; we do
# not read that channel (see the module docstring), so those warnings are noise.
logging.getLogger("libp2p.pubsub.pubsub").setLevel(logging.ERROR)

Handler = Callable[[str, bytes], bool]
DIAL_TIMEOUT = 5.0
ADDR_TTL = 3600  # seconds the peerstore keeps the addresses we dial a peer at
PUBLISH_BACKPRESSURE_LIMIT = 5.0  # seconds a publish waits for a slow peer's queue
DHT_FAST_PERIOD = 1.0
DHT_SLOW_PERIOD = 10.0
DHT_FAST_FOR = 30.0


class _ConnNotifee(INotifee):
    """Forwards connection events into trio channels (never blocks the swarm)."""

    def __init__(self, send: trio.MemorySendChannel[tuple[str, str]]) -> None:
        self._send = send

    def _put(self, event: tuple[str, str]) -> None:
        try:
            self._send.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._put(("connected", conn.muxed_conn.peer_id.to_base58()))

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._put(("disconnected", conn.muxed_conn.peer_id.to_base58()))

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        pass

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        pass


class _Discard(list[Any]):
    """A list that keeps nothing (for py-libp2p bookkeeping we do not use)."""

    def append(self, item: Any) -> None:
        pass


class _FloodPublishGossipSub(GossipSub):
    """Gossipsub with go-libp2p's ``floodPublish``: our own messages go to every peer
    subscribed to the topic, not only to our mesh peers, so a newcomer or a peer outside our
    mesh gets them in one hop instead of waiting for a heartbeat's gossip. Forwarded
    messages follow the mesh as usual."""

    def _get_peers_to_send(self, topic_ids: Iterable[str], msg_forwarder: ID, origin: ID,
                           msg_id: bytes | None = None) -> Iterator[ID]:
        if self.pubsub is None or origin != self.pubsub.my_id:
            yield from super()._get_peers_to_send(topic_ids, msg_forwarder, origin, msg_id)
            return
        peers: set[ID] = set()
        for topic in topic_ids:
            peers.update(self.pubsub.peer_topics.get(topic, ()))
        scorer = self.scorer
        for peer in peers - {msg_forwarder, origin}:
            if scorer is not None and scorer.is_graylisted(peer, list(topic_ids)):
                continue
            yield peer


def _make_gossipsub() -> GossipSub:
    # Daemon settings (py-libp2p's defaults are a 120 s heartbeat and a 10 msg/s cap that
    # also drops our own publishes). A 1 s heartbeat also bounds the equivocation cache,
    # which py-libp2p trims only in its heartbeat.
    gs = _FloodPublishGossipSub(
        [PROTOCOL_ID_V11, PROTOCOL_ID],
        degree=6, degree_low=4, degree_high=12,
        heartbeat_interval=1, heartbeat_initial_delay=0.1,
        time_to_live=30,
        spam_protection_enabled=False,
        prune_back_off=10,
        # Adaptive gossip rates "delivery health" from a timestamp kept per published
        # message for 60 s (counting every one as a success); those floats pin memory
        # (see seencache.py) and, with adaptive gossip off, would never be trimmed at all.
        adaptive_gossip_enabled=False,
    )
    gs.recent_message_deliveries = defaultdict(_Discard)
    return gs


def _transport_addrs(peer_id: str, addrs: Sequence[str]) -> list[Multiaddr]:
    """A peer's multiaddrs without their ``/p2p/<id>`` suffix: what the peerstore keeps and a
    dial takes."""
    suffix = Multiaddr(f"/p2p/{peer_id}")
    return [Multiaddr(a).decapsulate(suffix) for a in addrs]


SPARSE_KEEP_TIME = 5.0  # seconds a connection must last to count as a neighbour


class P2PNode:
    def __init__(self, identity: Identity, listen: Sequence[str], *, mdns: bool = True,
                 bootstrap: Sequence[str] = (), psk: bytes | None = None,
                 dial_discovered: bool = True,
                 clock: Callable[[], float] = trio.current_time) -> None:
        self.identity = identity
        # False: connect only to bootstrap and mDNS peers, not to every peer heard of in
        # announcements or the DHT (a sparse mesh; the DHT still finds peers on demand)
        self.dial_discovered = dial_discovered
        self.peer_id = identity.peer_id.to_base58()
        self.listen = list(listen)
        self.mdns_enabled = mdns
        self.bootstrap = list(bootstrap)
        self.pnet_stats = PnetStats()
        self.security_stats = SECURITY_STATS
        self.host = build_host(identity.key_pair, self.listen, psk=psk,
                               pnet_stats=self.pnet_stats)
        if not dial_discovered:
            # py-libp2p's AutoConnector dials peerstore entries toward 50 connections, and
            # at once after every disconnect: it would undo a sparse mesh
            async def _no_auto_connect() -> None:
                return None
            connector = self._swarm().auto_connector
            # one instance's method replaced: py-libp2p has no switch for it
            connector.maybe_connect = _no_auto_connect  # type: ignore[method-assign]
        self.gossipsub = _make_gossipsub()
        # seen_ttl: our envelopes go stale after 60 s, so a duplicate older than that is
        # rejected anyway; the cache keeps ids for 60 to 120 s.
        self.pubsub = Pubsub(self.host, self.gossipsub, strict_signing=True,
                             max_inbound_rpc_size=1 << 20, seen_ttl=60,
                             # Messages are de-duplicated before validation, so this
                             # cache only serves concurrent duplicates; 1,000 entries
                             # scattered over a burst pin memory for nothing.
                             validation_cache_size=64)
        self.dht = KadDHT(self.host, DHTMode.SERVER, enable_random_walk=False)
        self.plan = DialPlan(self.peer_id)
        self._clock = clock
        self._wake = trio.Event()
        self._events_send: trio.MemorySendChannel[tuple[str, str]]
        self._events_recv: trio.MemoryReceiveChannel[tuple[str, str]]
        self._events_send, self._events_recv = trio.open_memory_channel(1024)
        self._sightings_send: trio.MemorySendChannel[Sighting]
        self._sightings_recv: trio.MemoryReceiveChannel[Sighting]
        self._sightings_send, self._sightings_recv = trio.open_memory_channel(256)
        self.host.get_network().register_notifee(_ConnNotifee(self._events_send))
        self.dial_attempts = 0
        self.dial_failures = 0
        self.started = trio.Event()
        self.mdns: MdnsDiscovery | None = None

    # ------------------------------------------------------------------ public surface

    def _swarm(self) -> Swarm:
        """The host's network: a Swarm, as py-libp2p's new_host builds it (its interface
        type lacks the dialler's controls we use)."""
        network = self.host.get_network()
        assert isinstance(network, Swarm)
        return network

    def addrs(self) -> list[str]:
        """Dialable addresses, with ``/p2p/<id>``."""
        return [str(a) for a in self.host.get_addrs()]

    def connected_peers(self) -> set[str]:
        return {p.to_base58() for p in self.host.get_connected_peers()}

    def _remember_addrs(self, peer: ID, addrs: Sequence[Multiaddr]) -> None:
        """Make ``addrs`` the peer's only known addresses. py-libp2p dials one address per
        transport, the first its peerstore holds: a peer back on another port (or another
        address) would be dialled where it no longer listens for as long as the old
        address stays there."""
        if addrs:
            peerstore = self.host.get_peerstore()
            peerstore.clear_addrs(peer)
            peerstore.add_addrs(peer, list(addrs), ADDR_TTL)

    def forget_failures(self, peer: ID) -> None:
        """Let a peer be dialled now. py-libp2p refuses, for 60 s, any dial of a peer whose
        addresses all failed once (its "negative cache"), even at new addresses: a peer that
        restarted is then unreachable for a minute, by our dialler, log followers and help
        alike. When to try again is ours to decide (DialPlan's backoff, the callers' own)."""
        self._swarm().unblock_peer(peer)

    async def open_stream(self, peer: str | ID, protocols: Sequence[str]) -> INetStream:
        """A new stream to ``peer`` (dialled if need be), whatever failed before."""
        pid = ID.from_base58(peer) if isinstance(peer, str) else peer
        self.forget_failures(pid)
        return await self.host.new_stream(pid, [TProtocol(p) for p in protocols])

    def on_message(self, topic: str, handler: Handler) -> None:
        """Register the handler for a topic: called with (signer peer id, data)."""

        def validator(forwarder: ID, msg: rpc_pb2.Message) -> bool:
            try:
                return bool(handler(ID(msg.from_id).to_base58(), bytes(msg.data)))
            except Exception:  # a handler bug must not kill the pubsub read loop
                log.exception("handler for %s failed", topic)
                return False

        self.pubsub.set_topic_validator(topic, validator, False)

    async def subscribe(self, topic: str) -> None:
        sub = await self.pubsub.subscribe(topic)
        # Delivery happens in the validator; empty the library's channel so it never fills.
        self._nursery.start_soon(self._drain, sub)

    async def publish(self, topic: str, data: bytes) -> None:
        """Publish, waiting for room rather than letting py-libp2p drop our own message.

        py-libp2p drops an RPC when a peer's outbound queue is full; before publishing we
        wait (bounded) until every queue is below three quarters of its depth.
        """
        with trio.move_on_after(PUBLISH_BACKPRESSURE_LIMIT):
            while self._crowded():  # noqa: ASYNC110 -- py-libp2p's queues signal nothing
                await trio.sleep(0.001)
        await self.pubsub.publish(topic, data)

    def _crowded(self) -> bool:
        """Whether a peer's outbound queue is three quarters full or more."""
        return any(len(q) >= q.max_size * 3 // 4 for q in self.pubsub.peer_queues.values()
                   if hasattr(q, "max_size"))

    def _queued(self) -> bool:
        """Whether a peer's outbound queue holds an RPC."""
        return any(len(q) for q in self.pubsub.peer_queues.values())

    def offer_peer(self, peer_id: str, addrs: Sequence[str], source: str) -> None:
        """A peer and its addresses learnt from anywhere (announcements, mDNS, DHT)."""
        if not self.dial_discovered and source in ("announcement", "dht"):
            return
        known = self.plan.addrs(peer_id)
        if self.plan.offer(peer_id, tuple(addrs), source, self._clock()):
            self._wake.set()
        if known is not None and tuple(addrs) != known and peer_id not in self.connected_peers():
            # moved: a stream opened before our dialler's next try must not go the old way
            try:
                pid, maddrs = ID.from_base58(peer_id), _transport_addrs(peer_id, addrs)
            except Exception as exc:  # an address that does not parse: the dial will say so
                log.debug("offered addresses not remembered", extra={"error": repr(exc)})
            else:
                self._remember_addrs(pid, maddrs)

    # ------------------------------------------------------------------ running

    async def run(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listen_addrs = [Multiaddr(a) for a in self.listen]
        async with self.host.run(listen_addrs), trio.open_nursery() as nursery:
            self._nursery = nursery
            async with background_trio_service(self.pubsub), \
                    background_trio_service(self.gossipsub), \
                    background_trio_service(self.dht):
                await self.pubsub.wait_until_ready()
                for text in self.bootstrap:
                    self._offer_bootstrap(text)
                nursery.start_soon(self._connection_events)
                nursery.start_soon(self._sightings)
                nursery.start_soon(self._dial_loop)
                nursery.start_soon(self._dht_loop)
                if self.mdns_enabled:
                    await nursery.start(self._run_mdns)
                self.started.set()
                task_status.started()
                try:
                    await trio.sleep_forever()
                finally:
                    nursery.cancel_scope.cancel()

    async def flush(self, timeout: float = 1.0) -> None:  # noqa: ASYNC109 -- never raises
        """Wait (bounded) until pubsub's outbound queues are empty, e.g. before shutdown."""
        with trio.move_on_after(timeout):
            while self._queued():  # noqa: ASYNC110 -- py-libp2p's queues signal nothing
                await trio.sleep(0.005)
            # let the writer that popped the last RPC finish its write
            await trio.lowlevel.checkpoint()

    async def close_connections(self) -> None:
        """Close every connection, all at once (py-libp2p spends about 0.2 s closing each:
        one after the other, an agent with many peers took seconds to stop)."""
        async with trio.open_nursery() as nursery:
            for peer in list(self.host.get_connected_peers()):
                nursery.start_soon(self._disconnect, peer)

    async def _disconnect(self, peer: ID) -> None:
        with trio.move_on_after(1):
            try:
                await self.host.disconnect(peer)
            except Exception:  # shutting down: one connection's trouble stops no other
                log.debug("disconnecting %s failed", peer, exc_info=True)

    async def _drain(self, sub: ISubscriptionAPI) -> None:
        async for _ in sub:
            pass

    def _offer_bootstrap(self, text: str) -> None:
        try:
            info = info_from_p2p_addr(Multiaddr(text))
        except (ValueError, MultiaddrError):  # not an address, or no /p2p/<id> in it
            log.warning("bootstrap address %s has no /p2p/ peer id; skipped", text)
            return
        if self.plan.offer(info.peer_id.to_base58(), (text,), "bootstrap", self._clock(),
                           pinned=True):
            self._wake.set()

    async def _run_mdns(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        ips = addrs_mod.listen_ips(self.listen, addrs_mod.interface_ipv4s().values())
        self.mdns = MdnsDiscovery(self.peer_id, ips, self._sightings_send.clone())
        port = next((p for a in self.host.get_transport_addrs()
                     if (p := addrs_mod.tcp_port(a))), 0)
        await self.mdns.run(self.addrs(), port, task_status=task_status)

    async def _sightings(self) -> None:
        async for s in self._sightings_recv:
            self.offer_peer(s.peer_id, s.addrs, s.source)

    async def _connection_events(self) -> None:
        async for kind, peer_id in self._events_recv:
            if kind == "connected":
                if self.dial_discovered:
                    await self._to_dht(peer_id)
                else:
                    # A sparse mesh: a connection that only carried one message (a help
                    # answer) must not enter the routing table, whose upkeep would redial it
                    self._nursery.start_soon(self._to_dht_if_kept, peer_id)
            elif peer_id not in self.connected_peers():
                self.plan.disconnected(peer_id, self._clock())
                self._wake.set()

    async def _to_dht(self, peer_id: str) -> None:
        """Feed the DHT from connections (py-libp2p's routing table is not)."""
        try:
            await self.dht.add_peer(ID.from_base58(peer_id), skip_server_mode_check=True)
        except Exception:  # the routing table is an optimisation: no failure of it stops us
            log.debug("dht add_peer %s failed", peer_id, exc_info=True)

    async def _to_dht_if_kept(self, peer_id: str) -> None:
        await trio.sleep(SPARSE_KEEP_TIME)
        if peer_id in self.connected_peers():
            await self._to_dht(peer_id)

    async def _dial_loop(self) -> None:
        limiter = trio.CapacityLimiter(16)
        while True:
            now = self._clock()
            for cand in self.plan.due(now, self.connected_peers()):
                self.plan.started(cand.peer_id, now)
                self._nursery.start_soon(self._dial, cand.peer_id, cand.addrs, limiter)
            self._wake = trio.Event()
            with trio.move_on_after(0.5):
                await self._wake.wait()

    async def _dial(self, peer_id: str, addrs: tuple[str, ...],
                    limiter: trio.CapacityLimiter) -> None:
        async with limiter:
            self.dial_attempts += 1
            try:
                info = PeerInfo(ID.from_base58(peer_id), _transport_addrs(peer_id, addrs))
                self.forget_failures(info.peer_id)
                self._remember_addrs(info.peer_id, info.addrs)
                with trio.fail_after(DIAL_TIMEOUT):
                    await self.host.connect(info)
            except Exception as exc:  # dial errors come in many library types
                self.dial_failures += 1
                delay = self.plan.failed(peer_id, self._clock())
                log.debug("dial %s failed (%s); retry in %.1f s", peer_id, exc, delay)
            else:
                self.plan.succeeded(peer_id, self._clock())

    async def _dht_loop(self) -> None:
        """Walk the DHT for our own id so that peers beyond the bootstrap become known (not in
        a sparse mesh: the walk itself connects to them; lookups there happen on demand)."""
        if not self.dial_discovered:
            return
        start = self._clock()
        self_key = self.identity.peer_id.to_bytes()
        while True:
            elapsed = self._clock() - start
            await trio.sleep(DHT_FAST_PERIOD if elapsed < DHT_FAST_FOR else DHT_SLOW_PERIOD)
            if not self.host.get_connected_peers():
                continue
            found: list[ID] = []
            try:
                with trio.move_on_after(10) as scope:
                    found = await self.dht.peer_routing.find_closest_peers_network(self_key)
            except Exception:  # a walk is retried on the next round, whatever broke it
                log.debug("dht lookup failed", exc_info=True)
                continue
            if scope.cancelled_caught:
                log.debug("dht lookup timed out")  # (used to leave `found` unset: a crash)
                continue
            peerstore = self.host.get_peerstore()
            for pid in set(found) | set(self.dht.routing_table.get_peer_ids()):
                pid_text = pid.to_base58()
                if pid_text == self.peer_id:
                    continue
                try:
                    known = peerstore.addrs(pid)
                except PeerStoreError:  # never heard of it, or its addresses expired
                    continue
                suffix = f"/p2p/{pid_text}"
                addrs = [str(a) if str(a).endswith(suffix) else f"{a}{suffix}" for a in known
                         if not str(a).startswith("/ip4/0.0.0.0")]
                if addrs:
                    self.offer_peer(pid_text, addrs, "dht")

