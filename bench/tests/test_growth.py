"""The growth table's pure parts: planning the cells, their sessions, the tables and the chart."""

from __future__ import annotations

import argparse
import json
import math
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict

import pytest

from bench.figures import Medians
from bench.growth import _ints, load, parse_args, raw_results
from bench.growth_plan import (
    CONNS,
    CONNS_PER_WORKER,
    GROUPS,
    NODES,
    Cell,
    Limits,
    Timing,
    plan,
    scenario,
    why_not,
    workers_for,
)
from bench.growth_report import (
    cell_figures,
    chart,
    detail_table,
    growth_table,
    medians,
    render,
)
from bench.measured import Sample, SessionResult, StepResult
from bench.svg_chart import Series, _segments, line_chart, nice_ceiling, y_ticks
from v3_core.ids import is_vision_id

SVG = "{http://www.w3.org/2000/svg}"
# The machine the issue describes: 20,000 open files, Linux's default port range, 22 GiB free.
ROOMY = Limits(open_files=20_000, ephemeral_ports=28_232, memory_bytes=22 * 2**30)


def test_the_default_grid_fits_a_machine_like_this_one():
    cells = plan(GROUPS, NODES, CONNS, ROOMY)
    assert len(cells) == 27
    assert [cell for cell, reason in cells if reason] == []
    assert cells[0][0] == Cell(10, 1, 1000)  # smallest first


def test_a_cell_is_planned_out_with_its_reason():
    tight = Limits(open_files=10_000, ephemeral_ports=28_232, memory_bytes=2 * 2**30)
    reasons = dict(plan((10, 1000), (1, 4), (1000, 19_000), tight))
    assert reasons[Cell(10, 1, 1000)] is None
    assert "files" in (reasons[Cell(10, 1, 19_000)] or "")
    assert why_not(Cell(2000, 1, 1000), ROOMY) == (
        "a group of 2,000 needs more than 1,000 connections"
    )
    few_ports = Limits(open_files=100_000, ephemeral_ports=5_000, memory_bytes=22 * 2**30)
    assert "local ports" in (why_not(Cell(10, 1, 19_000), few_ports) or "")
    little_memory = Limits(open_files=20_000, ephemeral_ports=28_232, memory_bytes=2**30)
    assert "GiB" in (why_not(Cell(10, 4, 19_000), little_memory) or "")


def test_workers_stay_under_the_open_files_limit():
    assert workers_for(1000) == 2
    for total in (19_000, 38_000, 76_000):
        assert math.ceil(total / workers_for(total)) <= CONNS_PER_WORKER


def test_a_cells_session_splits_every_group_across_its_nodes():
    cell = Cell(100, 4, 1000)
    built = scenario(cell, Timing.of(quick=True, rate=None))
    assert len(built.conns) == 4000
    assert built.nodes == 4
    assert Counter(c.node for c in built.conns) == {0: 1000, 1: 1000, 2: 1000, 3: 1000}
    nodes_of: dict[str, set[int]] = defaultdict(set)
    for conn in built.conns:
        nodes_of[conn.group_id].add(conn.node)
        assert is_vision_id(conn.group_id)
        assert is_vision_id(conn.client_id)
    assert set(Counter(c.group_id for c in built.conns).values()) == {100}
    assert all(nodes == {0, 1, 2, 3} for nodes in nodes_of.values())
    idle, rate = built.steps
    assert (idle.mode, rate.mode) == ("idle", "rate")
    assert rate.rate == 5_000 / 100  # deliveries/s ÷ members: the same deliveries in every cell


def test_cell_names_are_unique_across_the_grid():
    cells = [cell for cell, _ in plan(GROUPS, NODES, CONNS, ROOMY)]
    assert len({cell.key for cell in cells}) == len(cells)


def test_list_flags_take_thousands_as_k():
    assert _ints("1k,5k,19k") == (1000, 5000, 19_000)
    assert _ints("10,100") == (10, 100)
    with pytest.raises(argparse.ArgumentTypeError):
        _ints("ten")
    with pytest.raises(argparse.ArgumentTypeError):
        _ints("0")


def test_quick_defaults_to_small_cells_unless_told():
    quick = parse_args(["--quick"])
    assert (quick.groups, quick.nodes, quick.conns) == (GROUPS, (1, 2), (1000,))
    told = parse_args(["--quick", "--nodes", "4", "--conns", "5k"])
    assert (told.nodes, told.conns) == ((4,), (5000,))
    assert parse_args([]).conns == CONNS


def _sample(t_s: float, node_cpu_s: float, nodes: int) -> Sample:
    return Sample(int(t_s * 1e9), (int(node_cpu_s / nodes * 1e9),) * nodes, 0, 0, 0, 1, 0)


def _session(cell: Cell, idle_cores: float, busy_cores: float, error: str | None = None):
    """A measured session: 2 s idle, then 2 s at 10,000 deliveries/s."""
    result = SessionResult("project", "aether-bridge", cell.key, cell.nodes, cell.total)
    result.connected = cell.total
    idle = StepResult("idle", "idle", 2.0)
    idle.set_cpu(_sample(0, 0, cell.nodes), _sample(2, 2 * idle_cores, cell.nodes))
    rate = StepResult("rate", "rate", 2.0, in_window=20_000, expected=20_000, delivered=20_000)
    rate.sent_in_window = 20_000 // cell.group_size
    rate.set_cpu(_sample(3, 0, cell.nodes), _sample(5, 2 * busy_cores, cell.nodes))
    result.steps = [idle, rate]
    result.error = error
    return result


