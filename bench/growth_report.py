"""The growth table's report: the figures of each cell, the tables, and the SVG chart."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from bench import procs
from bench.figures import Figures, Medians, median, session_figures, step_figures
from bench.growth_plan import GROUPS, Cell, Timing
from bench.measured import SessionResult
from bench.svg_chart import Series, line_chart


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
    for cell, runs in sorted(results.items()):
        for number, result in enumerate(runs, 1):
            if result.profile:
                title = f"Profile of node 0: {cell.series}, groups of {cell.group_size:,}"
                lines += ["", f"{title}, run {number}", "", result.profile]
    return "\n".join(lines) + "\n"
