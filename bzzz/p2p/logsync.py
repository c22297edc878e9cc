"""Log replication over libp2p: serve ``/bzzz/hyperlog/1.0.0`` and follow peers' logs.

Every agent serves its own log and the copies it verified; it follows the log of each peer
in its table (the ``log_key`` of its announcements) into ``data_dir/replicas/<key>``. Each
followed log is one stream, all of a peer's over its one connection. A peer that sends a bad
proof, a bad signature or an oversized message is disconnected and counted
(``bzzz_log_bad_peers_total{reason}``); a log whose key signed two histories is frozen
(``bzzz_log_conflicts``, and the status API lists it).

Following watches itself: a peer announces the length of its own log, and a follower whose
copy has not advanced for ``stall_after`` seconds (STALL_INTERVALS announcement intervals,
so that it moves again within two) while the
peer announces a longer log is stalled, whatever it waits on (a stream over a connection
that died without closing it, a dial to an address the peer left, a long back-off after
the peer was away). It is told with what it was waiting on, counted
(``bzzz_log_follow_stalls_total``), and started again at once on a new stream.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import trio
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF, StreamError
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr.exceptions import Error as MultiaddrError

from ..errors import closing_quietly
from ..hyperlog.replicate import (PROTOCOL, Channel, ChannelClosed, LogConflict, LogServer,
                                  PeerMisbehaved, Progress, ReplicationError, Replicator)
from ..hyperlog.store import Hyperlog, LogError

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from .node import P2PNode

log = logging.getLogger("bzzz.logsync")

OPEN_TIMEOUT = 10.0  # seconds to open a replication stream (dial included)
CHECK_EVERY = 0.25  # seconds between looks at what to follow and whether it moves
# announcement intervals a follower may stand still behind its peer's announced length;
# with the time to notice and to reconnect it moves again within two intervals
STALL_INTERVALS = 1.25
HYPERLOG = TProtocol(PROTOCOL)


@dataclass
class Following:
    """One followed log: its task's cancel scope and how far it has come."""

    peer: str
    key: bytes
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    stage: str = "starting"
    length: int = 0  # of our copy when last looked at
    behind_since: float | None = None  # since when the peer announces more than we have


def stream_channel(stream: INetStream) -> Channel:
    async def read(n: int) -> bytes:
        try:
            return await stream.read(n)
        except StreamEOF:
            return b""
        except StreamError as exc:
            raise ChannelClosed(f"stream: {type(exc).__name__}") from exc

    async def write(data: bytes) -> None:
        try:
            await stream.write(data)
        except StreamError as exc:
            raise ChannelClosed(f"stream: {type(exc).__name__}") from exc

    return Channel(read, write)


