"""Log replication over libp2p: serve ``/bzzz/hyperlog/1.0.0`` and follow peers' logs.

Every agent serves its own log and the copies it verified; it follows the log of each peer
in its table (the ``log_key`` of its announcements) into ``data_dir/replicas/<key>``. Each
followed log is one stream, all of a peer's over its one connection. A peer that sends a bad
proof, a bad signature or an oversized message is disconnected and counted
(``bzzz_log_bad_peers_total{reason}``); a log whose key signed two histories is frozen
(``bzzz_log_conflicts``, and the status API lists it).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import trio
from libp2p.network.stream.exceptions import StreamEOF, StreamError
from libp2p.peer.id import ID

from ..hyperlog.replicate import (PROTOCOL, Channel, ChannelClosed, LogConflict, LogServer,
                                  PeerMisbehaved, ReplicationError, Replicator)
from ..hyperlog.store import Hyperlog, LogError

log = logging.getLogger("bzzz.logsync")


def stream_channel(stream) -> Channel:
    async def read(n: int) -> bytes:
        try:
            return await stream.read(n)
        except StreamEOF:
            return b""
        except StreamError as exc:
            raise ChannelClosed(f"stream: {type(exc).__name__}") from None

    async def write(data: bytes) -> None:
        try:
            await stream.write(data)
        except StreamError as exc:
            raise ChannelClosed(f"stream: {type(exc).__name__}") from None

    return Channel(read, write)


class LogSync:
    def __init__(self, node, own: Hyperlog, replicas_dir: Path, *,
                 follow: int = 2,
                 peers: Callable[[], list[tuple[str, str]]] = lambda: []) -> None:
        self.node = node
        self.server = LogServer()
        self.server.add(own)
        self.own_key = own.key
        self.dir = replicas_dir
        self.follow = follow  # how many peers' logs to follow (0: none)
        self.peers = peers  # (peer id, log key hex) of the peers in the table
        self.replicators: dict[bytes, Replicator] = {}
        self.bad_peers: Counter = Counter()  # by reason
        self.following: dict[str, trio.CancelScope] = {}
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

    def status(self) -> dict:
        return {"replicas": {k.hex(): (r.log.length if r.log else 0)
                             for k, r in self.replicators.items()},
                "conflicts": self.conflicts, "bad_peers": dict(self.bad_peers)}

    def close(self) -> None:
        for rep in self.replicators.values():
            rep.close()

    # ------------------------------------------------------------------ serving

    async def _handle(self, stream) -> None:
        try:
            await self.server.serve(stream_channel(stream))
        except PeerMisbehaved as exc:
            self.bad_peers[exc.reason] += 1
            await stream.reset()
        except ReplicationError:
            pass
        finally:
            try:
                await stream.close()
            except Exception:
                pass

    # ------------------------------------------------------------------ following

    async def sync_from(self, peer: str, key: bytes, *, follow: bool = False) -> int:
        """Replicate log ``key`` from ``peer`` (any holder); returns the verified length."""
        rep = self.replicator(key)
        stream = await self.node.host.new_stream(ID.from_base58(peer), [PROTOCOL])
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
            try:
                await stream.close()
            except Exception:
                pass
        return length

    async def _follow(self, peer: str, key: bytes) -> None:
        delay = 1.0
        while True:
            try:
                await self.sync_from(peer, key, follow=True)
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
            await trio.sleep(delay * (0.5 + random.random()))

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self.node.host.set_stream_handler(PROTOCOL, self._handle)
        async with trio.open_nursery() as nursery:
            task_status.started()
            while self.follow > 0:
                wanted = dict(self._choose())
                for name in list(self.following):
                    if name not in wanted:
                        self.following.pop(name).cancel()
                for name, (peer, key) in wanted.items():
                    if name not in self.following:
                        scope = trio.CancelScope()
                        self.following[name] = scope
                        nursery.start_soon(self._scoped, scope, peer, key)
                await trio.sleep(1.0)

    def _choose(self) -> list[tuple[str, tuple[str, bytes]]]:
        """The peers' logs to follow: ``follow`` of them, picked by rendezvous hashing of
        (our key, their key), so each log ends up followed by about ``follow`` peers however
        large the mesh (and the monitor follows them all)."""
        import hashlib
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

    async def _scoped(self, scope: trio.CancelScope, peer: str, key: bytes) -> None:
        with scope:
            await self._follow(peer, key)


# ---------------------------------------------------------------------- the command line

def ephemeral_node(psk: bytes | None = None):
    """A throwaway libp2p node (fresh identity, loopback, no mDNS) for one-off clients."""
    from libp2p.crypto.ed25519 import create_new_key_pair

    from ..identity import Identity
    from .node import P2PNode

    return P2PNode(Identity(create_new_key_pair(), Path(".")), ["/ip4/127.0.0.1/tcp/0"],
                   mdns=False, psk=psk)


async def replicate_command(source: str, key_hex: str, path: str, *, follow: bool = False,
                            psk_file: str | None = None, out=None, err=None) -> int:
    """``bzzz log replicate``: a throwaway libp2p identity dials ``source`` (a multiaddr
    ending in /p2p/<peer id>) and copies log ``key_hex`` into ``path``, verifying every
    block; a progress bar goes to standard error."""
    import sys
    import time

    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr

    from .pnet import load_psk

    out, err = out or sys.stdout, err or sys.stderr
    try:
        key = bytes.fromhex(key_hex)
        assert len(key) == 32
    except (ValueError, AssertionError):
        err.write("bzzz: log replicate: --key takes the log key, 64 hex digits\n")
        return 2
    try:
        info = info_from_p2p_addr(Multiaddr(source))
    except Exception:
        err.write(f"bzzz: log replicate: {source!r} is not a multiaddr ending in /p2p/<peer id>\n")
        return 2
    psk = load_psk(psk_file) if psk_file else None
    node = ephemeral_node(psk)
    rep = Replicator(key, path)
    started, shown = time.monotonic(), [0.0]

    def progress(p) -> None:
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

    rep.on_progress = progress
    status = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        try:
            with trio.fail_after(30):
                await node.host.connect(info)
            stream = await node.host.new_stream(info.peer_id, [PROTOCOL])
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
