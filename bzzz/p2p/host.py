"""Building a py-libp2p host the way Bzzz needs it, with py-libp2p 0.8.1's defects contained.

- Noise is the only security transport (a host built without ``sec_opt`` also accepts
  plaintext and SECIO), Yamux the only muxer.
- Wildcard listen addresses are advertised as the real interface addresses.
- ``psk`` uses our spec-compliant pnet instead of py-libp2p's Salsa20 variant.
- Kademlia speaks ``/bzzz/kad/1.0.0`` instead of the hard-wired ``/ipfs/kad/1.0.0``.
- Pubsub signature failures, which py-libp2p drops silently, are counted.
- A pubsub RPC that does not parse, or fails in handling, ends that peer's stream (counted)
  instead of the whole host.

Every patch of the library lives in :mod:`bzzz.p2p.patches`, applied once on import (here,
so that a host is never built from an unpatched library).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

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
from .patches import KAD_PROTOCOL, SECURITY_STATS, PnetSettings, SecurityStats
from .pnet import DEFAULT_HANDSHAKE_TIMEOUT, PnetStats

__all__ = ["KAD_PROTOCOL", "SECURITY_STATS", "PnetSettings", "SecurityStats", "build_host"]

NEGOTIATE_TIMEOUT = 10
INTERFACE_CACHE = 2.0  # seconds interface addresses are cached for advertising


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
