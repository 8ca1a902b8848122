"""``python -m bench.growth``: server CPU per delivery as the work grows.

One cell is a group size, a number of nodes and connections per node. Each cell is one session
of the project on a throwaway Redis (``bench.session``, as ``python -m bench`` runs them): its
nodes are ``aether-bridge serve`` processes, every connection sends in turn and the groups are
split evenly across the nodes. After the connects, an idle step (no traffic) and then a step of
group messages at a fixed rate of deliveries a second. The cell's figure is the nodes' CPU in
the step (schedstat, every node) ÷ the deliveries in it; the idle step's CPU says how much of
that the connections cost by merely being held (keepalives, presence refresh).

Cells the machine cannot hold are planned out with the reason, and reported as such.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench import procs
from bench.figures import Figures, Medians, median, session_figures, step_figures
from bench.measured import SessionResult
from bench.scenarios import Scenario, Step, spread
from bench.session import Env, run_session
from bench.svg_chart import Series, line_chart
from bench.systems import SRC_ENV, SYSTEMS

GROUPS = (10, 100, 1000)
NODES = (1, 2, 4)
CONNS = (1000, 5000, 19_000)
QUICK_NODES = (1, 2)
QUICK_CONNS = (1000,)

CONNS_PER_WORKER = 15_000  # a load-generator process stays well under the open-files limit
SOCKETS_BESIDE_CLIENTS = 200  # a node's listening socket, Redis connections, log, imports
SERVER_KIB_PER_CONN = 14  # measured: 13.2-13.3 KiB per idle connection (docs/performance.md)
CLIENT_KIB_PER_CONN = 24  # the load generator's side, with room to spare
PROCESS_MIB = 120  # a node or a worker before its connections
QUIET_CORES = 0.3  # a node holding 19,000 idle connections uses about 0.1 (docs/performance.md)
MEMORY_SHARE = 0.7  # of MemAvailable: the rest is the other sessions' on a shared machine


@dataclass(frozen=True, order=True)
class Cell:
    """One measurement: ``group_size`` members per group, ``nodes`` nodes, each holding
    ``conns_per_node`` connections."""

    group_size: int
    nodes: int
    conns_per_node: int

    @property
    def total(self) -> int:
        return self.nodes * self.conns_per_node

    @property
    def groups(self) -> int:
        return self.total // self.group_size

    @property
    def key(self) -> str:
        """A Vision-ID-safe name: the session's scenario name and its clients' ID prefix."""
        return f"g{self.group_size}-n{self.nodes}-c{self.conns_per_node}"

    @property
    def series(self) -> str:
        return f"{self.nodes} node{'s' * (self.nodes > 1)} × {self.conns_per_node:,}"


@dataclass(frozen=True)
class Limits:
    """What this machine lets one run hold."""

    open_files: int  # per process
    ephemeral_ports: int  # local ports for connections from 127.0.0.1 to one node's port
    memory_bytes: int  # available now

    @classmethod
    def here(cls) -> Limits:
        import resource

        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        available = 0
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
        return cls(
            resource.getrlimit(resource.RLIMIT_NOFILE)[1], int(high) - int(low) + 1, available
        )


def workers_for(total: int) -> int:
    """Load-generator processes for ``total`` connections: at least two."""
    return max(2, math.ceil(total / CONNS_PER_WORKER))


def memory_needed(cell: Cell) -> int:
    """Bytes the nodes, the workers and their connections would take, with room to spare."""
    processes = cell.nodes + workers_for(cell.total)
    per_conn = (SERVER_KIB_PER_CONN + CLIENT_KIB_PER_CONN) * 1024
    return processes * PROCESS_MIB * 2**20 + cell.total * per_conn


def why_not(cell: Cell, limits: Limits) -> str | None:
    """Why this machine cannot measure ``cell``, or ``None`` if it can.

    The clients connect without binding a port first, so the kernel picks the local port per
    destination: every node's port has the whole ephemeral range to itself.
    """
    if cell.group_size > cell.total:
        return f"a group of {cell.group_size:,} needs more than {cell.total:,} connections"
    if cell.conns_per_node + SOCKETS_BESIDE_CLIENTS > limits.open_files:
        return (
            f"a node would hold {cell.conns_per_node:,} sockets; "
            f"a process may open {limits.open_files:,} files"
        )
    if cell.conns_per_node > limits.ephemeral_ports:
        return (
            f"{cell.conns_per_node:,} connections to one port need more than the "
            f"{limits.ephemeral_ports:,} local ports of 127.0.0.1"
        )
    need, have = memory_needed(cell), limits.memory_bytes * MEMORY_SHARE
    if need > have:
        return f"needs about {need / 2**30:.1f} GiB; {have / 2**30:.1f} GiB can be spared"
    return None


def plan(
    groups: Iterable[int], nodes: Iterable[int], conns: Iterable[int], limits: Limits
) -> list[tuple[Cell, str | None]]:
    """Every cell of the grid, smallest first, with the reason it cannot run (or ``None``)."""
    cells = sorted(Cell(g, n, c) for g in groups for n in nodes for c in conns)
    return [(cell, why_not(cell, limits)) for cell in cells]


@dataclass(frozen=True)
class Timing:
    """The steps' lengths and the rate of deliveries every cell is measured at."""

    deliveries_per_s: float
    warmup_s: float
    measure_s: float

    @classmethod
    def of(cls, quick: bool, rate: float | None) -> Timing:
        if quick:
            return cls(rate or 5_000.0, 0.5, 2.0)
        return cls(rate or 20_000.0, 1.0, 5.0)


