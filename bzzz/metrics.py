"""Prometheus metrics, one registry per agent (several agents can share a process in tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import generate_latest


class _CallbackCounter:
    """A counter whose value is read from elsewhere (a library's own tally) at scrape time;
    with a label, ``read`` returns {label value: count}."""

    def __init__(self, name: str, documentation: str, read: Callable[[], Any],
                 label: str | None = None) -> None:
        self._name, self._doc, self._read, self._label = name, documentation, read, label

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._doc,
                                     labels=[self._label] if self._label else None)
        if self._label:
            for value, count in sorted(self._read().items()):
                family.add_metric([str(value)], float(count))
        else:
            family.add_metric([], float(self._read()))
        yield family


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.info = Gauge("bzzz_info", "Constant 1, labelled with node and version",
                          ["node_id", "peer_id", "version"], registry=r)
        self.peers = Gauge("bzzz_peers", "Peers in the capability table", registry=r)
        self.connections = Gauge("bzzz_connections", "Open libp2p connections", registry=r)
        self.announcements_sent = Counter("bzzz_announcements_sent",
                                          "Capability announcements published", registry=r)
        self.messages_received = Counter("bzzz_pubsub_messages_received",
                                         "Valid pubsub messages received", ["topic", "type"],
                                         registry=r)
        self.messages_dropped = Counter("bzzz_pubsub_messages_dropped",
                                        "Pubsub messages rejected, by reason",
                                        ["topic", "reason"], registry=r)
        self.peer_events = Counter("bzzz_peer_events", "Peer table changes",
                                   ["event"], registry=r)
        self.pnet_rejected = Counter("bzzz_pnet_rejected",
                                     "Connections refused by the private network",
                                     ["reason"], registry=r)
        self.announce_latency = Histogram(
            "bzzz_announcement_age_seconds", "Age of capability announcements on arrival",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r)
        self.log_conflicts = Gauge("bzzz_log_conflicts",
                                   "Logs frozen because their key signed two histories",
                                   registry=r)
        self.loop_errors = Counter("bzzz_loop_errors", "Errors caught in service loops",
                                   ["service"], registry=r)

    def counter_from(self, name: str, documentation: str, read: Callable[[], Any],
                     label: str | None = None) -> None:
        self.registry.register(_CallbackCounter(name, documentation, read, label))

    def gauge_from(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def render(self) -> bytes:
        return generate_latest(self.registry)
