"""Every patch Bzzz applies to py-libp2p, one named function each, applied once on import.

py-libp2p 0.8.1 has defects we cannot wait for upstream to fix (FACTS.md). Each patch below
names what it fixes and says why in its docstring. All of them go through
:meth:`Patcher.replace`, which checks that the target still exists and is what we expect
(a function or class by its module and qualified name, a constant by its value) before
replacing it, and raises :class:`Libp2pPatchError` naming the patch otherwise: a library
change breaks the import loudly instead of silently turning a patch off. The library's
version is checked first (:data:`LIBP2P_VERSION`, the version ``pyproject.toml`` pins).

:data:`PATCHES` lists the patches in the order they are applied; :data:`APPLIED` records,
per patch, every attribute replaced (owner, name, original, replacement), which is what
``tests/test_libp2p_patches.py`` checks.
"""

from __future__ import annotations

from ..errors import SetupError
import importlib.metadata
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from libp2p.custom_types import TProtocol

from .pnet import DEFAULT_HANDSHAKE_TIMEOUT, PnetConnection, PnetStats

if TYPE_CHECKING:
    from libp2p.abc import IHost, INetStream, IRawConnection
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.pubsub import Pubsub

_log = logging.getLogger("bzzz.p2p")

LIBP2P_VERSION = "0.8.1"  # the version every patch below was written against

KAD_PROTOCOL = TProtocol("/bzzz/kad/1.0.0")
# Per-peer outbound pubsub queue (py-libp2p: 32 RPCs, then silent drops).
OUTBOUND_QUEUE = 1024
RECORD_RECHECK = 1.0  # seconds between checks that our signed peer record is current
YAMUX_MAX_WINDOW = 1024 * 1024  # per-stream receive window cap (py-libp2p: 16 MiB)


class Libp2pPatchError(SetupError, RuntimeError):
    """The installed py-libp2p is not the one our patches were written for."""


@dataclass
class SecurityStats:
    """Counts of what the library would otherwise drop without a trace."""

    pubsub_bad_signature: int = 0
    pubsub_outbound_dropped: int = 0
    pubsub_malformed_rpc: int = 0  # streams ended for an RPC that did not parse or failed


SECURITY_STATS = SecurityStats()


@dataclass(frozen=True)
class PnetSettings:
    """Handed to the swarm as its ``psk``: py-libp2p only stores that value and passes it
    back to ``new_protected_conn``, so each host carries its own key, counters and deadline."""

    key: bytes
    stats: PnetStats
    timeout: float = DEFAULT_HANDSHAKE_TIMEOUT


# -- the registry and the one helper every patch goes through -------------------------------


@dataclass(frozen=True)
class Replacement:
    """One attribute a patch replaced."""

    owner: Any  # a module or a class
    attr: str
    original: Any
    new: Any

    @property
    def where(self) -> str:
        return f"{_dotted(self.owner)}.{self.attr}"


@dataclass
class AppliedPatch:
    name: str
    doc: str
    replacements: list[Replacement] = field(default_factory=list)


PatchFunc = Callable[["Patcher"], None]

PATCHES: list[PatchFunc] = []  # in the order they are applied
APPLIED: dict[str, AppliedPatch] = {}
_UNSET: Any = object()


def _dotted(obj: Any) -> str:
    """``module.qualname`` of a function or class, the name of a module."""
    qualname = getattr(obj, "__qualname__", None)
    if qualname is None:
        return getattr(obj, "__name__", repr(obj))
    return f"{obj.__module__}.{qualname}"


