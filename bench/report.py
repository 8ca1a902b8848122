"""Markdown report: machine, command, one table per scenario, ratios, targets, profile."""

from __future__ import annotations

import math
import platform
import statistics
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata

from bench import node_deps
from bench.figures import (
    Medians,
    Pair,
    Table,
    ab_pairs,
    active_us_per_delivery,
    history_ratios,
    median_ratio,
    pooled_ratio,
    pooled_us_per_delivery,
    step_figures,
)
from bench.measured import SessionResult, StepResult
from bench.procs import machine_info
from bench.scenarios import (
    HISTORY_NODES,
    HISTORY_PAIR,
    LEGACY_PAIR,
    Scenario,
    history_rate,
)
from bench.targets import target_rows

PACKAGES = ("websockets", "uvicorn", "fastapi", "redis", "python-socketio", "uvloop", "orjson")
BASELINES = ("socketio-node-sharded", "socketio-node", "socketio", "v2global", "ws-ceiling")


def _fmt(value: float, digits: int = 1, pct: bool = False) -> str:
    if math.isnan(value):
        return "–"
    if pct:
        return f"{100 * value:.{digits}f} %"
    return f"{value:,.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _header(command: str, elapsed: float, quick: bool, repeats: int) -> list[str]:
    info = machine_info()
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return [
        "## Benchmark run" + (" (--quick: smoke sizes, not for comparison)" if quick else ""),
        "",
        f"- command: `{command}`",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, wall time {elapsed:.0f} s, "
        f"{repeats} run(s) per session, medians shown",
        f"- machine: {info['cpu']}, nproc {info['nproc']}, {info['memory']}, "
        f"kernel {info['kernel']}",
        f"- python {platform.python_version()}; {', '.join(versions)}",
        *([f"- {node}"] if (node := node_deps.versions()) else []),
        "- load generator: separate worker processes (websockets sans-I/O client, uvloop); "
        "server CPU is the servers' own (schedstat of their threads), Redis and clients shown "
        "apart; 'cores' = CPU seconds per second of the measure window; 'other cores' = what "
        "the rest of the machine (kernel softirq, other jobs) used meanwhile: a noise gauge; "
        "'steal cores' = time the hypervisor ran other VMs while this one wanted the CPU "
        "(/proc/stat steal, counted in 'other'): it delays every process alike",
    ]


STEP_COLUMNS = (
    "system",
    "nodes",
    "deliveries/s",
    "delivered",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "server µs/delivery",
    "server cores (per node)",
    "redis cores",
    "client cores",
    "other cores",
    "steal cores",
)


def _step_row(table: Table, scenario: str, system: str, step: str) -> list[str] | None:
    f = table.step(scenario, system, step)
    s = table.session(scenario, system)
    if f is None or s is None:
        return None
    return [
        table.labels.get(system, system),
        _fmt(s["nodes"], 0),
        _fmt(f["deliveries_per_s"], 0),
        _fmt(f["delivery_ratio"], 2, pct=True),
        _fmt(f.get("lat_p50_ms", math.nan), 2),
        _fmt(f.get("lat_p90_ms", math.nan), 2),
        _fmt(f.get("lat_p99_ms", math.nan), 2),
        _fmt(f["cpu_us_per_delivery"], 1),
        _per_node(f),
        _fmt(f["redis_cores"], 2),
        _fmt(f["client_cores"], 2),
        _fmt(f["other_cores"], 2),
        _fmt(f["steal_cores"], 2),
    ]


def _per_node(f: Medians) -> str:
    nodes = [f[f"node{n}_cores"] for n in range(8) if f"node{n}_cores" in f]
    if len(nodes) < 2:
        return _fmt(f["server_cores"], 2)
    return f"{_fmt(f['server_cores'], 2)} ({' + '.join(_fmt(n, 2) for n in nodes)})"


