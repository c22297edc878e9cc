"""The agent: composes the services under one nursery and shuts them down cleanly.

SIGTERM (what Docker Swarm sends) or SIGINT: a departure message is published and flushed,
connections are closed, and the process exits 0 within a few seconds.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import time
from typing import Any

import trio

from . import __version__, logs
from .api import Api
from .config import Config
from .identity import Identity, load_or_create
from .metrics import Metrics
from .p2p import capabilities as caps_mod
from .p2p.mesh import Mesh
from .p2p.node import P2PNode
from .p2p.pnet import load_psk

log = logging.getLogger("bzzz.agent")

SHUTDOWN_BUDGET = 3.0
MAINTENANCE_INTERVAL = 30.0


def _malloc_trim():
    """glibc's malloc_trim, or None elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


async def _maintenance(interval: float) -> None:
    """Hand freed heap back to the OS after bursts of traffic.

    glibc keeps freed memory for reuse; after a burst of messages a Python daemon can sit
    on tens of MB it no longer needs. malloc_trim(0) returns it (a few ms every interval).
    """
    trim = _malloc_trim()
    if trim is None:
        return
    while True:
        await trio.sleep(interval)
        trim(0)


def _register_token_secret(config: Config) -> None:
    """Make sure a configured GitHub token can never reach a log line."""
    path = config.github.token_file
    if path is None:
        return
    try:
        logs.register_secret(path.read_text().strip())
    except OSError:
        pass  # reported by the GitHub client when it needs the token


class Agent:
    def __init__(self, config: Config, identity: Identity | None = None) -> None:
        self.config = config
        self.identity = identity or load_or_create(config.data_dir)
        self.peer_id = self.identity.peer_id.to_base58()
        psk = load_psk(config.psk_file) if config.psk_file else None
        if psk is not None:
            logs.register_secret(psk.hex())
        _register_token_secret(config)
        self.metrics = Metrics()
        self.metrics.info.labels(config.node_id, self.peer_id, __version__).set(1)
        self.capabilities = caps_mod.detect(config.capabilities, config.detect_capabilities,
                                            config.ollama_url)
        self.node = P2PNode(self.identity, config.listen, mdns=config.mdns,
                            bootstrap=config.bootstrap, psk=psk)
        self.node.pnet_stats.on_reject.append(
            lambda reason: self.metrics.pnet_rejected.labels(reason).inc())
        self.mesh = Mesh(self.node, config.node_id, self.capabilities,
                         interval=config.announce_interval, max_tasks=config.max_tasks,
                         metrics=self.metrics)
        # py-libp2p drops badly signed messages before our validators see them; it counts
        # them only through our patch (bzzz.p2p.host), read at scrape time.
        self.metrics.counter_from("bzzz_pubsub_bad_signatures",
                                  "Pubsub messages whose signature did not verify",
                                  lambda: self.node.security_stats.pubsub_bad_signature)
        self.api = Api(self.status, self.render_metrics, healthy=self.node.started.is_set)
        self.tasks: list[dict[str, Any]] = []
        self.maintenance_interval = MAINTENANCE_INTERVAL
        self.ready = trio.Event()
        self.started_at = time.time()

    # ---------------------------------------------------------------- observability

    def status(self) -> dict[str, Any]:
        peers = [{
            "peer_id": e.announcement.peer_id,
            "node_id": e.announcement.node_id,
            "addrs": list(e.announcement.addrs),
            "capabilities": list(e.announcement.capabilities),
            "load": {"running": e.announcement.load[0], "max": e.announcement.load[1]},
            "last_seen": round(e.last_seen, 3),
        } for e in self.mesh.table.entries()]
        return {
            "node_id": self.config.node_id,
            "peer_id": self.peer_id,
            "addrs": self.node.addrs() if self.node.started.is_set() else [],
            "capabilities": self.capabilities,
            "version": __version__,
            "uptime": round(time.time() - self.started_at, 1),
            "peers": peers,
            "connections": len(self.node.connected_peers()) if self.node.started.is_set() else 0,
            "tasks": list(self.tasks),
            "log": {"key": self.mesh.log_key, "length": 0},
            "drops": dict(self.mesh.drops),
            "announcement_age": self.mesh.age_quantiles(),
            "pnet": {"enabled": self.config.psk_file is not None,
                     "rejected": self.node.pnet_stats.rejected},
        }

    def render_metrics(self) -> bytes:
        self.metrics.connections.set(len(self.node.connected_peers()))
        return self.metrics.render()

    # ---------------------------------------------------------------- running

    async def run(self, task_status=trio.TASK_STATUS_IGNORED, *, handle_signals: bool = True) -> None:
        host, port = self.config.api_host_port
        async with trio.open_nursery() as nursery:
            await nursery.start(self.node.run)
            await nursery.start(self.mesh.run)
            await nursery.start(self.api.run, host, port)
            nursery.start_soon(_maintenance, self.maintenance_interval)
            log.info("agent started", extra={"peer": self.peer_id,
                                             "addrs": ",".join(self.node.addrs()),
                                             "api": ",".join(self.api.bound)})
            self.ready.set()
            task_status.started(self)
            if handle_signals:
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        log.info("signal received, shutting down",
                                 extra={"signal": signal.Signals(signum).name})
                        break
                await self.shutdown()
                nursery.cancel_scope.cancel()

    async def shutdown(self) -> None:
        """Say goodbye, flush it, close connections (bounded by SHUTDOWN_BUDGET)."""
        with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_BUDGET):
            try:
                await self.mesh.depart()
                await self.node.flush(1.0)
            except Exception:
                log.exception("departure announcement failed")
            await self.node.close_connections()