def scenario(cell: Cell, timing: Timing) -> Scenario:
    """The session of one cell: its connections, then an idle step and a fixed-rate step."""
    conns = spread(cell.total, cell.groups, cell.nodes, f"{cell.key}-")
    steps = (
        Step("idle", "idle", 0.0, timing.measure_s),
        Step(
            "rate",
            "rate",
            timing.warmup_s,
            timing.measure_s,
            rate=timing.deliveries_per_s / cell.group_size,
        ),
    )
    return Scenario(
        cell.key,
        f"{cell.series}, groups of {cell.group_size:,}",
        conns,
        cell.nodes,
        steps,
        ("project",),
        connect_concurrency=100,
        settle_s=2.0,
        drain_s=1.0,
        connect_timeout_s=120.0 + cell.total / 200 + presence_frames(cell) / 50_000,
        quiet_cores=QUIET_CORES,
    )


def presence_frames(cell: Cell) -> int:
    """At most the frames the connects send: each announces its join to its group's members."""
    return cell.total * cell.group_size


def cell_figures(result: SessionResult) -> Figures:
    """The figures of one session: the rate step's, the idle step's CPU, and the two combined.

    ``net_us_per_delivery`` takes out the CPU the nodes spend while idle, so it is what the
    deliveries themselves cost; the gross figure is what an operator pays.
    """
    figures = session_figures(result)
    steps = {step.name: step_figures(step) for step in result.steps}
    rate, idle = steps.get("rate", {}), steps.get("idle", {})
    figures.update(rate)
    figures["idle_cores"] = idle.get("server_cores", math.nan)
    busy = rate.get("server_cores", math.nan) - figures["idle_cores"]
    per_s = rate.get("deliveries_per_s", math.nan)
    figures["net_us_per_delivery"] = busy * 1e6 / per_s if per_s else math.nan
    messages = rate.get("messages_per_s", math.nan)
    figures["us_per_message"] = (
        rate.get("server_cores", math.nan) * 1e6 / messages if messages else math.nan
    )
    return figures


# -- report ---------------------------------------------------------------------------------


def _fmt(value: float, digits: int = 1) -> str:
    return "–" if math.isnan(value) else f"{value:,.{digits}f}"


