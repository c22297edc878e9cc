"""Building a py-libp2p host the way Bzzz needs it, with py-libp2p 0.8.1's defects contained.

- Noise is the only security transport (a host built without ``sec_opt`` also accepts
  plaintext and SECIO), Yamux the only muxer.
- Wildcard listen addresses are advertised as the real interface addresses.
- ``psk`` uses our spec-compliant pnet instead of py-libp2p's Salsa20 variant.
- Kademlia speaks ``/bzzz/kad/1.0.0`` instead of the hard-wired ``/ipfs/kad/1.0.0``.
- Pubsub signature failures, which py-libp2p drops silently, are counted.

Every patch of the library lives in :func:`_patch_libp2p`, applied once on import.
"""

from __future__ import annotations

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

KAD_PROTOCOL = TProtocol("/bzzz/kad/1.0.0")
NEGOTIATE_TIMEOUT = 10


@dataclass
class SecurityStats:
    """Counts of what the library would otherwise drop without a trace."""

    pubsub_bad_signature: int = 0


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

    def advertise(candidates: list[Multiaddr]) -> list[Multiaddr]:
        return addrs_mod.expand_wildcards(candidates, addrs_mod.interface_ipv4s().values())

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
