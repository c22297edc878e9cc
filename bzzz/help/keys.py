"""Signing help messages with the node's libp2p identity; checking them against peer ids
(an Ed25519 peer id embeds its public key)."""

from __future__ import annotations

from functools import lru_cache

from libp2p.peer.id import ID

from .messages import Sign


def signer(identity) -> Sign:
    key = identity.key_pair.private_key
    return lambda data: key.sign(data)


@lru_cache(maxsize=4096)
def _public_key(peer: str):
    try:
        return ID.from_base58(peer).extract_public_key()
    except Exception:
        return None


def verify_peer(peer: str, data: bytes, sig: bytes) -> bool:
    key = _public_key(peer)
    if key is None:
        return False
    try:
        return bool(key.verify(data, sig))
    except Exception:
        return False
