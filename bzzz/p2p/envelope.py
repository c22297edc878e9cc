"""Pubsub payloads: msgpack maps with ``v``, ``type``, ``from``, ``ts`` (a protocol core, no I/O).

Decoding never raises anything but :class:`EnvelopeError`, whose ``reason`` is one of
``REASONS`` so that every drop is counted by kind. Time is passed in.
"""

from __future__ import annotations

from ..errors import InputError
import math
from dataclasses import dataclass
from typing import Any

import msgpack

VERSION = 1
MAX_SIZE = 64 * 1024
MAX_AGE = 60.0  # seconds a message may be old before it is stale
MAX_SKEW = 30.0  # seconds a sender's clock may run ahead of ours
MAX_CAPABILITIES = 256
MAX_ADDRS = 32
MAX_STR = 512
MAX_PEERS = 64
MAX_PRESETS = 16  # coding-agent presets a node announces

TYPE_ANNOUNCE = "capabilities"
TYPE_DEPART = "departure"

REASONS = ("malformed", "oversized", "stale", "forged", "unknown_type")


class EnvelopeError(InputError):
    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Announcement:
    peer_id: str
    node_id: str
    ts: float
    capabilities: tuple[str, ...]
    addrs: tuple[str, ...]
    log_key: str
    load: tuple[int, int]  # running, max
    seq: int = 0
    # optional (older agents leave them out): the peers it is connected to (what the
    # monitor draws as the mesh's edges, at most MAX_PEERS) and its version
    peers: tuple[str, ...] = ()
    version: str = ""
    # optional: how many entries its own log held (followers see when they fall behind)
    log_length: int = 0
    # optional: the coding-agent presets it runs, one line each ("claude-code 2.0.14 · model
    # m via route"), for people (bzzz/exec/agents/versions.py); left out when there are none
    presets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Departure:
    peer_id: str
    node_id: str
    ts: float


def encode(message: dict[str, Any]) -> bytes:
    data: bytes = msgpack.packb(message, use_bin_type=True)
    if len(data) > MAX_SIZE:
        raise ValueError(f"message of {len(data)} bytes exceeds {MAX_SIZE}")
    return data


def encode_announcement(a: Announcement) -> bytes:
    return encode({
        "v": VERSION, "type": TYPE_ANNOUNCE, "from": a.peer_id, "ts": a.ts,
        "node_id": a.node_id, "capabilities": list(a.capabilities), "addrs": list(a.addrs),
        "log_key": a.log_key, "load": list(a.load), "seq": a.seq,
        "peers": list(a.peers[:MAX_PEERS]), "version": a.version, "log_length": a.log_length,
        **({"presets": list(a.presets[:MAX_PRESETS])} if a.presets else {}),
    })


def encode_departure(d: Departure) -> bytes:
    return encode({"v": VERSION, "type": TYPE_DEPART, "from": d.peer_id, "ts": d.ts,
                   "node_id": d.node_id})


def _str(m: dict[str, Any], key: str, limit: int = MAX_STR, *, empty_ok: bool = False) -> str:
    value = m.get(key)
    if not isinstance(value, str) or len(value) > limit or (not value and not empty_ok):
        raise EnvelopeError("malformed", f"field {key!r} must be a string of at most {limit}")
    return value


def _str_list(m: dict[str, Any], key: str, limit: int) -> tuple[str, ...]:
    value = m.get(key)
    if not isinstance(value, list) or len(value) > limit:
        raise EnvelopeError("malformed", f"field {key!r} must be a list of at most {limit}")
    if not all(isinstance(v, str) and 0 < len(v) <= MAX_STR for v in value):
        raise EnvelopeError("malformed", f"field {key!r} must hold short strings")
    return tuple(value)


def decode(data: bytes, signer: str, now: float) -> dict[str, Any]:
    """Check the common envelope; ``signer`` is the peer id that signed the pubsub message."""
    if len(data) > MAX_SIZE:
        raise EnvelopeError("oversized", f"{len(data)} bytes > {MAX_SIZE}")
    try:
        m = msgpack.unpackb(data, raw=False, strict_map_key=True, max_bin_len=MAX_SIZE,
                            max_str_len=MAX_SIZE, max_array_len=4096, max_map_len=256)
    except Exception as exc:  # msgpack raises many types on bad input
        raise EnvelopeError("malformed", f"not msgpack ({type(exc).__name__})") from exc
    if not isinstance(m, dict):
        raise EnvelopeError("malformed", "not a map")
    if m.get("v") != VERSION:
        raise EnvelopeError("malformed", f"unsupported schema version {m.get('v')!r}")
    _str(m, "type", 64)
    sender = _str(m, "from", 128)
    ts = m.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise EnvelopeError("malformed", "field 'ts' must be a number")
    if sender != signer:
        raise EnvelopeError("forged", f"'from' {sender[:16]}… is not the signer")
    if ts < now - MAX_AGE:
        raise EnvelopeError("stale", f"{now - ts:.0f} s old")
    if ts > now + MAX_SKEW:
        raise EnvelopeError("stale", f"{ts - now:.0f} s in the future")
    return m


def _count(m: dict[str, Any], key: str) -> int:
    value = m.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 53:
        raise EnvelopeError("malformed", f"field {key!r} must be a non-negative integer")
    return value


def parse_announcement(m: dict[str, Any]) -> Announcement:
    load = m.get("load")
    if (not isinstance(load, list) or len(load) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 1 << 20
                       for x in load)):
        raise EnvelopeError("malformed", "field 'load' must be [running, max]")
    seq = _count(m, "seq") if "seq" in m else 0
    return Announcement(
        peer_id=m["from"], node_id=_str(m, "node_id", 128), ts=float(m["ts"]),
        capabilities=_str_list(m, "capabilities", MAX_CAPABILITIES),
        addrs=_str_list(m, "addrs", MAX_ADDRS), log_key=_str(m, "log_key", 128, empty_ok=True),
        load=(load[0], load[1]), seq=seq,
        peers=_str_list(m, "peers", MAX_PEERS) if "peers" in m else (),
        version=_str(m, "version", 64, empty_ok=True) if "version" in m else "",
        log_length=_count(m, "log_length") if "log_length" in m else 0,
        presets=_str_list(m, "presets", MAX_PRESETS) if "presets" in m else (),
    )


def parse(data: bytes, signer: str, now: float) -> Announcement | Departure:
    """Decode a message on the capabilities topic, or raise EnvelopeError."""
    m = decode(data, signer, now)
    if m["type"] == TYPE_ANNOUNCE:
        return parse_announcement(m)
    if m["type"] == TYPE_DEPART:
        return Departure(peer_id=m["from"], node_id=_str(m, "node_id", 128), ts=float(m["ts"]))
    raise EnvelopeError("unknown_type", f"type {m['type']!r}")
