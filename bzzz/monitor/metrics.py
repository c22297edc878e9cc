"""The monitor's ``/metrics``: mesh-wide series, read from the index at scrape time.

Prometheus naming: base units, ``_total`` counters, and no peer ids or issue numbers as
label values except in the ``_info`` series (docs/monitor-api.md lists them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from .. import __version__
from .state import STATES

if TYPE_CHECKING:
    from .node import Monitor

LOG_STATES = ("verified", "syncing", "frozen", "failing")
REFUSALS = ("no_claim", "future", "command", "log_key")


class _MeshCollector:
    def __init__(self, monitor: "Monitor") -> None:
        self.m = monitor

    def collect(self) -> Iterator[Metric]:
        m = self.m
        agents = m.agent_docs()
        g = GaugeMetricFamily("bzzz_mesh_agents", "Agents by state", labels=["state"])
        for state in ("up", "gone"):
            g.add_metric([state], sum(1 for a in agents if a["state"] == state))
        yield g
        g = GaugeMetricFamily("bzzz_mesh_tasks", "Tasks by state", labels=["state"])
        counts = m.index.counts()
        for state in STATES:
            g.add_metric([state], counts.get(state, 0))
        yield g
        yield CounterMetricFamily("bzzz_mesh_claim_conflicts",
                                  "Claim contentions seen in the agents' logs",
                                  value=m.index.claim_conflicts())
        c = CounterMetricFamily("bzzz_mesh_help_requests", "Help requests by outcome",
                                labels=["outcome"])
        for outcome, n in sorted(m.index.help_outcomes().items()):
            c.add_metric([outcome], n)
        yield c
        yield GaugeMetricFamily("bzzz_mesh_log_entries", "Entries replicated, all logs",
                                value=sum(a["log"]["replicated"] for a in agents))
        g = GaugeMetricFamily("bzzz_mesh_logs", "Logs by verification state", labels=["state"])
        for state in LOG_STATES:
            g.add_metric([state], sum(1 for a in agents if a["log"]["state"] == state))
        yield g
        yield CounterMetricFamily("bzzz_mesh_verification_failures",
                                  "Replicas that failed verification (bad proof, signature, "
                                  "conflict)", value=sum(m.logsync.bad_peers.values())
                                  + len(m.logsync.server.conflicts) + m.verify_failures)
        yield CounterMetricFamily("bzzz_log_follow_stalls",
                                  "Log followers started again after not moving while their "
                                  "agent announced a longer log", value=m.logsync.stalls)
        yield CounterMetricFamily("bzzz_mesh_index_entries", "Decisions indexed",
                                  value=m.index.total)
        c = CounterMetricFamily("bzzz_mesh_decisions_refused",
                                "Decisions about tasks that did not count (no claim held, "
                                "dated in the future, an unproven command), and log keys "
                                "announced by a peer that does not sign them",
                                labels=["reason"])
        for reason in REFUSALS:
            c.add_metric([reason], m.trust.refused.get(reason, 0))
        yield c
        yield CounterMetricFamily("bzzz_mesh_events_dropped",
                                  "Live-page events dropped for slow subscribers",
                                  value=m.events.dropped)
        info = GaugeMetricFamily("bzzz_mesh_agent_info", "1 per known agent",
                                 labels=["peer_id", "node_id", "version"])
        for a in agents:
            info.add_metric([a["peer_id"], a["node_id"] or "", a["version"] or ""], 1)
        yield info
        info = GaugeMetricFamily("bzzz_monitor_info", "Constant 1, labelled with the monitor",
                                 labels=["peer_id", "node_id", "version"])
        info.add_metric([m.peer_id, m.config.node_id, __version__], 1)
        yield info


class MonitorMetrics:
    def __init__(self, monitor: "Monitor") -> None:
        self.registry = CollectorRegistry()
        self.lag = Histogram("bzzz_mesh_replication_lag_seconds",
                             "Decision timestamp on its agent to indexed on the monitor",
                             buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                                      300), registry=self.registry)
        self.registry.register(_MeshCollector(monitor))

    def render(self) -> bytes:
        return generate_latest(self.registry)
