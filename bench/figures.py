"""Flatten session results into named figures, and take medians over repeated runs."""

from __future__ import annotations

import math
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.measured import SessionResult, StepResult
from bench.scenarios import ab_step_name

Figures = dict[str, float]


class Medians(dict[str, float]):
    """Figures where a figure that no run produced reads as NaN (shown as "–")."""

    def __missing__(self, key: str) -> float:
        return math.nan


def step_figures(step: StepResult) -> Figures:
    """The per-step numbers every table draws from."""
    figures = {
        "deliveries_per_s": step.deliveries_per_s,
        "messages_per_s": step.sent_in_window / step.measure_s if step.measure_s else math.nan,
        "delivery_ratio": step.delivery_ratio,
        "cpu_us_per_delivery": step.server_cpu_us_per_delivery,
        "server_cores": step.cores(sum(step.node_cpu_ns)),
        "redis_cores": step.cores(step.redis_cpu_ns),
        "client_cores": step.cores(step.workers_cpu_ns),
        "machine_busy": step.machine_busy,
        "steal_cores": step.machine_steal * (os.cpu_count() or 1),
        # /proc/stat ticks at 10 ms while schedstat counts ns: in a short window the
        # difference can dip below zero, which only means "nothing else measurable".
        "other_cores": max(
            0.0,
            step.machine_busy * (os.cpu_count() or 1)
            - step.cores(sum(step.node_cpu_ns) + step.redis_cpu_ns + step.workers_cpu_ns),
        ),
    }
    for key, value in step.latency_us.items():
        figures[f"lat_{key}_ms"] = value / 1000
    for key, value in step.tail.items():
        if not key.startswith("at"):  # a time, not a figure: in the JSON only
            figures[f"tail_{key}"] = value
    for key, value in step.hops_us.items():
        figures[f"hop_{key}_ms"] = value / 1000
    for node, ns in enumerate(step.node_cpu_ns):
        figures[f"node{node}_cores"] = step.cores(ns)
        figures[f"node{node}_us_per_message"] = step.node_cpu_us_per_message(node)
    return figures


def session_figures(result: SessionResult) -> Figures:
    """Connection-level numbers (memory, connect storm)."""
    figures = {
        "connections": float(result.connections),
        "connected": float(result.connected),
        "connect_failed": float(result.connect_failed),
        "connect_wall_s": result.connect_wall_s,
        "connect_cpu_ms": result.connect_cpu_ns / 1e6,
        "connect_cpu_us_each": (
            result.connect_cpu_ns / 1000 / result.connected if result.connected else math.nan
        ),
        "rss_before_mib": sum(result.rss_before) / 2**20 if result.rss_before else math.nan,
        "rss_after_mib": sum(result.rss_after) / 2**20 if result.rss_after else math.nan,
        "rss_kib_per_conn": result.rss_kib_per_connection,
        "lost": float(result.lost),
        "nodes": float(result.nodes),
    }
    for key, value in result.connect_latency_ms.items():
        figures[f"connect_{key}_ms"] = value
    return figures


def median(runs: Iterable[Figures]) -> Medians:
    """Per-figure median over runs, ignoring runs where a figure is missing or NaN."""
    values: dict[str, list[float]] = defaultdict(list)
    for figures in runs:
        for key, value in figures.items():
            if not math.isnan(value):
                values[key].append(value)
    return Medians({key: statistics.median(vals) for key, vals in values.items()})


