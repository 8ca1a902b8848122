"""The reconnect storm's pure parts: who connects where, the presence check, the figures."""

from __future__ import annotations

import time
from array import array
from dataclasses import replace

import pytest

from bench.measured import Sample
from bench.reconnect import parse_args, presence_diff, report, shares, storm_figures
from bench.storm_worker import StormShare, clients, open_all, per_node, pick_nodes
from bench.systems import SYSTEMS
from bench.worker import WorkerSpec
from bridge.settings import Settings
from tests.conftest import embedded_backends, serve_app
from v3_core.ids import is_vision_id


def test_clients_fill_groups_with_vision_ids():
    everyone = clients(120, 50)
    assert [c.index for c in everyone] == list(range(120))
    assert [sum(c.group_id == g for c in everyone) for g in ("r-g00000", "r-g00001")] == [50, 50]
    assert all(is_vision_id(c.group_id) and is_vision_id(c.client_id) for c in everyone)
    assert not any(c.sender for c in everyone)


def test_each_client_picks_a_node_again_after_the_drop():
    everyone = clients(1000, 50)
    first, again = pick_nodes(everyone, 2, 1), pick_nodes(everyone, 2, 2)
    assert pick_nodes(everyone, 2, 1) == first  # the same picks for the same seed
    assert [(c.group_id, c.client_id) for c in again] == [(c.group_id, c.client_id) for c in first]
    assert all(n > 300 for n in per_node(first, 2))
    moved = sum(a.node != b.node for a, b in zip(first, again, strict=True))
    assert 300 < moved < 700  # about half change node


def test_shares_give_every_client_to_one_process_in_both_layouts():
    args = parse_args(["--connections", "1001", "--clients", "4", "--nodes", "2"])
    plan = shares(args, SYSTEMS["project"])
    indexes = sorted(c.index for share in plan for c in share.spec.conns)
    assert indexes == list(range(1001))
    for share in plan:
        assert [c.index for c in share.again] == [c.index for c in share.spec.conns]
        assert share.spec.group_sizes["r-g00000"] == 50


def test_presence_diff_names_the_missing_and_the_extra():
    expected = {"g1": {"a", "b"}, "g2": {"c"}}
    actual = {"g1": {"a", "z"}, "g3": {"y"}}
    missing, extra = presence_diff(expected, actual)
    assert missing == [("g1", "b"), ("g2", "c")]
    assert extra == [("g1", "z"), ("g3", "y")]
    assert presence_diff(expected, {"g1": {"b", "a"}, "g2": {"c"}}) == ([], [])


def _sample(t_s: float, cpu_s: float) -> Sample:
    return Sample(int(t_s * 1e9), (int(cpu_s * 1e9 / 2),) * 2, 0, 0, 0, 1, 0)


def test_storm_figures_time_the_last_client_and_share_the_cpu():
    backs = [
        {
            "back": 2,
            "missing": 0,
            "rounds": 1,
            "errors": [],
            "latency_ns": array("q", [1_000_000_000, 3_000_000_000]).tobytes(),
        },
        {
            "back": 2,
            "missing": 1,
            "rounds": 2,
            "errors": ["TimeoutError: "],
            "latency_ns": array("q", [2_000_000_000, 4_500_000_000]).tobytes(),
        },
    ]
    out = storm_figures(backs, _sample(0, 0), _sample(4.5, 3.0), _sample(6.5, 4.0), idle=0.1)
    assert (out["back"], out["not_back"], out["rounds"]) == (4, 1, 2)
    assert out["all_back_s"] == pytest.approx(4.5)
    assert out["storm_cores"] == pytest.approx(3.0 / 4.5)
    assert out["storm_cpu_ms_each"] == pytest.approx(1000.0)  # 4 s of CPU over 4 clients
    assert out["storm_net_cpu_ms_each"] == pytest.approx((4000 - 650) / 4)


def _out(presence: dict[str, object] | None) -> dict[str, object]:
    out: dict[str, object] = {
        "system": "project",
        "connections": 4,
        "connect_failed": 0,
        "connect_rounds": 1,
        "connect_s": 1.0,
        "connect_cpu_ms_each": 1.2,
        "idle_cores": 0.01,
        "again_per_node": [2, 2],
        "rss_mib": [100.0, 120.0, 121.0],
        **storm_figures(
            [{"back": 4, "missing": 0, "rounds": 1, "errors": [], "latency_ns": b""}],
            _sample(0, 0),
            _sample(1, 1),
            _sample(3, 2),
            0.0,
        ),
    }
    out["all_back_s"] = 2.5
    if presence is not None:
        out["presence"] = presence
    return out


def test_the_report_says_whether_the_target_and_presence_hold():
    args = parse_args([])
    text = report(_out(None), args, ["--system", "socketio"])
    assert "(target ≤ 10 s: met) | 2.50 |" in text
    assert "not checked (no presence API)" in text
    wrong = {
        "groups": 1,
        "clients": 4,
        "correct": False,
        "after_s": 10.2,
        "reads": 20,
        "missing": 1,
        "extra": 0,
        "examples": ["missing g/c"],
    }
    text = report(_out(wrong), args, [])
    assert "WRONG after 10.2 s: 1 missing, 0 extra" in text
    assert "missing g/c" in text


async def test_a_connect_closed_right_after_its_handshake_is_not_counted_back():
    """A node refuses a join it cannot make by closing the socket behind its handshake (here
    1013 at AETHER_MAX_CONNECTIONS): such a client is not back, and tries again."""
    everyone = clients(3, 50)
    spec = WorkerSpec(0, everyone, (0,), "v3", {"r-g00000": 3}, (), (), 0.0, True, 3)
    async with serve_app(Settings(max_connections=2), **embedded_backends()) as node:
        share = StormShare(replace(spec, node_ports=(node.port,)), everyone, 0.05, 0.5)
        opened, report = await open_all(share, everyone, True, time.monotonic_ns())
        try:
            assert (report["back"], report["missing"]) == (2, 1)
            assert report["refused"] >= 1  # at least once, then again each round until the deadline
            assert "closed after its handshake: 1013 node at its connection limit" in str(
                report["errors"]
            )
            assert len(array("q", report["latency_ns"])) == 2  # the refused have no latency
        finally:
            for conn in opened.values():
                conn.abort()