def growth_table(
    cells: Sequence[tuple[Cell, str | None]], measured: dict[Cell, Medians], failed: set[Cell]
) -> list[str]:
    """CPU per delivery: one row per nodes × connections, one column per group size."""
    groups = sorted({cell.group_size for cell, _ in cells})
    rows = sorted({(cell.nodes, cell.conns_per_node) for cell, _ in cells})
    reasons = dict(cells)
    lines = [
        "| nodes × connections per node | " + " | ".join(f"groups of {g:,}" for g in groups) + " |",
        "|---|" + "---:|" * len(groups),
    ]
    for nodes, conns in rows:
        values = []
        for group in groups:
            cell = Cell(group, nodes, conns)
            if reasons.get(cell):
                values.append("not measured here")
            elif cell in failed:
                values.append("failed")
            elif cell in measured:
                found = measured[cell]
                values.append(
                    f"{_fmt(found['cpu_us_per_delivery'])} ({_fmt(found['net_us_per_delivery'])})"
                )
            else:
                values.append("–")
        lines.append(f"| {nodes} × {conns:,} | " + " | ".join(values) + " |")
    return lines


DETAIL_COLUMNS = (
    ("connected", "connected", 0),
    ("connect s", "connect_wall_s", 1),
    ("KiB/conn", "rss_kib_per_conn", 1),
    ("idle cores", "idle_cores", 3),
    ("deliveries/s", "deliveries_per_s", 0),
    ("delivered %", "delivery_ratio", 2),
    ("server cores", "server_cores", 3),
    ("µs/delivery", "cpu_us_per_delivery", 2),
    ("net µs/delivery", "net_us_per_delivery", 2),
    ("µs/message", "us_per_message", 0),
    ("redis cores", "redis_cores", 3),
    ("p50 ms", "lat_p50_ms", 2),
    ("p99 ms", "lat_p99_ms", 2),
    ("other cores", "other_cores", 2),
)