class Table:
    """Medians indexed by (scenario, system) and (scenario, system, step)."""

    def __init__(self, results: Iterable[SessionResult]) -> None:
        sessions: dict[tuple[str, str], list[Figures]] = defaultdict(list)
        steps: dict[tuple[str, str, str], list[Figures]] = defaultdict(list)
        self.labels: dict[str, str] = {}
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.runs: dict[tuple[str, str], int] = defaultdict(int)
        self.results: dict[tuple[str, str], list[SessionResult]] = defaultdict(list)
        for result in results:
            self.labels[result.system] = result.label
            self.runs[(result.scenario, result.system)] += 1
            self.notes.extend(f"{result.scenario} / {result.system}: {n}" for n in result.notes)
            if result.error:
                self.errors.append(f"{result.scenario} / {result.system}: {result.error}")
                continue
            self.results[(result.scenario, result.system)].append(result)
            sessions[(result.scenario, result.system)].append(session_figures(result))
            for step in result.steps:
                steps[(result.scenario, result.system, step.name)].append(step_figures(step))
        self.sessions = {key: median(runs) for key, runs in sessions.items()}
        self.steps = {key: median(runs) for key, runs in steps.items()}

    def session(self, scenario: str, system: str) -> Medians | None:
        return self.sessions.get((scenario, system))

    def session_results(self, scenario: str, system: str) -> list[SessionResult]:
        """The sessions that ran without error, in run order (for per-step pairs)."""
        return self.results.get((scenario, system), [])

    def step(self, scenario: str, system: str, step: str) -> Medians | None:
        return self.steps.get((scenario, system, step))

    def get(self, scenario: str, system: str, step: str | None, key: str) -> float:
        figures = self.step(scenario, system, step) if step else self.session(scenario, system)
        return figures[key] if figures else math.nan


@dataclass(frozen=True)
class Pair:
    """Steps A and B of one pair: neighbours in one session, on the same server processes."""

    session: int
    number: int
    a: StepResult
    b: StepResult
    a_first: bool

    @property
    def ratio(self) -> float:
        """B's server CPU per delivery over A's (NaN if either delivered nothing)."""
        a, b = self.a.server_cpu_us_per_delivery, self.b.server_cpu_us_per_delivery
        return b / a if a and not math.isnan(a) and not math.isnan(b) else math.nan


def ab_pairs(sessions: Iterable[SessionResult], a: str, b: str) -> list[Pair]:
    """Every pair of steps ``a-N``/``b-N`` of every session, sessions numbered from 1."""
    pairs = []
    for number, result in enumerate(sessions, 1):
        order = [step.name for step in result.steps]
        n = 1
        while (sa := result.step(ab_step_name(a, n))) and (sb := result.step(ab_step_name(b, n))):
            pairs.append(Pair(number, n, sa, sb, order.index(sa.name) < order.index(sb.name)))
            n += 1
    return pairs


def active_us_per_delivery(step: StepResult, nodes: Sequence[int]) -> float:
    """CPU of ``nodes`` only (the side that carried the step) per delivery, in µs."""
    if not step.in_window:
        return math.nan
    return (
        sum(step.node_cpu_ns[n] for n in nodes if n < len(step.node_cpu_ns)) / 1000 / step.in_window
    )


def history_ratios(
    pairs: Sequence[Pair], a_nodes: Sequence[int], b_nodes: Sequence[int]
) -> list[float]:
    """B's CPU per delivery over A's, each counting its own nodes only, pair by pair."""
    ratios = []
    for pair in pairs:
        a, b = active_us_per_delivery(pair.a, a_nodes), active_us_per_delivery(pair.b, b_nodes)
        ratios.append(b / a if a and not math.isnan(a) and not math.isnan(b) else math.nan)
    return ratios


def median_ratio(pairs: Sequence[Pair]) -> float:
    """The median of the per-pair ratios: one slow pair (a stall, a burst of steal) moves it
    by at most one rank, where it would move a ratio of sums by its whole size."""
    ratios = [p.ratio for p in pairs if not math.isnan(p.ratio)]
    return statistics.median(ratios) if ratios else math.nan


def pooled_us_per_delivery(steps: Iterable[StepResult]) -> float:
    """Summed server CPU over summed deliveries, in µs (each step's measure window only)."""
    cpu = deliveries = 0
    for step in steps:
        cpu += sum(step.node_cpu_ns)
        deliveries += step.in_window
    return cpu / 1000 / deliveries if deliveries else math.nan


def pooled_ratio(pairs: Sequence[Pair]) -> float:
    """B over A, each side's CPU and deliveries summed over all pairs first."""
    a = pooled_us_per_delivery(p.a for p in pairs)
    b = pooled_us_per_delivery(p.b for p in pairs)
    return b / a if a and not math.isnan(a) and not math.isnan(b) else math.nan