def test_cell_figures_take_the_idle_cpu_out_of_the_net_figure():
    figures = cell_figures(_session(Cell(10, 2, 1000), idle_cores=0.05, busy_cores=0.25))
    assert figures["cpu_us_per_delivery"] == pytest.approx(25.0)  # 0.25 cores / 10k per s
    assert figures["idle_cores"] == pytest.approx(0.05)
    assert figures["net_us_per_delivery"] == pytest.approx(20.0)
    assert figures["us_per_message"] == pytest.approx(250.0)  # 1,000 messages/s to groups of 10


def test_tables_show_measured_failed_and_skipped_cells():
    measured_cell, failed_cell, skipped_cell = (
        Cell(10, 1, 1000),
        Cell(100, 1, 1000),
        Cell(10, 4, 1000),
    )
    cells = [(measured_cell, None), (failed_cell, None), (skipped_cell, "too big")]
    results = {
        measured_cell: [_session(measured_cell, 0.0, 0.1), _session(measured_cell, 0.0, 0.3)],
        failed_cell: [_session(failed_cell, 0.0, 0.1, error="RuntimeError: boom")],
    }
    measured, failed = medians(results)
    assert failed == {failed_cell}
    assert measured[measured_cell]["cpu_us_per_delivery"] == pytest.approx(20.0)  # median of 2
    table = growth_table(cells, measured, failed)
    assert table[0] == "| nodes × connections per node | groups of 10 | groups of 100 |"
    assert table[2] == "| 1 × 1,000 | 20.0 (20.0) | failed |"
    assert table[3] == "| 4 × 1,000 | not measured here | – |"
    assert len(detail_table(measured)) == 3  # header, rule, one row
    report = render(cells, results, Timing.of(quick=False, rate=None), "python -m bench.growth")
    assert "- 4 nodes × 1,000, groups of 10: too big" in report
    assert "RuntimeError: boom" in report


def test_the_chart_draws_one_line_per_nodes_and_connections():
    measured = {
        Cell(g, n, c): Medians({"cpu_us_per_delivery": 10.0 * n + g / 100})
        for g in GROUPS
        for n in (1, 2)
        for c in (1000, 5000)
    }
    root = ET.fromstring(chart(measured, "CPU per delivery"))
    assert len(root.findall(f"{SVG}polyline")) == 4
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "1 node × 1,000" in texts
    assert "2 nodes × 5,000" in texts
    assert {"10", "100", "1,000"} <= set(texts)


def test_svg_scale_and_gaps():
    assert nice_ceiling(52.3) == 60
    assert nice_ceiling(0.7) == pytest.approx(0.8)
    assert nice_ceiling(100) == 100
    assert nice_ceiling(math.nan) == 1.0
    assert y_ticks(10) == [0, 2, 4, 6, 8, 10]
    assert y_ticks(80) == [0, 20, 40, 60, 80]
    assert y_ticks(2.5) == [0, 0.5, 1, 1.5, 2, 2.5]
    assert y_ticks(600) == [0, 100, 200, 300, 400, 500, 600]
    assert _segments([(1, 1.0), (2, math.nan), (3, 3.0), (4, 4.0)]) == [
        [(1, 1.0)],
        [(3, 3.0), (4, 4.0)],
    ]
    broken = Series("a <b>", ((10, 1.0), (100, math.nan), (1000, 3.0)), "#000", "2 3")
    root = ET.fromstring(
        line_chart([broken], title="t & u", x_label="x", y_label="y", x_ticks=[10, 100, 1000])
    )
    assert len(root.findall(f"{SVG}polyline")) == 2  # the NaN breaks the line
    assert "a <b>" in [t.text for t in root.iter(f"{SVG}text")]  # escaped, read back


def test_big_groups_get_time_for_their_presence_joins():
    """Every connect announces its join to its group: groups of 1,000 connect much slower."""
    timing = Timing.of(quick=False, rate=None)
    small, big = scenario(Cell(10, 4, 19_000), timing), scenario(Cell(1000, 4, 19_000), timing)
    assert big.connect_timeout_s > small.connect_timeout_s > 120
    assert big.quiet_cores > 0  # the first step waits for the nodes to be quiet


def test_cells_written_as_json_read_back_the_same(tmp_path):
    """``--from-json`` reports several runs' cells together (a grid measured in parts)."""
    cells = [(Cell(10, 1, 1000), None), (Cell(100, 2, 1000), None), (Cell(10, 4, 19000), "ports")]
    results = {
        Cell(10, 1, 1000): [_session(Cell(10, 1, 1000), 0.01, 0.3)],
        Cell(100, 2, 1000): [_session(Cell(100, 2, 1000), 0.02, 0.2)],
    }
    path = tmp_path / "growth.json"
    path.write_text(json.dumps(raw_results(cells, results), default=str))
    loaded_cells, loaded = load([path])
    assert loaded_cells == sorted(cells)
    for cell, runs in results.items():
        assert cell_figures(loaded[cell][0]) == pytest.approx(cell_figures(runs[0]), nan_ok=True)


def test_a_profiled_cell_adds_its_profile_to_the_report():
    cell = Cell(100, 1, 1000)
    profiled = _session(cell, 0.0, 0.2)
    profiled.profile = "phase `rate`, 12 samples\n\n| self % | function |"
    report = render(
        [(cell, None)],
        {cell: [_session(cell, 0.0, 0.2), profiled]},
        Timing.of(quick=False, rate=None),
        "python -m bench.growth --profile rate",
    )
    assert "Profile of node 0: 1 node × 1,000, groups of 100, run 2" in report
    assert "phase `rate`, 12 samples" in report
    assert "run 1" not in report  # the unprofiled run adds nothing
    assert parse_args(["--profile", "rate"]).profile == "rate"
    assert parse_args([]).profile is None
