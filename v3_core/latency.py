"""Latency histograms as plain counters: one bisect and two additions per observation.

prometheus-client's Histogram takes a lock and walks its buckets on every observe; these are
read at scrape time, like the manager's other plain counters (bridge/metrics.py renders them).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

# Seconds: a Redis round trip on a LAN is ~0.2-1 ms, a fan-out to thousands of sockets ~10 ms.
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# Publish and fan-out are timed on one message in 8 (a counter and a mask when not): timing
# every one (two clock reads and an observation, ~0.3 us each way) cost 4% of a message's path
# through a node in process. A 1-in-8 sample keeps the quantiles; _count counts timed ones.
SAMPLE_MASK = 7
HANDSHAKE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    """Observations in buckets with Prometheus' ``le`` (upper bound, inclusive) semantics."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus wants them, ending with ``+Inf``."""
        running, rows = 0, []
        for bound, n in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            rows.append((bound, running))
        return rows


@dataclass(slots=True)
class Latencies:
    """What a node times: publish (the broker round trip) and fan-out of one broker message to
    its local recipients, one message in ``SAMPLE_MASK + 1``; every WebSocket handshake
    (connect event to accept sent)."""

    publish: Histogram = field(default_factory=lambda: Histogram(FAST_BUCKETS))
    fan_out: Histogram = field(default_factory=lambda: Histogram(FAST_BUCKETS))
    handshake: Histogram = field(default_factory=lambda: Histogram(HANDSHAKE_BUCKETS))
