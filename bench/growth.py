"""``python -m bench.growth``: server CPU per delivery as the work grows.

One cell is a group size, a number of nodes and connections per node. Each cell is one session
of the project on a throwaway Redis (``bench.session``, as ``python -m bench`` runs them): its
nodes are ``aether-bridge serve`` processes, every connection sends in turn and the groups are
split evenly across the nodes. After the connects, an idle step (no traffic) and then a step of
group messages at a fixed rate of deliveries a second. The cell's figure is the nodes' CPU in
the step (schedstat, every node) ÷ the deliveries in it; the idle step's CPU says how much of
that the connections cost by merely being held (keepalives, presence refresh).

Cells the machine cannot hold are planned out with the reason, and reported as such
(``bench/growth_plan.py``); the tables and the chart are ``bench/growth_report.py``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench import procs
from bench.growth_plan import (
    CONNS,
    GROUPS,
    NODES,
    QUICK_CONNS,
    QUICK_NODES,
    Cell,
    Limits,
    Timing,
    plan,
    scenario,
    workers_for,
)
from bench.growth_report import chart, medians, render
from bench.measured import SessionResult, StepResult
from bench.profile import py_spy_hook
from bench.session import Env, run_session
from bench.systems import SRC_ENV, SYSTEMS


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part.replace("_", "").replace("k", "000")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be 1 or more")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__)
    parser.add_argument("--groups", type=_ints, help="group sizes (default 10,100,1000)")
    parser.add_argument("--nodes", type=_ints, help="node counts (default 1,2,4)")
    parser.add_argument(
        "--conns", type=_ints, help="connections per node (default 1000,5000,19000; 1k = 1000)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short steps at 5,000 deliveries/s; default cells 1 and 2 nodes × 1,000",
    )
    parser.add_argument("--rate", type=float, help="deliveries/s in the message step")
    parser.add_argument("--repeat", type=int, default=1, help="go round the cells N times")
    parser.add_argument("--write", type=Path, help="also write the markdown here")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--chart", type=Path, help="write the SVG chart here")
    parser.add_argument("--logdir", type=Path, help="keep the servers' and Redis' logs here")
    parser.add_argument("--project-src", type=Path, help="run the project from this tree")
    parser.add_argument(
        "--profile",
        choices=("idle", "rate"),
        help="py-spy node 0 of every cell during this step (the report adds its table)",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        help="run nothing: report (and chart) the cells of earlier --json files together",
    )
    args = parser.parse_args(argv)
    args.groups = args.groups or GROUPS
    args.nodes = args.nodes or (QUICK_NODES if args.quick else NODES)
    args.conns = args.conns or (QUICK_CONNS if args.quick else CONNS)
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(
    cells: Sequence[tuple[Cell, str | None]],
    timing: Timing,
    repeat: int,
    logdir: Path,
    profile_step: str | None = None,
) -> dict[Cell, list[SessionResult]]:
    """Every runnable cell, ``repeat`` times round, on one Redis."""
    results: dict[Cell, list[SessionResult]] = defaultdict(list)
    runnable = [cell for cell, reason in cells if reason is None]
    with procs.redis_server(logdir) as redis:
        profiler = py_spy_hook if profile_step else None
        env = Env(redis, logdir, profile_step=profile_step, profiler=profiler)
        for attempt in range(repeat):
            for cell in runnable:
                print(f"[growth] {cell.key} #{attempt + 1}", file=sys.stderr)
                started = time.monotonic()
                result = run_session(
                    SYSTEMS["project"],
                    scenario(cell, timing),
                    replace(env, workers=workers_for(cell.total)),
                )
                took = time.monotonic() - started
                print(f"[growth]   {took:.0f} s {result.error or ''}", file=sys.stderr)
                results[cell].append(result)
    return results


def raw_results(
    cells: Sequence[tuple[Cell, str | None]], results: dict[Cell, list[SessionResult]]
) -> dict[str, Any]:
    """What ``--json`` writes: every cell, why it was not measured, and its sessions."""
    return {
        "cells": [
            {
                **asdict(cell),
                "not_measured": reason,
                "runs": [asdict(r) for r in results.get(cell, [])],
            }
            for cell, reason in cells
        ]
    }


def load(
    paths: Sequence[Path],
) -> tuple[list[tuple[Cell, str | None]], dict[Cell, list[SessionResult]]]:
    """The cells and runs of earlier ``--json`` files, for one report over several runs."""
    cells: dict[Cell, str | None] = {}
    results: dict[Cell, list[SessionResult]] = defaultdict(list)
    for path in paths:
        for raw in json.loads(path.read_text())["cells"]:
            runs = raw.pop("runs")
            cell = Cell(**{k: raw[k] for k in ("group_size", "nodes", "conns_per_node")})
            cells[cell] = raw["not_measured"]
            for run in runs:
                steps = [StepResult(**step) for step in run.pop("steps")]
                results[cell].append(SessionResult(**run, steps=steps))
    return sorted(cells.items()), results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    timing = Timing.of(args.quick, args.rate)
    if args.from_json:
        cells, results = load(args.from_json)
        return report(args, cells, results, timing, argv)
    procs.raise_fd_limit()
    cells = plan(args.groups, args.nodes, args.conns, Limits.here())
    for cell, reason in cells:
        if reason:
            print(f"[growth] not measured here: {cell.key}: {reason}", file=sys.stderr)
    if args.project_src:
        os.environ[SRC_ENV] = str(args.project_src.resolve())
    signal.signal(signal.SIGTERM, _interrupt)  # unwinds, so every process is stopped
    with tempfile.TemporaryDirectory(prefix="aether-growth-") as tmp:
        logdir = args.logdir or Path(tmp)
        logdir.mkdir(parents=True, exist_ok=True)
        results = run(cells, timing, args.repeat, logdir, args.profile)
    return report(args, cells, results, timing, argv)


def report(
    args: argparse.Namespace,
    cells: Sequence[tuple[Cell, str | None]],
    results: dict[Cell, list[SessionResult]],
    timing: Timing,
    argv: Sequence[str] | None,
) -> int:
    command = "python -m bench.growth " + " ".join(argv if argv is not None else sys.argv[1:])
    markdown = render(cells, results, timing, command)
    print(markdown)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(markdown)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        raw = raw_results(cells, results)
        args.json.write_text(json.dumps(raw, indent=1, default=str))
    if args.chart:
        measured, _ = medians(results)
        title = f"CPU per delivery at {timing.deliveries_per_s:,.0f} deliveries/s"
        args.chart.parent.mkdir(parents=True, exist_ok=True)
        args.chart.write_text(chart(measured, title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