class LogSync:
    def __init__(self, node: P2PNode, own: Hyperlog, replicas_dir: Path, *,
                 follow: int = 2,
                 peers: Callable[[], list[tuple[str, str]]] = lambda: [],
                 announced: Callable[[str], int] = lambda peer: 0,
                 stall_after: float = 10.0) -> None:
        self.node = node
        self.server = LogServer()
        self.server.add(own)
        self.own_key = own.key
        self.dir = replicas_dir
        self.follow = follow  # how many peers' logs to follow (0: none)
        self.peers = peers  # (peer id, log key hex) of the peers in the table
        self.announced = announced  # a peer id -> the length of its log it last announced
        self.stall_after = stall_after
        self.replicators: dict[bytes, Replicator] = {}
        self.bad_peers: Counter[str] = Counter()  # by reason
        self.following: dict[str, Following] = {}
        self.stalls = 0  # followers started again because they did not move
        # the last error of following each log (None once it syncs again), and who is told
        # of each replica as it opens (the monitor indexes them)
        self.errors: dict[bytes, str | None] = {}
        self.on_replica: list[Callable[[bytes, Hyperlog], None]] = []
        self._open_existing()

    # ------------------------------------------------------------------ replicas on disk

    def _open_existing(self) -> None:
        if not self.dir.is_dir():
            return
        for d in sorted(self.dir.iterdir()):
            try:
                key = bytes.fromhex(d.name)
            except ValueError:
                continue
            rep = Replicator(key, d)
            rep.on_open = self._opened
            self.replicators[key] = rep
            if rep.conflict is not None:
                self.server.freeze(key, rep.conflict)
                continue
            try:
                with Hyperlog.open(d) as peek:
                    public_key = peek.public_key
                rep._ensure(public_key)
            except (LogError, OSError, ReplicationError) as exc:
                log.warning("cannot open a replica", extra={"dir": str(d), "error": str(exc)})

    def replicator(self, key: bytes) -> Replicator:
        rep = self.replicators.get(key)
        if rep is None:
            rep = self.replicators[key] = Replicator(key, self.dir / key.hex())
            rep.on_open = self._opened  # serve it as soon as it exists
        return rep

    def _opened(self, log: Hyperlog) -> None:
        self.server.add(log)
        for callback in list(self.on_replica):
            callback(log.key, log)

    @property
    def conflicts(self) -> list[str]:
        return sorted(k.hex() for k in self.server.conflicts)

    def status(self) -> dict[str, Any]:
        return {"replicas": {k.hex(): (r.log.length if r.log else 0)
                             for k, r in self.replicators.items()},
                "conflicts": self.conflicts, "bad_peers": dict(self.bad_peers),
                "follow_stalls": self.stalls}

    def _copied(self, key: bytes) -> int:
        rep = self.replicators.get(key)
        return rep.log.length if rep is not None and rep.log is not None else 0

    def close(self) -> None:
        for rep in self.replicators.values():
            rep.close()

    # ------------------------------------------------------------------ serving

    async def _handle(self, stream: INetStream) -> None:
        try:
            await self.server.serve(stream_channel(stream))
        except PeerMisbehaved as exc:
            self.bad_peers[exc.reason] += 1
            await stream.reset()
        except ReplicationError as exc:  # the reader went, or asked for what we do not hold
            log.debug("serving a log ended", extra={"error": str(exc)})
        finally:
            with closing_quietly(log, "a served log stream"):
                await stream.close()

    # ------------------------------------------------------------------ following

    async def _open(self, peer: str) -> INetStream:
        pid = ID.from_base58(peer)
        with trio.move_on_after(OPEN_TIMEOUT):
            return await self.node.open_stream(pid, [HYPERLOG])
        # a connection that carries no new stream is dead whatever it says: drop it, so
        # that the next attempt dials afresh
        with trio.move_on_after(1):
            await self.node.host.disconnect(pid)
        raise ChannelClosed(f"no stream opened within {OPEN_TIMEOUT:g} s")

    async def sync_from(self, peer: str, key: bytes, *, follow: bool = False,
                        state: Following | None = None) -> int:
        """Replicate log ``key`` from ``peer`` (any holder); returns the verified length."""
        rep = self.replicator(key)
        if state is not None:
            state.stage = "opening a stream"
        stream = await self._open(peer)
        if state is not None:
            state.stage = "replicating"
        try:
            length = await rep.sync(stream_channel(stream), follow=follow)
        except PeerMisbehaved as exc:
            self.bad_peers[exc.reason] += 1
            log.warning("peer sent bad log data; disconnecting", extra={
                "peer": peer, "reason": exc.reason, "error": str(exc)})
            await stream.reset()
            await self.node.host.disconnect(ID.from_base58(peer))
            raise
        except LogConflict:
            assert rep.conflict is not None
            self.server.freeze(key, rep.conflict)
            raise
        finally:
            with closing_quietly(log, "a log stream"):
                await stream.close()
        return length

    async def _follow(self, state: Following) -> None:
        peer, key = state.peer, state.key
        delay = 1.0
        while True:
            try:
                await self.sync_from(peer, key, follow=True, state=state)
                delay = 1.0
            except LogConflict as exc:
                log.error("log frozen", extra={"peer": peer, "error": str(exc)})
                self.errors[key] = str(exc)
                return
            except PeerMisbehaved as exc:
                self.errors[key] = f"{exc.reason}: {exc}"
                delay = 60.0
            except ReplicationError as exc:
                if not isinstance(exc, ChannelClosed) and "does not hold" not in str(exc):
                    self.errors[key] = str(exc)  # the peer could not serve it (damaged data)
                delay = min(30.0, delay * 2)
            except Exception as exc:  # a peer gone, a stream reset, a disk error: retry
                log.debug("following a log paused", extra={"peer": peer, "error": str(exc)})
                delay = min(30.0, delay * 2)
            state.stage = f"waiting {delay:.0f} s to try again"
            await trio.sleep(delay * (0.5 + random.random()))

    async def run(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.node.host.set_stream_handler(HYPERLOG, self._handle)
        async with trio.open_nursery() as nursery:
            task_status.started()
            while self.follow > 0:
                wanted = dict(self._choose())
                for name in list(self.following):
                    if name not in wanted:
                        self.following.pop(name).scope.cancel()
                self._restart_stalled(trio.current_time())
                for name, (peer, key) in wanted.items():
                    if name not in self.following:
                        state = self.following[name] = Following(peer, key)
                        state.length = self._copied(key)
                        nursery.start_soon(self._scoped, state)
                await trio.sleep(CHECK_EVERY)

    def _restart_stalled(self, now: float) -> None:
        """Cancel each follower that has not moved for ``stall_after`` seconds while its
        peer announces a longer log (the caller starts it again at once)."""
        for name, state in list(self.following.items()):
            have = self._copied(state.key)
            behind = self.announced(state.peer) > have
            if not behind or have > state.length:
                state.length = have
                state.behind_since = now if behind else None
                continue
            if state.behind_since is None:
                state.behind_since = now
            elif now - state.behind_since >= self.stall_after:
                rep = self.replicators.get(state.key)
                self.stalls += 1
                log.warning("following a log stalled; starting it again", extra={
                    "peer": state.peer, "log": state.key.hex()[:16], "have": have,
                    "announced": self.announced(state.peer),
                    "stalled_s": round(now - state.behind_since, 1),
                    "waiting_on": state.stage if state.stage != "replicating" or rep is None
                    else f"replicating: {rep.waiting_on}"})
                state.scope.cancel()
                del self.following[name]

    def _choose(self) -> list[tuple[str, tuple[str, bytes]]]:
        """The peers' logs to follow: ``follow`` of them, picked by rendezvous hashing of
        (our key, their key), so each log ends up followed by about ``follow`` peers however
        large the mesh (and the monitor follows them all)."""
        options = []
        for peer, key_hex in self.peers():
            try:
                key = bytes.fromhex(key_hex)
            except ValueError:
                continue
            if len(key) == 32 and key != self.own_key and key not in self.server.conflicts:
                rank = hashlib.blake2b(self.own_key + key, digest_size=8).digest()
                options.append((rank, f"{peer}/{key_hex}", (peer, key)))
        options.sort()
        return [(name, target) for _, name, target in options[: self.follow]]

    async def _scoped(self, state: Following) -> None:
        with state.scope:
            await self._follow(state)


# ---------------------------------------------------------------------- the command line

def ephemeral_node(psk: bytes | None = None) -> P2PNode:
    """A throwaway libp2p node (fresh identity, loopback, no mDNS) for one-off clients."""
    from libp2p.crypto.ed25519 import create_new_key_pair

    from ..identity import Identity
    from .node import P2PNode

    return P2PNode(Identity(create_new_key_pair(), Path(".")), ["/ip4/127.0.0.1/tcp/0"],
                   mdns=False, psk=psk)


async def replicate_command(source: str, key_hex: str, path: str, *, follow: bool = False,
                            psk_file: str | None = None, out: TextIO | None = None,
                            err: TextIO | None = None) -> int:
    """``bzzz log replicate``: a throwaway libp2p identity dials ``source`` (a multiaddr
    ending in /p2p/<peer id>) and copies log ``key_hex`` into ``path``, verifying every
    block; a progress bar goes to standard error."""
    import sys

    from .pnet import load_psk

    out, err = out or sys.stdout, err or sys.stderr
    parsed = _replicate_args(key_hex, source, err)
    if parsed is None:
        return 2
    key, info = parsed
    psk = load_psk(psk_file) if psk_file else None
    node = ephemeral_node(psk)
    rep = Replicator(key, path)
    rep.on_progress = _progress_bar(err)
    status = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        try:
            with trio.fail_after(30):
                await node.host.connect(info)
            stream = await node.host.new_stream(info.peer_id, [HYPERLOG])
            length = await rep.sync(stream_channel(stream), follow=follow)
            err.write("\n")
            out.write(f"{length} blocks of log {key_hex} verified and stored in {path}\n")
        except trio.TooSlowError:
            err.write(f"\nbzzz: log replicate: cannot reach {source}\n")
            status = 1
        except LogConflict as exc:
            err.write(f"\nbzzz: log replicate: {exc}\n")
            status = 3
        except (ReplicationError, LogError, OSError, StreamError) as exc:
            err.write(f"\nbzzz: log replicate: {exc}\n")
            status = 1
        finally:
            rep.close()
            nursery.cancel_scope.cancel()
    return status


def _replicate_args(key_hex: str, source: str, err: TextIO) -> tuple[bytes, PeerInfo] | None:
    """The log key and the peer to dial, or None once the usage error is written."""
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr

    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        key = b""
    if len(key) != 32:
        err.write("bzzz: log replicate: --key takes the log key, 64 hex digits\n")
        return None
    try:
        info = info_from_p2p_addr(Multiaddr(source))
    except (ValueError, MultiaddrError):  # not a multiaddr, or no /p2p/<id> at its end
        err.write(f"bzzz: log replicate: {source!r} is not a multiaddr ending in /p2p/<peer id>\n")
        return None
    return key, info


def _progress_bar(err: TextIO) -> Callable[[Progress], None]:
    """A replication's progress as a bar on ``err``, redrawn at most five times a second
    (and at the end); its rate counts from now."""
    import time

    started, shown = time.monotonic(), [0.0]

    def progress(p: Progress) -> None:
        now = time.monotonic()
        if now - shown[0] < 0.2 and p.length < p.target:
            return
        shown[0] = now
        width = 30
        done = int(width * p.length / p.target) if p.target else width
        rate = p.bytes / max(1e-6, now - started) / 1e6
        err.write(f"\r[{'#' * done}{'.' * (width - done)}] {p.length}/{p.target} blocks "
                  f"{rate:.1f} MB/s ")
        err.flush()

    return progress
