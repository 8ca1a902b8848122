"""Prometheus metrics, collected from the manager's plain counters at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from v3_core import ConnectionManager

_COUNTERS = {
    "connections_opened": "WebSocket connections accepted",
    "connections_rejected": "WebSocket connections refused because a backend was down",
    "messages_received": "frames received from clients",
    "messages_rejected": "client frames answered with an error reply",
    "messages_published": "messages published to the broker",
    "publish_failures": "publishes that failed (the sender got an error reply)",
    "broker_messages": "messages received from the broker",
    "deliveries": "messages queued for local connections",
    "discontinuities": "broker reconnects announced to clients as resync",
    "slow_consumers": "connections closed because they did not read fast enough",
    "presence_expired": "clients whose presence expired (their node stopped refreshing)",
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
        yield GaugeMetricFamily(
            "aether_connections", "open WebSocket connections", value=len(self._manager)
        )
        yield GaugeMetricFamily(
            "aether_broker_ready", "1 while the broker is connected", value=int(self._manager.ready)
        )


def metrics_registry(manager: ConnectionManager) -> CollectorRegistry:
    """One registry per app: no process globals, so several apps can live in one test."""
    registry = CollectorRegistry()
    registry.register(ManagerCollector(manager))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
