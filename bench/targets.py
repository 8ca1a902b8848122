"""The targets of issue 5 (and of history and recovery), checked against one run's medians."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bench.figures import Table, ab_pairs, history_ratios, median_ratio
from bench.scenarios import HISTORY_NODES, HISTORY_PAIR, HISTORY_RATES, LEGACY_PAIR, history_rate


@dataclass(frozen=True)
class Target:
    """``measure`` returns the compared value; the target is met when it is ``<= limit``
    (or ``>= limit`` when ``at_least``)."""

    text: str
    measure: Callable[[Table], float]
    limit: float
    unit: str
    at_least: bool = False
    optional: bool = False  # left out of the table when its scenario did not run

    def check(self, table: Table) -> tuple[float, str]:
        value = self.measure(table)
        if math.isnan(value):
            return value, "not measured"
        ok = value >= self.limit if self.at_least else value <= self.limit
        return value, "met" if ok else "**not met**"


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else math.nan


def _cpu(table: Table, scenario: str, system: str) -> float:
    return table.get(scenario, system, "saturation", "cpu_us_per_delivery")


def _legacy(table: Table) -> float:
    """V2 over V3, the median of the pair ratios of every legacy session (all repeats)."""
    return median_ratio(ab_pairs(table.session_results("legacy", "project"), *LEGACY_PAIR))


def _history(rate: int) -> Callable[[Table], float]:
    """History on over off at ``rate`` deliveries/s, the median of the pair ratios of every
    history session."""

    def measure(table: Table) -> float:
        pairs = [
            p
            for p in ab_pairs(table.session_results("history", "project"), *HISTORY_PAIR)
            if history_rate(p.number) == rate
        ]
        a, b = (HISTORY_NODES[side] for side in HISTORY_PAIR)
        ratios = [r for r in history_ratios(pairs, a, b) if not math.isnan(r)]
        return statistics.median(ratios) if ratios else math.nan

    return measure


def _noisy(table: Table, system: str) -> float:
    return table.get("noisy", system, "traffic", "node0_us_per_message")


TARGETS = (
    Target(
        "server CPU per delivery (saturation) vs python-socketio",
        lambda t: _ratio(_cpu(t, "fanout", "project"), _cpu(t, "fanout", "socketio")),
        0.3,
        "×",
    ),
    Target(
        "server CPU per delivery (saturation) vs websockets broadcast() ceiling",
        lambda t: _ratio(_cpu(t, "fanout", "project"), _cpu(t, "fanout", "ws-ceiling")),
        1.5,
        "×",
    ),
    Target(
        "saturation deliveries/s vs python-socketio",
        lambda t: _ratio(
            t.get("fanout", "project", "saturation", "deliveries_per_s"),
            t.get("fanout", "socketio", "saturation", "deliveries_per_s"),
        ),
        2.5,
        "×",
        at_least=True,
    ),
    Target(
        "noisy neighbour: node A CPU per cluster message vs V2-global",
        lambda t: _ratio(_noisy(t, "project"), _noisy(t, "v2global")),
        0.03,
        "×",
    ),
    Target(
        "p99 latency in the heavy scenario (20,000 deliveries/s)",
        lambda t: t.get("fanout", "project", "heavy", "lat_p99_ms"),
        5.0,
        "ms",
    ),
    Target(
        "RSS per idle connection at the larger idle size",
        lambda t: t.get("idle-big", "project", None, "rss_kib_per_conn"),
        20.0,
        "KiB",
    ),
    Target(
        "legacy path CPU per delivery vs V3 (interleaved, 20,000 deliveries/s)",
        _legacy,
        1.15,
        "×",
    ),
    *(
        Target(
            f"history on vs off: server CPU per delivery (interleaved, {rate:,} deliveries/s)",
            _history(rate),
            1.15,
            "×",
            optional=True,
        )
        for rate in HISTORY_RATES
    ),
)


def target_rows(table: Table) -> list[str]:
    """Markdown rows: target, limit, measured, status."""
    rows = ["| target | limit | measured | status |", "|---|---:|---:|---|"]
    for target in TARGETS:
        value, status = target.check(table)
        if target.optional and math.isnan(value):
            continue
        sign = "≥" if target.at_least else "≤"
        shown = "–" if math.isnan(value) else f"{value:.3g} {target.unit}"
        rows.append(
            f"| {target.text} | {sign} {target.limit:g} {target.unit} | {shown} | {status} |"
        )
    return rows
