"""Building a py-libp2p host the way Bzzz needs it, with py-libp2p 0.8.1's defects contained.

- Noise is the only security transport (a host built without ``sec_opt`` also accepts
  plaintext and SECIO), Yamux the only muxer.
- Wildcard listen addresses are advertised as the real interface addresses.
- ``psk`` uses our spec-compliant pnet instead of py-libp2p's Salsa20 variant.
- Kademlia speaks ``/bzzz/kad/1.0.0`` instead of the hard-wired ``/ipfs/kad/1.0.0``.
- Pubsub signature failures, which py-libp2p drops silently, are counted.
- A pubsub RPC that does not parse, or fails in handling, ends that peer's stream (counted)
  instead of the whole host.

Every patch of the library lives in :func:`_patch_libp2p`, applied once on import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from multiaddr import Multiaddr

from . import addrs as addrs_mod
from .pnet import DEFAULT_HANDSHAKE_TIMEOUT, PnetConnection, PnetStats

_log = logging.getLogger("bzzz.p2p")

KAD_PROTOCOL = TProtocol("/bzzz/kad/1.0.0")
NEGOTIATE_TIMEOUT = 10


# Per-peer outbound pubsub queue (py-libp2p: 32 RPCs, then silent drops).
OUTBOUND_QUEUE = 1024
RECORD_RECHECK = 1.0  # seconds between checks that our signed peer record is current
INTERFACE_CACHE = 2.0  # seconds interface addresses are cached for advertising
YAMUX_MAX_WINDOW = 1024 * 1024  # per-stream receive window cap (py-libp2p: 16 MiB)


@dataclass
class SecurityStats:
    """Counts of what the library would otherwise drop without a trace."""

    pubsub_bad_signature: int = 0
    pubsub_outbound_dropped: int = 0
    pubsub_malformed_rpc: int = 0  # streams ended for an RPC that did not parse or failed


SECURITY_STATS = SecurityStats()
_patched = False


@dataclass(frozen=True)
class PnetSettings:
    """Handed to the swarm as its ``psk``: py-libp2p only stores that value and passes it
    back to ``new_protected_conn``, so each host carries its own key, counters and deadline."""

    key: bytes
    stats: PnetStats
    timeout: float = DEFAULT_HANDSHAKE_TIMEOUT


def _patch_libp2p() -> None:
    global _patched
    if _patched:
        return
    _patched = True

    # 1. pnet: py-libp2p's swarm calls a module-level new_protected_conn(raw_conn, psk_hex).
    import libp2p.network.swarm as swarm_mod

    def new_protected_conn(conn, psk):
        if not isinstance(psk, PnetSettings):  # a plain hex key, as py-libp2p takes it
            psk = PnetSettings(bytes.fromhex(psk), PnetStats())
        return PnetConnection(conn, psk.key, psk.stats, psk.timeout)

    swarm_mod.new_protected_conn = new_protected_conn

    # 2. Kademlia protocol id: each module imported the constant by name.
    import libp2p.kad_dht.common as kad_common
    import libp2p.kad_dht.kad_dht as kad_main
    import libp2p.kad_dht.peer_routing as kad_routing
    import libp2p.kad_dht.provider_store as kad_providers
    import libp2p.kad_dht.value_store as kad_values

    for module in (kad_common, kad_main, kad_routing, kad_providers, kad_values):
        if hasattr(module, "PROTOCOL_ID"):
            module.PROTOCOL_ID = KAD_PROTOCOL

    # 3. Count pubsub messages whose signature does not verify.
    import libp2p.pubsub.pubsub as pubsub_mod

    original = pubsub_mod.signature_validator

    def counting_signature_validator(msg) -> bool:
        ok = original(msg)
        if not ok:
            SECURITY_STATS.pubsub_bad_signature += 1
        return ok

    pubsub_mod.signature_validator = counting_signature_validator

    # 4. A deeper per-peer outbound queue, and count what still overflows it.
    import libp2p.pubsub.rpc_queue as rpc_queue_mod

    class DeeperRpcQueue(rpc_queue_mod.RpcQueue):
        def __init__(self, max_size: int = OUTBOUND_QUEUE, **kw) -> None:
            super().__init__(max_size=max_size, **kw)
            self.max_size = max_size

    pubsub_mod.RpcQueue = DeeperRpcQueue
    original_drop = pubsub_mod.drop_rpc if hasattr(pubsub_mod, "drop_rpc") else None
    if original_drop is not None:
        def counting_drop(peer_id, rpc) -> None:
            SECURITY_STATS.pubsub_outbound_dropped += 1
            original_drop(peer_id, rpc)

        pubsub_mod.drop_rpc = counting_drop


    # 5. Per-RPC peer-record work. On send, py-libp2p re-reads our addresses and marshals
    #    our signed peer record for every RPC; on receive, it verifies the sender's record
    #    (one more Ed25519 verification) for every RPC. Cache both: the record is re-issued
    #    when our addresses change (checked at most every RECORD_RECHECK seconds), and a
    #    sender record is verified once per distinct byte string.
    import libp2p.pubsub.floodsub as floodsub_mod
    import libp2p.pubsub.gossipsub as gossipsub_mod
    import libp2p.pubsub.utils as pubsub_utils

    original_env = pubsub_mod.env_to_send_in_RPC
    env_cache: dict[int, tuple[float, tuple[bytes, bool]]] = {}

    def cached_env_to_send_in_rpc(host) -> tuple[bytes, bool]:
        now = time.monotonic()
        hit = env_cache.get(id(host))
        if hit is not None and now - hit[0] < RECORD_RECHECK:
            return hit[1][0], False
        result = original_env(host)
        env_cache[id(host)] = (now, result)
        return result

    original_consume = pubsub_utils.maybe_consume_signed_record
    consumed: dict[tuple[int, bytes], bytes] = {}

    def cached_consume(msg, host, peer_id) -> bool:
        if not msg.HasField("senderRecord"):
            return True
        key = (id(host), peer_id.to_bytes())
        record = bytes(msg.senderRecord)
        if consumed.get(key) == record:
            return True
        ok = original_consume(msg, host, peer_id)
        if ok:
            if len(consumed) > 4096:
                consumed.clear()
            consumed[key] = record
        return ok

    for module in (pubsub_mod, gossipsub_mod, floodsub_mod):
        if hasattr(module, "env_to_send_in_RPC"):
            module.env_to_send_in_RPC = cached_env_to_send_in_rpc
        if hasattr(module, "maybe_consume_signed_record"):
            module.maybe_consume_signed_record = cached_consume

    # 7. The seen-message cache: one compact table instead of a bytes object per message id
    #    (and a sweeper thread per cache); see bzzz.p2p.seencache for the memory story.
    from .seencache import SeenCache

    pubsub_mod.LastSeenCache = SeenCache

    # 6. Yamux: py-libp2p sends a WINDOW_UPDATE after every read unless PY_YAMUX_RELEASE_ON_READ
    #    is 0, and re-reads its tuning variables from the environment on every frame. Use
    #    go-yamux's batching (update once half the window is consumed), decided once.
    import os

    import libp2p.stream_muxer.yamux.yamux as yamux_mod

    release_on_read = os.environ.get("PY_YAMUX_RELEASE_ON_READ", "0").upper() not in (
        "0", "FALSE", "NO")
    debug = yamux_mod._perf_yamux_debug_enabled()
    yamux_mod._yamux_release_on_read = lambda: release_on_read
    yamux_mod._perf_yamux_debug_enabled = lambda: debug
    # Receive windows auto-tune up to 16 MiB per stream, all of it buffered in memory when
    # the reader lags; Bzzz's streams carry gossip and small control messages.
    yamux_mod.MAX_WINDOW_SIZE = YAMUX_MAX_WINDOW

    # 7. Dialling: after starting the dial of each address, py-libp2p waits up to 250 ms
    #    ("happy eyeballs" head start) for it to fail before the next one, and it waits
    #    after the last address too, even when that dial succeeded at once: every new
    #    connection took 250 ms (measured on loopback: connect 251 ms, 0.1 ms without).
    #    Our peers advertise one or two TCP addresses: dial them together.
    import libp2p.network.swarm as swarm_mod

    swarm_mod._HAPPY_EYEBALLS_DELAY = 0.0

    # 9. A pubsub RPC that is not valid protobuf (a peer's garbage, or a stream cut
    #    mid-message) raises protobuf's DecodeError, which py-libp2p's stream handler does
    #    not catch: it ends the connection's nursery and with it the swarm, so one peer's
    #    bytes stopped the whole daemon. Any other failure while handling a peer's RPC would
    #    do the same. Make it a ParseError, which the handler already treats as a bad stream
    #    (reset it, forget the peer; the peer may reconnect), and count it.
    from libp2p.exceptions import ParseError
    from libp2p.io.exceptions import IncompleteReadError
    from libp2p.network.stream.exceptions import StreamError

    handled = (ParseError, StreamError, IncompleteReadError)  # the handler's own cases
    original_read = pubsub_mod.Pubsub.continuously_read_stream

    async def guarded_read(self, stream) -> None:
        try:
            await original_read(self, stream)
        except handled:
            raise
        except Exception as exc:  # noqa: BLE001 -- a peer's input must not end the host
            SECURITY_STATS.pubsub_malformed_rpc += 1
            _log.warning("a peer's pubsub stream was ended", extra={
                "peer": str(getattr(stream.muxed_conn, "peer_id", "?")),
                "error": type(exc).__name__})
            raise ParseError(f"pubsub RPC from a peer: {type(exc).__name__}") from None

    pubsub_mod.Pubsub.continuously_read_stream = guarded_read


_patch_libp2p()


def build_host(
    key_pair: KeyPair,
    listen: Sequence[str],
    psk: bytes | None = None,
    pnet_stats: PnetStats | None = None,
    pnet_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> IHost:
    """A host with Noise, Yamux and TCP, advertising real interface addresses."""
    listen_addrs = [Multiaddr(a) for a in listen]
    pnet = None
    if psk is not None:
        pnet = PnetSettings(psk, pnet_stats or PnetStats(), pnet_timeout)

    cache: dict[str, tuple[float, list[str]]] = {}

    def advertise(candidates: list[Multiaddr]) -> list[Multiaddr]:
        # py-libp2p asks for our addresses on hot paths; enumerate interfaces at most
        # every INTERFACE_CACHE seconds.
        now = time.monotonic()
        hit = cache.get("ips")
        if hit is None or now - hit[0] > INTERFACE_CACHE:
            hit = cache["ips"] = (now, list(addrs_mod.interface_ipv4s().values()))
        return addrs_mod.expand_wildcards(candidates, hit[1])

    return new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: NoiseTransport(key_pair,
                                                   noise_privkey=new_x25519_key_pair().private_key)},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=listen_addrs,
        psk=pnet,  # type: ignore[arg-type]  # see PnetSettings
        negotiate_timeout=NEGOTIATE_TIMEOUT,
        addrs_factory=advertise,
        # observed addresses from identify are what a NAT shows; we advertise our own only
        disable_identify_address_discovery=True,
    )
