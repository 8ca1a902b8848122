"""Prometheus metrics, collected from the manager's plain counters at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from v3_core import ConnectionManager
from v3_core.latency import Histogram

from .dead_letters import DeadLetters
from .uvicorn_ws import PING_CLOSES
from .v2.control import V2Control
from .v2.policy import GLOBAL, MODES
from .version import VERSION

_COUNTERS = {
    "connections_opened": "WebSocket connections accepted",
    "connections_rejected": "WebSocket connections refused because a backend was down",
    "messages_received": "frames received from clients",
    "messages_rejected": "client frames answered with an error reply",
    "messages_rate_limited": "client frames over the rate limit (also in messages_rejected)",
    "rate_limit_closes": "connections closed with 4529 for staying over the rate limit",
    "messages_published": "messages published to the broker",
    "publish_failures": "publishes that failed (the sender got an error reply)",
    "broker_messages": "messages received from the broker",
    "deliveries": "messages queued for local connections",
    "discontinuities": "broker reconnects announced to clients as resync",
    "slow_consumers": "connections closed because they did not read fast enough",
    "presence_expired": "clients whose presence expired (their node stopped refreshing)",
    "broker_unreadable": "messages from the broker this node could not read, dropped (another "
    "release's envelope format, or a body that is not a V3 message)",
}


class ManagerCollector(Collector):
    def __init__(self, manager: ConnectionManager) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Metric]:
        stats = self._manager.stats
        for name, help_text in _COUNTERS.items():
            counter = CounterMetricFamily(f"aether_{name}", help_text)
            counter.add_metric([], getattr(stats, name))
            yield counter
        refused = CounterMetricFamily(
            "aether_connections_refused",
            "WebSocket connections refused at a connection limit of this node "
            "(client-limit: 4529, node-limit: 1013)",
            labels=["reason"],
        )
        refused.add_metric(["client-limit"], stats.client_limit_refusals)
        refused.add_metric(["node-limit"], stats.node_limit_refusals)
        yield refused
        pings = CounterMetricFamily(
            "aether_ping_closes",
            "connections closed for their WebSocket pings (too-many-pings: 4529 over "
            "AETHER_MAX_PINGS_PER_SECOND; not-reading: 4008, pinging with a full socket)",
            labels=["reason"],
        )
        for reason, n in PING_CLOSES.by_reason.items():
            pings.add_metric([reason], n)
        yield pings
        yield from self._recovery()
        yield from self._latency_and_errors()
        yield GaugeMetricFamily(
            "aether_connections", "open WebSocket connections", value=len(self._manager)
        )
        yield GaugeMetricFamily(
            "aether_broker_ready", "1 while the broker is connected", value=int(self._manager.ready)
        )

    def _latency_and_errors(self) -> Iterator[Metric]:
        # Labelled by node, so a dashboard can split a cluster without relabelling.
        node, latency, stats = self._manager.node_id, self._manager.latency, self._manager.stats
        for name, histogram, help_text in (
            ("publish", latency.publish, "time to publish one message (the broker round trip)"),
            ("fan_out", latency.fan_out, "time to hand one broker message to local recipients"),
            ("handshake", latency.handshake, "WebSocket connect event to accept sent"),
        ):
            yield _histogram(f"aether_{name}_seconds", help_text, histogram, node)
        errors = CounterMetricFamily(
            "aether_error_replies",
            "error replies sent to clients, by error code",
            labels=["node", "code"],
        )
        for code, n in sorted(stats.error_replies.items()):
            errors.add_metric([node, code], n)
        yield errors
        traffic = CounterMetricFamily(
            "aether_traffic_messages",
            "client messages handled, by protocol (v3, v2, http) and target",
            labels=["node", "protocol", "target"],
        )
        for (protocol, target), n in sorted(stats.traffic_totals().items()):
            traffic.add_metric([node, protocol, target], n)
        yield traffic
        yield _info(node)

    def _recovery(self) -> Iterator[Metric]:
        stats, fills = self._manager.recovery.stats, self._manager.streams.stats
        for name, value, help_text in (
            ("recoveries_asked", stats.asked, "streams reconnecting clients asked to recover"),
            ("messages_replayed", stats.replayed, "messages and resync notices replayed"),
            (
                "legacy_positions_saved",
                stats.legacy_positions_saved,
                "legacy connections that left their stream positions on ending",
            ),
        ):
            yield CounterMetricFamily(f"aether_{name}", help_text, value=value)
        recoveries = CounterMetricFamily(
            "aether_recoveries",
            "streams recovered for reconnecting clients, or not (a resync history-gap went out)",
            labels=["result"],
        )
        recoveries.add_metric(["recovered"], stats.recovered)
        recoveries.add_metric(["history-gap"], stats.gaps)
        recoveries.add_metric(["unavailable"], stats.unavailable)
        yield recoveries
        gap_fills = CounterMetricFamily(
            "aether_gap_fills",
            "gaps in a stream this node saw (its Redis subscription lost), filled from history "
            "or, when history could not cover them, announced with a resync",
            labels=["result"],
        )
        gap_fills.add_metric(["filled"], fills.fills)
        gap_fills.add_metric(["resync"], fills.failures)
        yield gap_fills
        yield CounterMetricFamily(
            "aether_gap_fill_messages", "messages delivered by gap fills", value=fills.messages
        )


class V2Collector(Collector):
    """Legacy V2 use on this node, and the V2 mode this node applies (docs/ops-runbook.md §8)."""

    def __init__(self, v2: V2Control) -> None:
        self._v2 = v2

    def collect(self) -> Iterator[Metric]:
        v2, stats = self._v2, self._v2.stats
        yield GaugeMetricFamily(
            "aether_v2_connections", "open legacy V2 connections", value=v2.connections
        )
        for name, value, help_text in (
            ("connections_opened", stats.opened, "legacy V2 connections accepted"),
            ("refused", stats.refused, "legacy V2 connections refused: V2 closed for the group"),
            ("warned", stats.warned, "legacy V2 connections sent a deprecation notice"),
            ("messages", v2.messages_total, "frames received from legacy V2 connections"),
        ):
            yield CounterMetricFamily(f"aether_v2_{name}", help_text, value=value)
        yield self._modes()

    def _modes(self) -> Metric:
        # A state set: 1 for the mode in force, 0 for the others; group "*" is the global mode.
        family = GaugeMetricFamily(
            "aether_v2_mode", "V2 mode in force per scope", labels=["group", "mode"]
        )
        policy = self._v2.policy
        scopes = {GLOBAL: policy.global_mode, **policy.groups}
        for scope, current in scopes.items():
            for mode in MODES:
                family.add_metric([scope, mode], int(mode == current))
        return family


class DeadLetterCollector(Collector):
    """Dead letters this node recorded, per code (bridge/dead_letters.py)."""

    def __init__(self, dead_letters: DeadLetters) -> None:
        self._dead_letters = dead_letters

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "aether_dead_letters",
            "legacy frames refused and broker messages no client was given, by code",
            labels=["node", "code"],
        )
        node = self._dead_letters.node_id
        for code, n in sorted(self._dead_letters.counts.items()):
            family.add_metric([node, code], n)
        yield family


def _histogram(name: str, help_text: str, histogram: Histogram, node: str) -> Metric:
    family = HistogramMetricFamily(name, help_text, labels=["node"])
    family.add_metric([node], histogram.cumulative(), histogram.total)
    return family


def _info(node: str) -> Metric:
    family = GaugeMetricFamily(
        "aether_node_info", "1 per node, with its release", labels=["node", "version"]
    )
    family.add_metric([node, VERSION], 1)
    return family


def metrics_registry(
    manager: ConnectionManager,
    v2: V2Control | None = None,
    dead_letters: DeadLetters | None = None,
) -> CollectorRegistry:
    """One registry per app: no process globals, so several apps can live in one test."""
    registry = CollectorRegistry()
    registry.register(ManagerCollector(manager))
    if v2 is not None:
        registry.register(V2Collector(v2))
    if dead_letters is not None:
        registry.register(DeadLetterCollector(dead_letters))
    return registry


def render(registry: Collector) -> bytes:
    """A registry, or any collector, in the Prometheus text format /metrics serves."""
    return generate_latest(registry)
