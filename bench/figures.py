"""Flatten session results into named figures, and take medians over repeated runs."""

from __future__ import annotations

import math
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable

from bench.measured import SessionResult, StepResult

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
        for result in results:
            self.labels[result.system] = result.label
            self.runs[(result.scenario, result.system)] += 1
            self.notes.extend(f"{result.scenario} / {result.system}: {n}" for n in result.notes)
            if result.error:
                self.errors.append(f"{result.scenario} / {result.system}: {result.error}")
                continue
            sessions[(result.scenario, result.system)].append(session_figures(result))
            for step in result.steps:
                steps[(result.scenario, result.system, step.name)].append(step_figures(step))
        self.sessions = {key: median(runs) for key, runs in sessions.items()}
        self.steps = {key: median(runs) for key, runs in steps.items()}

    def session(self, scenario: str, system: str) -> Medians | None:
        return self.sessions.get((scenario, system))

    def step(self, scenario: str, system: str, step: str) -> Medians | None:
        return self.steps.get((scenario, system, step))

    def get(self, scenario: str, system: str, step: str | None, key: str) -> float:
        figures = self.step(scenario, system, step) if step else self.session(scenario, system)
        return figures[key] if figures else math.nan
