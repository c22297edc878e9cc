"""Signing help messages with the node's libp2p identity; checking them against peer ids
(an Ed25519 peer id embeds its public key)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from libp2p.crypto.keys import PublicKey
from libp2p.peer.id import ID

from .messages import Sign

if TYPE_CHECKING:
    from ..identity import Identity


def signer(identity: Identity) -> Sign:
    key = identity.key_pair.private_key
    return lambda data: key.sign(data)


@lru_cache(maxsize=4096)
def _public_key(peer: str) -> PublicKey | None:
    try:
        return ID.from_base58(peer).extract_public_key()
    except ValueError:  # not base58 (extract_public_key answers None for the rest)
        return None


def verify_peer(peer: str, data: bytes, sig: bytes) -> bool:
    key = _public_key(peer)
    if key is None:
        return False
    try:
        return bool(key.verify(data, sig))
    except (ValueError, TypeError, NotImplementedError):
        # a signature of the wrong size or type (nacl, coincurve), or a key type that
        # py-libp2p cannot verify with (ECC)
        return False