class Patcher:
    """Applies one named patch and records what it replaced."""

    def __init__(self, record: AppliedPatch) -> None:
        self.record = record

    def replace(self, owner: Any, attr: str, *, expect: Any, new: Any = _UNSET,
                wrap: Callable[[Any], Any] | None = None) -> Any:
        """Set ``owner.attr`` to ``new`` (or to ``wrap(original)``) and return the original.

        ``expect`` is what the original must be: for a function or class, its dotted
        ``module.qualname``; for anything else, a value it must equal.
        """
        if (new is _UNSET) == (wrap is None):
            raise TypeError("give exactly one of new= and wrap=")
        where = f"{_dotted(owner)}.{attr}"
        if not hasattr(owner, attr):
            raise Libp2pPatchError(
                f"libp2p patch {self.record.name!r}: {where} does not exist "
                f"(written for libp2p {LIBP2P_VERSION})")
        original = getattr(owner, attr)
        found = _dotted(original) if callable(original) else original
        if found != expect:
            raise Libp2pPatchError(
                f"libp2p patch {self.record.name!r}: {where} is {found!r}, expected "
                f"{expect!r} (written for libp2p {LIBP2P_VERSION})")
        replacement = wrap(original) if wrap is not None else new
        setattr(owner, attr, replacement)
        self.record.replacements.append(Replacement(owner, attr, original, replacement))
        return original


def libp2p_patch(func: PatchFunc) -> PatchFunc:
    """Register a patch; :func:`apply_all` applies them in the order they are defined."""
    if not (func.__doc__ or "").strip():
        raise TypeError(f"libp2p patch {func.__name__!r} needs a docstring saying why")
    PATCHES.append(func)
    return func


def check_version(found: str) -> None:
    if found != LIBP2P_VERSION:
        raise Libp2pPatchError(
            f"libp2p {found} is installed; Bzzz's patches of it are written for "
            f"libp2p {LIBP2P_VERSION} (pyproject.toml pins it): review bzzz/p2p/patches.py "
            f"against the new version before changing the pin")


def apply_all() -> None:
    """Apply every patch once (later calls do nothing)."""
    if APPLIED:
        return
    check_version(importlib.metadata.version("libp2p"))
    for func in PATCHES:
        record = AppliedPatch(func.__name__, (func.__doc__ or "").strip())
        func(Patcher(record))
        APPLIED[record.name] = record


# -- the patches, in the order they are applied ---------------------------------------------


@libp2p_patch
def spec_compliant_pnet(p: Patcher) -> None:
    """py-libp2p's pnet uses Salsa20 with an 8-byte nonce where the libp2p spec (and go
    and js) use XSalsa20 with a 24-byte nonce, so it does not interoperate, and mismatched
    keys hang ``connect``. Its swarm calls the module-level ``new_protected_conn(raw_conn,
    psk)``: make that our spec-compliant :class:`PnetConnection`, with per-host
    :class:`PnetSettings` (key, counters, handshake deadline)."""
    import libp2p.network.swarm as swarm_mod

    def new_protected_conn(conn: IRawConnection, psk: PnetSettings | str) -> PnetConnection:
        if not isinstance(psk, PnetSettings):  # a plain hex key, as py-libp2p takes it
            psk = PnetSettings(bytes.fromhex(psk), PnetStats())
        return PnetConnection(conn, psk.key, psk.stats, psk.timeout)

    p.replace(swarm_mod, "new_protected_conn", new=new_protected_conn,
              expect="libp2p.security.pnet.protector.new_protected_conn")


@libp2p_patch
def own_kad_protocol(p: Patcher) -> None:
    """Kademlia ignores ``protocol_prefix`` and always speaks ``/ipfs/kad/1.0.0``, so on a
    LAN with IPFS nodes the DHTs would merge. Each of its modules imported the constant by
    name: replace it in every one with ``/bzzz/kad/1.0.0``."""
    import libp2p.kad_dht.common as kad_common
    import libp2p.kad_dht.kad_dht as kad_main
    import libp2p.kad_dht.peer_routing as kad_routing
    import libp2p.kad_dht.provider_store as kad_providers
    import libp2p.kad_dht.value_store as kad_values

    for module in (kad_common, kad_main, kad_routing, kad_providers, kad_values):
        p.replace(module, "PROTOCOL_ID", new=KAD_PROTOCOL, expect="/ipfs/kad/1.0.0")


@libp2p_patch
def count_bad_signatures(p: Patcher) -> None:
    """Pubsub drops a message whose signature does not verify without a trace: count it
    (``SECURITY_STATS.pubsub_bad_signature``), so a forging peer shows in the metrics."""
    import libp2p.pubsub.pubsub as pubsub_mod

    def wrap(original: Callable[[rpc_pb2.Message], bool]
             ) -> Callable[[rpc_pb2.Message], bool]:
        def counting_signature_validator(msg: rpc_pb2.Message) -> bool:
            ok = original(msg)
            if not ok:
                SECURITY_STATS.pubsub_bad_signature += 1
            return ok
        return counting_signature_validator

    p.replace(pubsub_mod, "signature_validator", wrap=wrap,
              expect="libp2p.pubsub.validators.signature_validator")