def detail_table(measured: dict[Cell, Medians]) -> list[str]:
    """Every figure of every measured cell."""
    header = ["group", "nodes", "conns/node", *(label for label, _, _ in DETAIL_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for cell in sorted(measured):
        found = measured[cell]
        values = []
        for _, key, digits in DETAIL_COLUMNS:
            value = found[key] * 100 if key == "delivery_ratio" else found[key]
            values.append(_fmt(value, digits))
        lines.append(
            f"| {cell.group_size:,} | {cell.nodes} | {cell.conns_per_node:,} | "
            + " | ".join(values)
            + " |"
        )
    return lines


NODE_COLORS = {1: "#1f77b4", 2: "#ff7f0e", 4: "#2ca02c", 8: "#9467bd"}
DASHES = ("", "7 4", "2 3", "10 3 2 3")


def chart(measured: dict[Cell, Medians], title: str) -> str:
    """µs per delivery against group size: one line per nodes × connections per node."""
    lines: dict[tuple[int, int], list[Cell]] = defaultdict(list)
    for cell in sorted(measured):
        lines[(cell.nodes, cell.conns_per_node)].append(cell)
    conns = sorted({c for _, c in lines})
    series = [
        Series(
            cells[0].series,
            tuple((float(c.group_size), measured[c]["cpu_us_per_delivery"]) for c in cells),
            NODE_COLORS.get(nodes, "#7f7f7f"),
            DASHES[conns.index(per_node) % len(DASHES)],
        )
        for (nodes, per_node), cells in sorted(lines.items())
    ]
    groups = sorted({cell.group_size for cell in measured}) or list(GROUPS)
    return line_chart(
        series,
        title=title,
        x_label="members per group (log scale)",
        y_label="server CPU per delivery, µs",
        x_ticks=[float(g) for g in groups],
    )


def medians(results: dict[Cell, list[SessionResult]]) -> tuple[dict[Cell, Medians], set[Cell]]:
    """Each cell's figures, median over its runs without error; and the cells where all failed."""
    measured = {
        cell: median(cell_figures(r) for r in runs if not r.error)
        for cell, runs in results.items()
        if any(not r.error for r in runs)
    }
    failed = {cell for cell, runs in results.items() if runs and cell not in measured}
    return measured, failed


def render(
    cells: Sequence[tuple[Cell, str | None]],
    results: dict[Cell, list[SessionResult]],
    timing: Timing,
    command: str,
) -> str:
    """The markdown report: the table, the figures behind it, what was not measured."""
    measured, failed = medians(results)
    info = procs.machine_info()
    repeats = max((len(runs) for runs in results.values()), default=0)
    lines = [
        f"- command: `{command}`",
        f"- machine: {info['cpu']}, nproc {info['nproc']}, {info['memory']}, "
        f"kernel {info['kernel']}",
        f"- each cell: an idle step of {timing.measure_s:g} s, then group messages at "
        f"{timing.deliveries_per_s:,.0f} deliveries/s ({timing.warmup_s:g} s warm-up, "
        f"{timing.measure_s:g} s measured); {repeats} run(s), medians",
        "",
        "Server CPU per delivery, µs (all nodes' CPU in the step ÷ deliveries; in brackets "
        "without the CPU the same nodes spent in the idle step):",
        "",
        *growth_table(cells, measured, failed),
        "",
        *detail_table(measured),
    ]
    skipped = [(cell, reason) for cell, reason in cells if reason]
    if skipped:
        lines += ["", "Not measured here:", ""]
        lines += [f"- {cell.series}, groups of {cell.group_size:,}: {why}" for cell, why in skipped]
    problems = [
        f"- {cell.key}: {r.error or note}"
        for cell, runs in sorted(results.items())
        for r in runs
        for note in ([r.error] if r.error else r.notes)
        if note
    ]
    if problems:
        lines += ["", "Errors and notes:", "", *problems]
    return "\n".join(lines) + "\n"


# -- the run --------------------------------------------------------------------------------


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
    args = parser.parse_args(argv)
    args.groups = args.groups or GROUPS
    args.nodes = args.nodes or (QUICK_NODES if args.quick else NODES)
    args.conns = args.conns or (QUICK_CONNS if args.quick else CONNS)
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(
    cells: Sequence[tuple[Cell, str | None]], timing: Timing, repeat: int, logdir: Path
) -> dict[Cell, list[SessionResult]]:
    """Every runnable cell, ``repeat`` times round, on one Redis."""
    results: dict[Cell, list[SessionResult]] = defaultdict(list)
    runnable = [cell for cell, reason in cells if reason is None]
    with procs.redis_server(logdir) as redis:
        env = Env(redis, logdir)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    procs.raise_fd_limit()
    cells = plan(args.groups, args.nodes, args.conns, Limits.here())
    timing = Timing.of(args.quick, args.rate)
    for cell, reason in cells:
        if reason:
            print(f"[growth] not measured here: {cell.key}: {reason}", file=sys.stderr)
    if args.project_src:
        os.environ[SRC_ENV] = str(args.project_src.resolve())
    signal.signal(signal.SIGTERM, _interrupt)  # unwinds, so every process is stopped
    with tempfile.TemporaryDirectory(prefix="aether-growth-") as tmp:
        logdir = args.logdir or Path(tmp)
        logdir.mkdir(parents=True, exist_ok=True)
        results = run(cells, timing, args.repeat, logdir)
    command = "python -m bench.growth " + " ".join(argv if argv is not None else sys.argv[1:])
    markdown = render(cells, results, timing, command)
    print(markdown)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(markdown)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        raw = {
            "cells": [
                {
                    **asdict(cell),
                    "not_measured": reason,
                    "runs": [asdict(r) for r in results.get(cell, [])],
                }
                for cell, reason in cells
            ]
        }
        args.json.write_text(json.dumps(raw, indent=1, default=str))
    if args.chart:
        measured, _ = medians(results)
        title = f"CPU per delivery at {timing.deliveries_per_s:,.0f} deliveries/s"
        args.chart.parent.mkdir(parents=True, exist_ok=True)
        args.chart.write_text(chart(measured, title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