def _ratios(table: Table, scenario: str, step: str, project: str) -> list[str]:
    mine = table.step(scenario, project, step)
    if mine is None:
        return []
    parts = []
    for base in BASELINES:
        other = table.step(scenario, base, step)
        if other is None:
            continue
        rate = mine["deliveries_per_s"] / other["deliveries_per_s"]
        cpu = mine["cpu_us_per_delivery"] / other["cpu_us_per_delivery"]
        parts.append(
            f"vs {table.labels.get(base, base)}: deliveries/s ×{rate:.2f}, "
            f"CPU per delivery ×{cpu:.2f}"
        )
    return ["", "Ratios of the project: " + "; ".join(parts) + "."] if parts else []


def _steps_section(table: Table, scenario: Scenario, systems: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for step in scenario.steps:
        rows = [r for s in systems if (r := _step_row(table, scenario.name, s, step.name))]
        if not rows:
            continue
        load = (
            f"{step.rate:,.0f} messages/s"
            if step.mode == "rate"
            else f"as fast as possible, {step.window} messages in flight"
            if step.mode == "window"
            else "no traffic"
        )
        lines += [
            "",
            f"### {scenario.title}: {step.name} ({load}, "
            f"{step.measure_s:g} s measured after {step.warmup_s:g} s warm-up)",
            "",
        ]
        lines += _table(STEP_COLUMNS, rows)
        lines += _ratios(table, scenario.name, step.name, "project")
        lines += _hops(table, scenario.name, step.name, systems)
    lines += _history_section(table, scenario)
    return lines


HISTORY_SYSTEMS = ("project", "project-nohistory")  # (on, off)

HISTORY_COLUMNS = (
    "step",
    "server µs/delivery on",
    "off",
    "on/off (medians)",
    "on/off per round",
    "redis µs/delivery on",
    "off",
    "server + redis on/off",
    "on vs python-socketio",
)


def _div(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def history_rounds(table: Table, scenario: str, step: str) -> list[float]:
    """On/off server CPU per delivery of each round: the n-th session of ``project`` against
    the n-th of ``project-nohistory``, which ran next to it (empty if a session failed)."""
    on, off = (table.session_results(scenario, s) for s in HISTORY_SYSTEMS)
    if len(on) != len(off):
        return []
    ratios = []
    for a, b in zip(on, off, strict=True):
        sa, sb = a.step(step), b.step(step)
        if sa is not None and sb is not None:
            ratios.append(_div(sa.server_cpu_us_per_delivery, sb.server_cpu_us_per_delivery))
    return ratios


def _history_section(table: Table, scenario: Scenario) -> list[str]:
    """History and recovery on (``project``) against off (``project-nohistory``), per step.

    Server CPU is the nodes' alone, as in every table; history also costs Redis (each
    message is appended to a stream in the script that publishes it), shown beside it.
    """
    rows = []
    for step in scenario.steps:
        on, off = (table.step(scenario.name, s, step.name) for s in HISTORY_SYSTEMS)
        if on is None or off is None:
            continue
        rounds = history_rounds(table, scenario.name, step.name)
        redis = [_div(f["redis_cores"], f["deliveries_per_s"]) * 1e6 for f in (on, off)]
        total_on = on["cpu_us_per_delivery"] + redis[0]
        total_off = off["cpu_us_per_delivery"] + redis[1]
        socketio = table.get(scenario.name, "socketio", step.name, "cpu_us_per_delivery")
        rows.append(
            [
                step.name,
                _fmt(on["cpu_us_per_delivery"], 2),
                _fmt(off["cpu_us_per_delivery"], 2),
                _fmt(_div(on["cpu_us_per_delivery"], off["cpu_us_per_delivery"]), 3),
                ", ".join(_fmt(r, 3) for r in rounds) or "–",
                _fmt(redis[0], 2),
                _fmt(redis[1], 2),
                _fmt(_div(total_on, total_off), 3),
                _fmt(_div(on["cpu_us_per_delivery"], socketio), 3),
            ]
        )
    if not rows:
        return []
    return [
        "",
        f"### {scenario.title}: history on against off",
        "",
        "*on*: the project as it ships (history of 1,000 messages per stream); *off*: the same "
        "code with `AETHER_HISTORY_SIZE=0`, run next to it in every round. Server CPU is the "
        "nodes' own; Redis' share (redis cores ÷ deliveries/s) is apart, since the stream "
        "append runs in Redis. *per round*: the ratio of the two neighbouring sessions of each "
        "round. Target: on ≤ 1.15× off, and ≤ 0.3× python-socketio.",
        "",
        *_table(HISTORY_COLUMNS, rows),
    ]


HOP_COLUMNS = (
    "system",
    "client → server stamp p50 ms",
    "p99 ms",
    "server stamp → client p50 ms",
    "p99 ms",
    "slowest 1 %: 100-ms windows",
    "in the worst 3",
)


def _hops(table: Table, scenario: str, step: str, systems: Sequence[str]) -> list[str]:
    """Latency split at the server's ``sent_at`` stamp: the uplink (client send, kernel, the
    receiving server's parse) against the rest (publish, broker, fan-out, client read)."""
    rows = []
    for system in systems:
        f = table.step(scenario, system, step)
        if f is None or "hop_up_p50_ms" not in f:
            continue
        rows.append(
            [
                table.labels.get(system, system),
                *(_fmt(f[f"hop_{k}_ms"], 2) for k in ("up_p50", "up_p99", "down_p50", "down_p99")),
                _fmt(f["tail_windows"], 0),
                _fmt(f["tail_worst3"], 0, pct=True),
            ]
        )
    if not rows:
        return []
    return [
        "",
        "Latency by hop, split at the server's `sent_at` stamp, and how the slowest 1 % of "
        "deliveries fall in time (a few 100-ms windows holding most of them: stalls; many "
        "windows: queueing under load):",
        "",
        *_table(HOP_COLUMNS, rows),
    ]


LEGACY_COLUMNS = (
    "pair",
    "order",
    "V3 µs/delivery",
    "V2 µs/delivery",
    "V2/V3",
    "V3 deliveries/s",
    "V2 deliveries/s",
    "V3 delivered",
    "V2 delivered",
    "V3 p99 ms",
    "V2 p99 ms",
)


def _pair_row(pair: Pair, several: bool) -> list[str]:
    a, b = pair.a, pair.b
    return [
        *([str(pair.session)] if several else []),
        str(pair.number),
        "V3, V2" if pair.a_first else "V2, V3",
        _fmt(a.server_cpu_us_per_delivery, 2),
        _fmt(b.server_cpu_us_per_delivery, 2),
        _fmt(pair.ratio, 3),
        _fmt(a.deliveries_per_s, 0),
        _fmt(b.deliveries_per_s, 0),
        _fmt(a.delivery_ratio, 2, pct=True),
        _fmt(b.delivery_ratio, 2, pct=True),
        _fmt(a.latency_us.get("p99", math.nan) / 1000, 2),
        _fmt(b.latency_us.get("p99", math.nan) / 1000, 2),
    ]


def _span(values: Sequence[float], digits: int) -> str:
    found = [v for v in values if not math.isnan(v)]
    return f"{_fmt(min(found), digits)}–{_fmt(max(found), digits)}" if found else "–"


def _legacy_section(table: Table, scenario: Scenario) -> list[str]:
    """One row per V3/V2 pair of steps, then the median of the pair ratios: the steps are
    interleaved in one session, so the ratio of neighbours sees the same machine."""
    sessions = table.session_results(scenario.name, "project")
    pairs = ab_pairs(sessions, *LEGACY_PAIR)
    if not pairs:
        return []
    several = len(sessions) > 1
    step = scenario.steps[0]
    group = len(scenario.conns) / len({c.group_id for c in scenario.conns})
    s = table.session(scenario.name, "project")
    connected = f"{_fmt(s['connected'], 0)} of {_fmt(s['connections'], 0)}" if s else "–"
    steps = [f for p in pairs for f in (step_figures(p.a), step_figures(p.b))]
    ratios = [p.ratio for p in pairs]
    a_pooled = pooled_us_per_delivery(p.a for p in pairs)
    b_pooled = pooled_us_per_delivery(p.b for p in pairs)
    scope = (
        f"all {len(pairs)} pairs of {len(sessions)} sessions"
        if several
        else f"the {len(pairs)} pairs of the session"
    )
    return [
        "",
        f"### {scenario.title}",
        "",
        f"Both client populations stay connected ({connected} open) to the same two server "
        f"processes; the steps alternate which of them sends, {step.rate * group:,.0f} "
        f"deliveries/s ({step.rate:,.0f} messages/s to groups of {group:.0f}), "
        f"{step.measure_s:g} s measured after {step.warmup_s:g} s warm-up, in the order V3 V2, "
        "V2 V3, V3 V2, ... so that a steady drift of the machine's speed weighs on both "
        "dialects alike. µs/delivery: both nodes' CPU in the step's measure window ÷ the "
        "deliveries in it. Noise meanwhile: other cores "
        f"{_span([f['other_cores'] for f in steps], 2)}, steal cores "
        f"{_span([f['steal_cores'] for f in steps], 2)}.",
        "",
        *_table(
            (("session", *LEGACY_COLUMNS) if several else LEGACY_COLUMNS),
            (_pair_row(p, several) for p in pairs),
        ),
        "",
        f"**V2/V3 = {_fmt(median_ratio(pairs), 3)}×**, the median of the per-pair ratios over "
        f"{scope} (range {_span(ratios, 3)}). Summed CPU over summed deliveries: V3 "
        f"{_fmt(a_pooled, 2)} µs, V2 {_fmt(b_pooled, 2)} µs, V2/V3 "
        f"{_fmt(pooled_ratio(pairs), 3)}×.",
    ]


HISTORY_AB_COLUMNS = (
    "pair",
    "order",
    "off µs/delivery",
    "on µs/delivery",
    "on/off",
    "off redis µs/delivery",
    "on redis µs/delivery",
    "off deliveries/s",
    "on deliveries/s",
    "off delivered",
    "on delivered",
    "off p99 ms",
    "on p99 ms",
)


def _redis_us(step: StepResult) -> float:
    return step.redis_cpu_ns / 1000 / step.in_window if step.in_window else math.nan


def _history_ab_section(table: Table, scenario: Scenario) -> list[str]:
    """One row per off/on pair of steps; each side's CPU counts its own two nodes only."""
    sessions = table.session_results(scenario.name, "project")
    every = ab_pairs(sessions, *HISTORY_PAIR)
    if not every:
        return []
    off_nodes, on_nodes = (HISTORY_NODES[side] for side in HISTORY_PAIR)
    several = len(sessions) > 1
    group = len(scenario.conns) / len({c.group_id for c in scenario.conns})
    step = scenario.steps[0]
    steps = [f for p in every for f in (step_figures(p.a), step_figures(p.b))]
    lines = [
        "",
        f"### {scenario.title}",
        "",
        "Nodes 0 and 1 run as shipped (history of 1,000 messages per stream), nodes 2 and 3 "
        "with `AETHER_HISTORY_SIZE=0`; each pair holds its own clients and groups (of "
        f"{group:.0f}), all connected throughout, and the steps alternate which side sends, "
        f"{step.measure_s:g} s measured after {step.warmup_s:g} s warm-up, in the order off on, "
        "on off, ... at each rate. µs/delivery: the CPU of the sending side's two nodes in the "
        "step's window ÷ its deliveries; redis: Redis' CPU in the same window ÷ the same "
        "deliveries (the stream append runs there). Noise meanwhile: other cores "
        f"{_span([f['other_cores'] for f in steps], 2)}, steal cores "
        f"{_span([f['steal_cores'] for f in steps], 2)}.",
    ]
    for rate in dict.fromkeys(history_rate(p.number) for p in every):
        pairs = [p for p in every if history_rate(p.number) == rate]
        lines += [
            "",
            f"{rate:,} deliveries/s ({rate / group:,.0f} messages/s):",
            "",
            *_history_ab_table(pairs, off_nodes, on_nodes, several, len(sessions)),
        ]
    return lines


def _history_ab_table(
    pairs: Sequence[Pair],
    off_nodes: Sequence[int],
    on_nodes: Sequence[int],
    several: bool,
    sessions: int,
) -> list[str]:
    ratios = history_ratios(pairs, off_nodes, on_nodes)
    rows = []
    for pair, ratio in zip(pairs, ratios, strict=True):
        off, on = pair.a, pair.b
        rows.append(
            [
                *([str(pair.session)] if several else []),
                str(pair.number),
                "off, on" if pair.a_first else "on, off",
                _fmt(active_us_per_delivery(off, off_nodes), 2),
                _fmt(active_us_per_delivery(on, on_nodes), 2),
                _fmt(ratio, 3),
                _fmt(_redis_us(off), 2),
                _fmt(_redis_us(on), 2),
                _fmt(off.deliveries_per_s, 0),
                _fmt(on.deliveries_per_s, 0),
                _fmt(off.delivery_ratio, 2, pct=True),
                _fmt(on.delivery_ratio, 2, pct=True),
                _fmt(off.latency_us.get("p99", math.nan) / 1000, 2),
                _fmt(on.latency_us.get("p99", math.nan) / 1000, 2),
            ]
        )
    found = [r for r in ratios if not math.isnan(r)]
    deliveries = [
        max(1, sum(p.a.in_window for p in pairs)),
        max(1, sum(p.b.in_window for p in pairs)),
    ]
    node = [
        sum(sum(p.a.node_cpu_ns[n] for n in off_nodes) for p in pairs) / deliveries[0] / 1000,
        sum(sum(p.b.node_cpu_ns[n] for n in on_nodes) for p in pairs) / deliveries[1] / 1000,
    ]
    redis = [
        sum(p.a.redis_cpu_ns for p in pairs) / deliveries[0] / 1000,
        sum(p.b.redis_cpu_ns for p in pairs) / deliveries[1] / 1000,
    ]
    median = statistics.median(found) if found else math.nan
    total = [node[0] + redis[0], node[1] + redis[1]]
    return [
        *_table(
            (("session", *HISTORY_AB_COLUMNS) if several else HISTORY_AB_COLUMNS),
            rows,
        ),
        "",
        f"**on/off = {_fmt(median, 3)}×**, the median of the per-pair ratios over "
        f"{len(pairs)} pairs of {sessions} session(s) (range {_span(found, 3)}). Summed CPU "
        f"over summed deliveries: off {_fmt(node[0], 2)} µs, on {_fmt(node[1], 2)} µs, on/off "
        f"{_fmt(_div(node[1], node[0]), 3)}×; with Redis' share added, off "
        f"{_fmt(total[0], 2)} µs, on {_fmt(total[1], 2)} µs, on/off "
        f"{_fmt(_div(total[1], total[0]), 3)}×.",
    ]


def _noisy_section(table: Table, scenario: Scenario) -> list[str]:
    rows = []
    for system in scenario.systems:
        traffic = table.step(scenario.name, system, "traffic")
        idle = table.step(scenario.name, system, "idle")
        if traffic is None:
            continue
        idle_cores = idle["node0_cores"] if idle else math.nan
        net = (traffic["node0_cores"] - idle_cores) / traffic["messages_per_s"] * 1e6
        rows.append(
            [
                table.labels.get(system, system),
                _fmt(traffic["node0_us_per_message"], 3),
                _fmt(net, 3),
                _fmt(traffic["node0_cores"] * 100, 2),
                _fmt(idle["node0_cores"] * 100 if idle else math.nan, 2),
                _fmt(traffic["messages_per_s"], 0),
                _fmt(traffic["deliveries_per_s"], 0),
                _fmt(traffic["delivery_ratio"], 2, pct=True),
                _fmt(traffic["node1_cores"], 2),
            ]
        )
    if not rows:
        return []
    lines = [
        "",
        f"### {scenario.title}",
        "",
        *_table(
            (
                "system",
                "node A µs per cluster message",
                "same, net of idle",
                "node A % core (traffic)",
                "node A % core (idle)",
                "messages/s",
                "deliveries/s (B)",
                "delivered",
                "node B cores",
            ),
            rows,
        ),
    ]
    mine = table.get(scenario.name, "project", "traffic", "node0_us_per_message")
    legacy = table.get(scenario.name, "v2global", "traffic", "node0_us_per_message")
    if not math.isnan(mine) and legacy:
        lines += [
            "",
            f"Node A of the project spends {100 * mine / legacy:.2f} % of "
            "V2-global's CPU per cluster message (idle timers included).",
        ]
    return lines


def _connect_section(table: Table, scenario: Scenario) -> list[str]:
    rows = []
    for system in scenario.systems:
        s = table.session(scenario.name, system)
        if s is None:
            continue
        rows.append(
            [
                table.labels.get(system, system),
                _fmt(s["connections"], 0),
                _fmt(s["connected"], 0),
                _fmt(s["connect_failed"], 0),
                _fmt(s["rss_before_mib"]),
                _fmt(s["rss_after_mib"]),
                _fmt(s["rss_kib_per_conn"]),
                _fmt(s["connect_wall_s"], 2),
                _fmt(s.get("connect_p50_ms", math.nan), 1),
                _fmt(s.get("connect_p99_ms", math.nan), 1),
                _fmt(s["connect_cpu_us_each"], 0),
            ]
        )
    if not rows:
        return []
    return [
        "",
        f"### {scenario.title}",
        "",
        *_table(
            (
                "system",
                "connections",
                "open",
                "failed",
                "RSS before MiB",
                "RSS after MiB",
                "KiB/connection",
                "connect wall s",
                "connect p50 ms",
                "connect p99 ms",
                "server CPU µs/connect",
            ),
            rows,
        ),
    ]


def render(
    results: list[SessionResult],
    scenarios: dict[str, Scenario],
    command: str,
    elapsed: float,
    quick: bool,
    project: str = "working tree",
) -> str:
    """The whole report; scenarios without results are left out."""
    table = Table(results)
    repeats = max(table.runs.values(), default=0)
    lines = _header(command, elapsed, quick, repeats)
    lines.insert(3, f"- project code: {project}")
    for scenario in scenarios.values():
        if scenario.name == "legacy":  # eight near-identical steps: one table of pairs
            lines += _legacy_section(table, scenario)
        elif scenario.name == "history":  # eight steps of two sides: one table of pairs
            lines += _history_ab_section(table, scenario)
        elif scenario.name == "noisy":
            lines += _noisy_section(table, scenario)
        elif scenario.steps:
            lines += _steps_section(table, scenario, scenario.systems)
        else:
            lines += _connect_section(table, scenario)
    lines += ["", "### Targets", "", *target_rows(table)]
    profiles = [r for r in results if r.profile]
    for result in profiles:
        lines += [
            "",
            f"### Profile: {result.label}, {result.scenario}, node 0",
            "",
            result.profile or "",
        ]
    if table.notes:
        lines += [
            "",
            "### Notes from the logs",
            "",
            *(f"- {n}" for n in dict.fromkeys(table.notes)),
        ]
    if table.errors:
        lines += ["", "### Errors", "", *(f"- {e}" for e in table.errors)]
    return "\n".join(lines) + "\n"