@libp2p_patch
def deeper_outbound_queue(p: Patcher) -> None:
    """Pubsub's per-peer outbound queue holds 32 RPCs, then drops silently: a burst of
    gossip to a slow peer lost messages. Make it :data:`OUTBOUND_QUEUE` deep."""
    import libp2p.pubsub.pubsub as pubsub_mod
    import libp2p.pubsub.rpc_queue as rpc_queue_mod

    class DeeperRpcQueue(rpc_queue_mod.RpcQueue):
        def __init__(self, max_size: int = OUTBOUND_QUEUE, **kw: Any) -> None:
            super().__init__(max_size=max_size, **kw)
            self.max_size = max_size

    p.replace(pubsub_mod, "RpcQueue", new=DeeperRpcQueue,
              expect="libp2p.pubsub.rpc_queue.RpcQueue")


@libp2p_patch
def count_outbound_drops(p: Patcher) -> None:
    """What still overflows a peer's outbound queue is only logged at debug level: count
    it (``SECURITY_STATS.pubsub_outbound_dropped``)."""
    import libp2p.pubsub.pubsub as pubsub_mod

    def wrap(original: Callable[[ID, rpc_pb2.RPC], None]) -> Callable[[ID, rpc_pb2.RPC], None]:
        def counting_drop(peer_id: ID, rpc: rpc_pb2.RPC) -> None:
            SECURITY_STATS.pubsub_outbound_dropped += 1
            original(peer_id, rpc)
        return counting_drop

    p.replace(pubsub_mod, "drop_rpc", wrap=wrap, expect="libp2p.pubsub.rpc_queue.drop_rpc")


def _pubsub_modules() -> tuple[ModuleType, ...]:
    import libp2p.pubsub.floodsub as floodsub_mod
    import libp2p.pubsub.gossipsub as gossipsub_mod
    import libp2p.pubsub.pubsub as pubsub_mod

    return (pubsub_mod, gossipsub_mod, floodsub_mod)


@libp2p_patch
def cache_own_peer_record(p: Patcher) -> None:
    """On every pubsub RPC it sends, py-libp2p re-reads our addresses and marshals our
    signed peer record. Cache it per host; it is re-issued when our addresses change,
    checked at most every :data:`RECORD_RECHECK` seconds."""
    import libp2p.peer.peerstore as peerstore_mod

    original_env = peerstore_mod.env_to_send_in_RPC
    env_cache: dict[int, tuple[float, tuple[bytes, bool]]] = {}

    def cached_env_to_send_in_rpc(host: IHost) -> tuple[bytes, bool]:
        now = time.monotonic()
        hit = env_cache.get(id(host))
        if hit is not None and now - hit[0] < RECORD_RECHECK:
            return hit[1][0], False
        result = original_env(host)
        env_cache[id(host)] = (now, result)
        return result

    for module in _pubsub_modules():
        p.replace(module, "env_to_send_in_RPC", new=cached_env_to_send_in_rpc,
                  expect="libp2p.peer.peerstore.env_to_send_in_RPC")


@libp2p_patch
def verify_sender_record_once(p: Patcher) -> None:
    """On every pubsub RPC it receives, py-libp2p verifies the sender's signed peer record
    (one more Ed25519 verification per RPC). Verify each distinct record once per
    (host, peer)."""
    import libp2p.pubsub.utils as pubsub_utils

    original_consume = pubsub_utils.maybe_consume_signed_record
    consumed: dict[tuple[int, bytes], bytes] = {}

    def cached_consume(msg: rpc_pb2.RPC, host: IHost, peer_id: ID) -> bool:
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

    for module in _pubsub_modules():
        p.replace(module, "maybe_consume_signed_record", new=cached_consume,
                  expect="libp2p.pubsub.utils.maybe_consume_signed_record")


