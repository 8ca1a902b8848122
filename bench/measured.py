"""Measured figures of one session (a system on a scenario) and the arithmetic on them."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Sample:
    """CPU counters at one instant: per node, Redis, load-generator workers, whole machine."""

    t_ns: int
    nodes_cpu_ns: tuple[int, ...]
    redis_cpu_ns: int
    workers_cpu_ns: int
    machine_busy: int
    machine_total: int
    machine_steal: int = 0


def percentile(sorted_values: Sequence[int], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (``nan`` when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


TAIL_WINDOW_NS = 100_000_000


def tail_clustering(latency: array[int], received: array[int], p99: float) -> dict[str, float]:
    """Whether the slowest 1 % of deliveries came in bursts (stalls) or spread out (load).

    ``windows``: 100 ms windows that hold any of them; ``worst3``: share of them in the three
    fullest windows. A tail made of a few stalls has few windows and a high share. ``at1`` to
    ``at3`` are when those windows began (CLOCK_MONOTONIC s), to line up with server logs.
    """
    buckets: Counter[int] = Counter(
        t // TAIL_WINDOW_NS for lat, t in zip(latency, received, strict=True) if lat >= p99
    )
    slow = sum(buckets.values())
    if not slow:
        return {}
    worst = buckets.most_common(3)
    found = {"windows": float(len(buckets)), "worst3": sum(n for _, n in worst) / slow}
    for rank, (window, _) in enumerate(worst, 1):
        found[f"at{rank}"] = window * TAIL_WINDOW_NS / 1e9
    return found


@dataclass
class StepResult:
    """One load step: counts summed over workers, CPU deltas over the measure window."""

    name: str
    mode: str
    measure_s: float
    sent: int = 0
    sent_in_window: int = 0
    expected: int = 0
    delivered: int = 0
    in_window: int = 0
    latency_us: dict[str, float] = field(default_factory=dict)
    hops_us: dict[str, float] = field(default_factory=dict)
    tail: dict[str, float] = field(default_factory=dict)
    node_cpu_ns: tuple[int, ...] = ()
    redis_cpu_ns: int = 0
    workers_cpu_ns: int = 0
    machine_busy: float = 0.0
    machine_steal: float = 0.0  # share of the machine's time the hypervisor took

    def add_latencies(self, samples: array[int], received: array[int] | None = None) -> None:
        ordered = sorted(samples)
        self.latency_us = {f"p{q:g}": percentile(ordered, q) / 1000 for q in (50, 90, 99, 99.9)}
        self.latency_us["max"] = ordered[-1] / 1000 if ordered else math.nan
        if received is not None and len(received) == len(samples) and ordered:
            self.tail = tail_clustering(samples, received, percentile(ordered, 99))

    def add_hops(self, uplink: array[int], downlink: array[int]) -> None:
        """Percentiles of each hop, split at the server's ``sent_at`` stamp (where present)."""
        for name, samples in (("up", uplink), ("down", downlink)):
            if samples:
                ordered = sorted(samples)
                for q in (50, 99):
                    self.hops_us[f"{name}_p{q}"] = percentile(ordered, q) / 1000

    def set_cpu(self, before: Sample, after: Sample) -> None:
        self.node_cpu_ns = tuple(
            b - a for a, b in zip(before.nodes_cpu_ns, after.nodes_cpu_ns, strict=True)
        )
        self.redis_cpu_ns = after.redis_cpu_ns - before.redis_cpu_ns
        self.workers_cpu_ns = after.workers_cpu_ns - before.workers_cpu_ns
        total = after.machine_total - before.machine_total
        self.machine_busy = (after.machine_busy - before.machine_busy) / total if total else 0.0
        steal = after.machine_steal - before.machine_steal
        self.machine_steal = steal / total if total else 0.0

    @property
    def deliveries_per_s(self) -> float:
        return self.in_window / self.measure_s if self.measure_s else math.nan

    @property
    def delivery_ratio(self) -> float:
        return self.delivered / self.expected if self.expected else math.nan

    @property
    def server_cpu_us_per_delivery(self) -> float:
        return sum(self.node_cpu_ns) / 1000 / self.in_window if self.in_window else math.nan

    def node_cpu_us_per_message(self, node: int) -> float:
        """One node's CPU per message published on the cluster (noisy neighbour)."""
        if not self.sent_in_window:
            return math.nan
        return self.node_cpu_ns[node] / 1000 / self.sent_in_window

    def cores(self, ns: int) -> float:
        """CPU nanoseconds over the window as a share of one core."""
        return ns / 1e9 / self.measure_s if self.measure_s else math.nan


@dataclass
class SessionResult:
    """Everything measured for one system on one scenario."""

    system: str
    label: str
    scenario: str
    nodes: int
    connections: int
    connected: int = 0
    connect_failed: int = 0
    connect_errors: list[str] = field(default_factory=list)
    connect_wall_s: float = math.nan
    connect_latency_ms: dict[str, float] = field(default_factory=dict)
    connect_cpu_ns: int = 0
    rss_before: tuple[int, ...] = ()
    rss_after: tuple[int, ...] = ()
    steps: list[StepResult] = field(default_factory=list)
    lost: int = 0
    error: str | None = None
    profile: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rss_kib_per_connection(self) -> float:
        if not self.connected or not self.rss_after:
            return math.nan
        return (sum(self.rss_after) - sum(self.rss_before)) / 1024 / self.connected

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)