@libp2p_patch
def compact_seen_cache(p: Patcher) -> None:
    """Pubsub's seen-message cache keeps a bytes object per message id (and a sweeper
    thread per cache), which pins memory arenas: a daemon grew by ~300 MB over 100,000
    messages. Use one compact table instead (see :mod:`bzzz.p2p.seencache`)."""
    import libp2p.pubsub.pubsub as pubsub_mod

    from .seencache import SeenCache

    p.replace(pubsub_mod, "LastSeenCache", new=SeenCache,
              expect="libp2p.tools.timed_cache.last_seen_cache.LastSeenCache")


@libp2p_patch
def yamux_batched_window_updates(p: Patcher) -> None:
    """Yamux sends a WINDOW_UPDATE after every read unless ``PY_YAMUX_RELEASE_ON_READ`` is
    0, and re-reads its tuning variables from the environment on every frame. Use go-yamux's
    batching (update once half the window is consumed), decided once at import."""
    import libp2p.stream_muxer.yamux.yamux as yamux_mod

    release_on_read = os.environ.get("PY_YAMUX_RELEASE_ON_READ", "0").upper() not in (
        "0", "FALSE", "NO")
    debug = yamux_mod._perf_yamux_debug_enabled()

    def yamux_release_on_read() -> bool:
        return release_on_read

    def perf_yamux_debug_enabled() -> bool:
        return debug

    p.replace(yamux_mod, "_yamux_release_on_read", new=yamux_release_on_read,
              expect="libp2p.stream_muxer.yamux.yamux._yamux_release_on_read")
    p.replace(yamux_mod, "_perf_yamux_debug_enabled", new=perf_yamux_debug_enabled,
              expect="libp2p.stream_muxer.yamux.yamux._perf_yamux_debug_enabled")


@libp2p_patch
def yamux_window_cap(p: Patcher) -> None:
    """Yamux receive windows auto-tune up to 16 MiB per stream, all of it buffered in
    memory when the reader lags; Bzzz's streams carry gossip and small control messages.
    Cap them at :data:`YAMUX_MAX_WINDOW`."""
    import libp2p.stream_muxer.yamux.yamux as yamux_mod

    p.replace(yamux_mod, "MAX_WINDOW_SIZE", new=YAMUX_MAX_WINDOW, expect=16 * 1024 * 1024)


@libp2p_patch
def dial_addresses_together(p: Patcher) -> None:
    """After starting the dial of each address, the swarm waits up to 250 ms ("happy
    eyeballs" head start) for it to fail before the next one, and it waits after the last
    address too, even when that dial succeeded at once: every new connection took 250 ms
    (measured on loopback: connect 251 ms, 0.1 ms without). Our peers advertise one or two
    TCP addresses: dial them together."""
    import libp2p.network.swarm as swarm_mod

    p.replace(swarm_mod, "_HAPPY_EYEBALLS_DELAY", new=0.0, expect=0.250)


@libp2p_patch
def pubsub_errors_end_stream(p: Patcher) -> None:
    """A pubsub RPC that is not valid protobuf (a peer's garbage, or a stream cut
    mid-message) raises protobuf's DecodeError, which the stream handler does not catch:
    it ends the connection's nursery and with it the swarm, so one peer's bytes stopped the
    whole daemon. Any other failure while handling a peer's RPC would do the same. Make it
    a ParseError, which the handler already treats as a bad stream (reset it, forget the
    peer; the peer may reconnect), and count it (``SECURITY_STATS.pubsub_malformed_rpc``)."""
    import libp2p.pubsub.pubsub as pubsub_mod
    from libp2p.exceptions import ParseError
    from libp2p.io.exceptions import IncompleteReadError
    from libp2p.network.stream.exceptions import StreamError

    handled = (ParseError, StreamError, IncompleteReadError)  # the handler's own cases

    def wrap(original_read: Callable[[Pubsub, INetStream], Awaitable[None]]
             ) -> Callable[[Pubsub, INetStream], Awaitable[None]]:
        async def guarded_read(self: Pubsub, stream: INetStream) -> None:
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
        return guarded_read

    p.replace(pubsub_mod.Pubsub, "continuously_read_stream", wrap=wrap,
              expect="libp2p.pubsub.pubsub.Pubsub.continuously_read_stream")


apply_all()
