"""Behaviour of the harness's pure parts: run with ``pytest bench/tests`` (no timing asserted)."""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field
from typing import cast

import orjson
import pytest

from bench.dialects import SOCKETIO, V2, V3, Dialect, stamp_ns
from bench.figures import Table, ab_pairs, median_ratio, pooled_ratio
from bench.measured import SessionResult, StepResult, percentile, tail_clustering
from bench.profile import summarise
from bench.report import render
from bench.scenarios import (
    ConnSpec,
    Step,
    catalogue,
    noisy,
    sends_in,
    spread,
    step_shares,
    timeline,
)
from bench.targets import TARGETS
from bench.worker import Load, WorkerSpec
from bench.wsclient import BenchConnection


def test_spread_splits_every_group_across_nodes():
    """Fan-out only crosses nodes if each group has members on each node."""
    conns = spread(1000, 20, 2, "f")
    for group in {c.group_id for c in conns}:
        nodes = {c.node for c in conns if c.group_id == group}
        assert nodes == {0, 1}


def test_noisy_puts_one_silent_connection_on_node_a():
    conns = noisy(10, 5, "n")
    assert [c for c in conns if c.node == 0] == [conns[0]]
    assert not conns[0].sender
    assert {c.group_id for c in conns[1:]}.isdisjoint({conns[0].group_id})


def test_timeline_lays_steps_end_to_end_with_drain_gaps():
    steps = (Step("a", "rate", 1.0, 2.0, rate=1), Step("b", "idle", 0.0, 1.0))
    first, second = timeline(steps, 0, 0.5)
    assert (first.start, first.measure_start, first.end) == (0, 10**9, 3 * 10**9)
    assert second.start == int(3.5e9)
    assert second.end == int(4.5e9)


def test_catalogue_ids_are_vision_ids():
    """Path IDs must be 1-64 chars of [A-Za-z0-9_-], not all digits, or the server refuses."""
    for scenario in catalogue(quick=False).values():
        for conn in scenario.conns:
            for value in (conn.group_id, conn.client_id):
                assert 1 <= len(value) <= 64
                assert not value.isdigit()


@pytest.mark.parametrize("dialect", [V3, V2])
def test_json_dialects_find_the_bench_payload(dialect):
    sent = orjson.loads(dialect.frame(7, 1, 123)[len(dialect.prefix) : -len(dialect.suffix)])
    received = orjson.dumps({dialect.envelope: "msg", dialect.payload_key: sent})
    assert dialect.bench_payload(received) == (sent, 0)


@pytest.mark.parametrize(
    "sent_at", ["2026-11-25T22:44:22.123456Z", "2026-11-25T22:44:22.123456+00:00"]
)
def test_the_server_stamp_is_read_in_nanoseconds(sent_at):
    """Both spellings the systems under test write: pydantic's ``Z`` and isoformat's offset."""
    frame = orjson.dumps({"msg_type": "msg", "payload": {"t": 1}, "sent_at": sent_at})
    found = V3.bench_payload(frame)
    assert found is not None
    assert found.stamped_ns == 1_795_646_662_123_456_000
    assert stamp_ns("not a date") == 0


def test_presence_and_foreign_frames_are_not_counted():
    presence = {"msg_type": "presence", "payload": {"event": "join", "client_id": "c"}}
    assert V3.bench_payload(orjson.dumps(presence)) is None
    assert V3.bench_payload(b'not json but has "t": 1') is None


def test_socketio_dialect_reads_event_packets_with_spaces():
    """python-socketio encodes with the stdlib json module: spaces after separators."""
    packet = b'42["msg", {"msg_type": "msg", "payload": {"t": 5, "s": 1, "k": 0}}]'
    assert SOCKETIO.bench_payload(packet) == ({"t": 5, "s": 1, "k": 0}, 0)
    assert SOCKETIO.bench_payload(b"2") is None


def _text_frame(data: bytes) -> bytes:
    if len(data) < 126:
        return bytes([0x81, len(data)]) + data
    return bytes([0x81, 126]) + struct.pack("!H", len(data)) + data


async def test_frame_splitter_handles_split_and_batched_reads():
    """Frames cut anywhere across reads, or several in one read, are each counted once."""
    got: list[dict[str, int]] = []
    conn = BenchConnection(0, "ws://127.0.0.1:1/x", V3, {}, lambda i, p: got.append(p.payload))
    frames = b"".join(
        _text_frame(orjson.dumps({"msg_type": "msg", "payload": {"t": i, "s": 0, "k": 0}}))
        for i in range(50)
    )
    conn._split_frames(frames[:3])
    for cut in range(3, len(frames), 97):
        conn._split_frames(conn.pending + frames[cut : cut + 97])
    assert [p["t"] for p in got] == list(range(50))
    assert conn.pending == b""


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([], 50) != percentile([], 50)  # NaN


def test_step_result_ratios():
    step = StepResult("s", "rate", 2.0, sent=10, expected=100, delivered=99, in_window=80)
    step.node_cpu_ns = (400_000, 400_000)
    step.add_latencies(array("q", [1_000_000, 2_000_000]))
    assert step.deliveries_per_s == 40
    assert step.delivery_ratio == 0.99
    assert step.server_cpu_us_per_delivery == 10
    assert step.latency_us["p50"] == 1000


def test_summarise_skips_the_root_chain():
    table = summarise("main (a.py:1);loop (b.py:2);send (c.py:3) 3\nmain (a.py:1);loop (b.py:2) 1")
    assert "`send (c.py)`" in table
    assert "| 75.0 | `send (c.py)` |" in table
    assert "100.0" not in table


def test_tail_clustering_tells_a_stall_from_spread_out_load():
    ms = 1_000_000
    times = array("q", range(0, 10_000 * ms, ms))  # one delivery per ms for 10 s
    stall = array("q", [50 * ms if 4000 <= i < 4100 else ms for i in range(10_000)])
    clustered = tail_clustering(stall, times, 50 * ms)
    assert clustered == {"windows": 1.0, "worst3": 1.0, "at1": 4.0}
    spread = array("q", [50 * ms if i % 100 == 0 else ms for i in range(10_000)])
    scattered = tail_clustering(spread, times, 50 * ms)
    assert scattered["windows"] == 100
    assert scattered["worst3"] == 0.03


# -- legacy: V3 and V2 interleaved in one session ---------------------------------------------


def test_legacy_alternates_dialects_abba_in_one_session() -> None:
    """One system, both populations connected, steps V3 V2 V2 V3 V3 V2 V2 V3 at one rate."""
    for quick in (False, True):
        legacy = catalogue(quick)["legacy"]
        assert legacy.systems == ("project",)
        assert [s.name for s in legacy.steps] == [
            *("v3-1", "v2-1", "v2-2", "v3-2"),
            *("v3-3", "v2-3", "v2-4", "v3-4"),
        ]
        assert [s.senders for s in legacy.steps] == ["v3", "v2", "v2", "v3"] * 2
        q = 0.2 if quick else 1.0
        assert {(s.mode, s.rate, s.warmup_s, s.measure_s) for s in legacy.steps} == {
            ("rate", legacy.steps[0].rate, 0.5 * q, 3.0 * q)
        }
    legacy = catalogue(quick=False)["legacy"]
    assert legacy.steps[0].rate == 20_000 / 50  # 20,000 deliveries/s to groups of 50
    by_dialect = {d: [c for c in legacy.conns if c.dialect == d] for d in ("v3", "v2")}
    assert [len(by_dialect[d]) for d in ("v3", "v2")] == [1000, 1000]
    groups = {d: {c.group_id for c in conns} for d, conns in by_dialect.items()}
    assert len(groups["v3"]) == len(groups["v2"]) == 20
    assert groups["v3"].isdisjoint(groups["v2"])
    assert len({c.index for c in legacy.conns}) == len({c.client_id for c in legacy.conns}) == 2000


def test_a_step_with_senders_sends_from_that_dialect_only() -> None:
    v3 = ConnSpec(0, 0, "g", "a", dialect="v3")
    v2 = ConnSpec(1, 0, "h", "b", dialect="v2")
    system = ConnSpec(2, 0, "g", "c")  # speaks the system's dialect
    silent = ConnSpec(3, 0, "g", "d", sender=False, dialect="v2")
    v2_step = Step("v2-1", "rate", 0, 1, rate=1, senders="v2")
    every = Step("all", "rate", 0, 1, rate=1)
    assert [sends_in(c, v2_step, "v3") for c in (v3, v2, system, silent)] == [0, 1, 0, 0]
    assert [sends_in(c, v2_step, "v2") for c in (v3, v2, system, silent)] == [0, 1, 1, 0]
    assert [sends_in(c, every, "v3") for c in (v3, v2, system, silent)] == [1, 1, 1, 0]


def test_shares_count_only_the_senders_of_each_step() -> None:
    """Worker 0 holds one V3 sender; worker 1 one V3 and three V2 senders."""
    conns = (
        ConnSpec(0, 0, "g", "a", dialect="v3"),
        ConnSpec(1, 0, "g", "b", dialect="v3"),
        *(ConnSpec(i, 0, "h", f"c{i}", dialect="v2") for i in (3, 5, 7)),
        ConnSpec(9, 0, "h", "quiet", sender=False, dialect="v2"),
    )
    steps = (
        Step("v3-1", "rate", 0, 1, senders="v3"),
        Step("v2-1", "rate", 0, 1, senders="v2"),
        Step("all", "window", 0, 1),
        Step("nobody", "rate", 0, 1, senders="socketio"),
    )
    worker0 = tuple(c for c in conns if c.index in (0, 9))
    worker1 = tuple(c for c in conns if c.index not in (0, 9))
    assert step_shares(worker0, conns, steps, "v3") == (0.5, 0.0, 0.2, 0.0)
    assert step_shares(worker1, conns, steps, "v3") == (0.5, 1.0, 0.8, 0.0)


def test_shares_of_an_existing_scenario_are_unchanged() -> None:
    """Without ``senders`` a worker's share is its senders over all senders, every step."""
    fanout = catalogue(quick=True)["noisy"]
    mine = tuple(c for c in fanout.conns if c.index % 2 == 0)
    old = sum(c.sender for c in mine) / sum(c.sender for c in fanout.conns)
    assert step_shares(mine, fanout.conns, fanout.steps, "v3") == (old, old)


def _step(name: str, cpu_us: float, deliveries: int = 1000) -> StepResult:
    step = StepResult(name, "rate", 1.0, expected=deliveries, delivered=deliveries)
    step.in_window = deliveries
    step.node_cpu_ns = (int(cpu_us * deliveries * 1000 / 2),) * 2
    return step


def _legacy_session(pairs: list[tuple[float, float]]) -> SessionResult:
    """A legacy session whose pairs have these (V3, V2) µs per delivery, in ABBA order."""
    result = SessionResult("project", "aether-bridge (V3)", "legacy", 2, 4000)
    for n, (v3, v2) in enumerate(pairs, 1):
        first, second = (_step(f"v3-{n}", v3), _step(f"v2-{n}", v2))
        result.steps += [first, second] if n % 2 else [second, first]
    return result


def test_pairs_ratio_median_and_pooled() -> None:
    session = _legacy_session([(10, 11), (20, 20), (10, 9), (10, 13)])
    pairs = ab_pairs([session], "v3", "v2")
    assert [(p.number, p.a_first) for p in pairs] == [(1, True), (2, False), (3, True), (4, False)]
    assert [round(p.ratio, 6) for p in pairs] == [1.1, 1.0, 0.9, 1.3]
    assert median_ratio(pairs) == pytest.approx(1.05)
    assert pooled_ratio(pairs) == pytest.approx(53 / 50)


def test_legacy_target_is_the_median_over_every_pair_of_every_session() -> None:
    """With ``--repeat`` the pairs of all sessions count, not a median of per-step medians."""
    sessions = [
        _legacy_session([(10, 10), (10, 10.5), (10, 30), (10, 10)]),
        _legacy_session([(10, 9), (10, 11), (10, 12), (10, 12.5)]),
    ]
    table = Table(sessions)
    legacy = next(t for t in TARGETS if t.text.startswith("legacy path"))
    value, status = legacy.check(table)
    assert value == pytest.approx(1.075)  # ratios 0.9 1.0 1.0 1.05 | 1.1 1.2 1.25 3.0
    assert status == "met"
    report = render(sessions, {"legacy": catalogue(False)["legacy"]}, "cmd", 1.0, False)
    assert "over all 8 pairs of 2 sessions" in report
    assert "v3-1" not in report  # one table of pairs, not a table per step


@dataclass
class _Sent:
    """Stands in for an open connection: keeps the frames it is asked to send."""

    index: int
    dialect: Dialect
    frames: list[bytes] = field(default_factory=list)

    def send(self, frame: bytes) -> bool:
        self.frames.append(frame)
        return True


def test_worker_sends_from_the_steps_dialect_in_that_dialects_frames() -> None:
    conns = (
        ConnSpec(0, 0, "g", "a"),  # the system's dialect, V3
        ConnSpec(2, 0, "h", "b", dialect="v2"),
        ConnSpec(4, 0, "h", "c", dialect="v2"),
        ConnSpec(6, 0, "h", "d", sender=False, dialect="v2"),
    )
    steps = (
        Step("v2-1", "rate", 0, 1, senders="v2"),
        Step("v3-1", "rate", 0, 1, senders="v3"),
        Step("all", "rate", 0, 1),
    )
    spec = WorkerSpec(0, conns, (1,), "v3", {"g": 1, "h": 3}, steps, (1, 1, 1), 0, False, 1)
    load = Load(spec)
    fakes = {c.index: _Sent(c.index, V2 if c.dialect == "v2" else V3) for c in conns}
    load.conns = cast("dict[int, BenchConnection]", fakes)
    load.rotations = load._rotations()
    load.windows = timeline(steps, 0, 0)
    for step in (0, 0, 0, 1, 2, 2, 2):
        assert load.send_next(step)
    assert [len(f.frames) for f in fakes.values()] == [2, 3, 2, 0]
    assert all(f.startswith(V2.prefix) for f in fakes[2].frames + fakes[4].frames)
    assert all(f.startswith(V3.prefix) for f in fakes[0].frames)
    assert [t.expected for t in load.tallies] == [9, 1, 7]


# -- history on against off: a variant of the project ----------------------------------------


def test_the_history_off_variant_is_the_project_with_history_size_zero() -> None:
    from bench.run import parse_args
    from bench.systems import DEFAULT_SYSTEMS, SYSTEMS

    on, off = SYSTEMS["project"], SYSTEMS["project-nohistory"]
    assert off.argv(1234, "redis://x") == on.argv(1234, "redis://x")
    assert dict(off.env) == {"AETHER_HISTORY_SIZE": "0"}
    assert not on.env
    assert (off.dialect, off.project) == (on.dialect, on.project)
    # Only when named: a default run is unchanged.
    assert "project-nohistory" not in DEFAULT_SYSTEMS
    assert parse_args([]).systems.split(",") == [
        "project",
        "socketio",
        "socketio-node",
        "socketio-node-sharded",
        "v2global",
        "ws-ceiling",
    ]
    for scenario in catalogue(quick=False).values():
        if "project" in scenario.systems and scenario.name not in ("legacy", "history"):
            order = list(scenario.systems)
            assert order.index("project-nohistory") == order.index("project") + 1


def test_an_unknown_system_is_refused() -> None:
    from bench.run import main

    with pytest.raises(SystemExit, match="project-nohistroy"):
        main(["--systems", "project,project-nohistroy"])


def _fanout_session(system: str, us: dict[str, float], redis_us: float = 2.0) -> SessionResult:
    result = SessionResult(system, system, "fanout", 2, 1000)
    for name in ("fan-out", "saturation", "heavy"):
        step = _step(name, us[name])
        step.redis_cpu_ns = int(redis_us * 1000 * step.in_window)
        result.steps.append(step)
    return result


def test_history_section_pairs_the_rounds_and_compares_on_with_off() -> None:
    from bench.report import history_rounds

    sessions = []
    for on, off, sio in ((11.0, 10.0, 50.0), (12.0, 12.0, 60.0), (13.0, 10.0, 40.0)):
        sessions += [
            _fanout_session("project", {"fan-out": on, "saturation": on, "heavy": on}),
            _fanout_session("project-nohistory", {"fan-out": off, "saturation": off, "heavy": off}),
            _fanout_session("socketio", {"fan-out": sio, "saturation": sio, "heavy": sio}),
        ]
    table = Table(sessions)
    assert history_rounds(table, "fanout", "saturation") == pytest.approx([1.1, 1.0, 1.3])
    report = render(sessions, {"fanout": catalogue(False)["fanout"]}, "cmd", 1.0, False)
    assert "history on against off" in report
    # medians: on 12, off 10, socketio 50; redis 2 µs per delivery for both
    assert (
        "| saturation | 12.00 | 10.00 | 1.200 | 1.100, 1.000, 1.300 | 2.00 | 2.00 | 1.167 | 0.240 |"
        in report
    )
    without = [s for s in sessions if s.system != "project-nohistory"]
    assert "history on against off" not in render(
        without, {"fanout": catalogue(False)["fanout"]}, "c", 1.0, False
    )


# -- history on against off in one session: two node pairs, steps interleaved ------------------


def test_history_scenario_puts_each_side_on_its_own_pair_of_nodes() -> None:
    from bench.scenarios import HISTORY_NODES, history_rate

    history = catalogue(quick=False)["history"]
    assert history.systems == ("project",)
    assert history.nodes == 4
    assert [dict(e) for e in history.node_env] == [{}, {}, *[{"AETHER_HISTORY_SIZE": "0"}] * 2]
    sides = {side: [c for c in history.conns if c.population == side] for side in ("on", "off")}
    assert [len(sides[s]) for s in ("on", "off")] == [1000, 1000]
    for side, conns in sides.items():
        assert {c.node for c in conns} == set(HISTORY_NODES[side])
        for group in {c.group_id for c in conns}:  # every group crosses its two nodes
            assert {c.node for c in conns if c.group_id == group} == set(HISTORY_NODES[side])
    assert {c.group_id for c in sides["on"]}.isdisjoint({c.group_id for c in sides["off"]})
    assert len({c.index for c in history.conns}) == len({c.client_id for c in history.conns})
    assert [s.name for s in history.steps] == [
        *("off-1", "on-1", "on-2", "off-2", "off-3", "on-3", "on-4", "off-4"),
        *("off-5", "on-5", "on-6", "off-6", "off-7", "on-7", "on-8", "off-8"),
    ]
    assert [s.rate * 50 for s in history.steps] == [20_000] * 8 + [40_000] * 8
    assert [history_rate(n) for n in range(1, 9)] == [20_000] * 4 + [40_000] * 4
    step = history.steps[1]
    assert [sends_in(c, step, "v3") for c in (sides["on"][0], sides["off"][0])] == [True, False]
    shares = step_shares(history.conns[::2], history.conns, history.steps, "v3")
    assert shares == (0.5,) * 16


def _history_session(pairs: list[tuple[float, float]]) -> SessionResult:
    """(off, on) µs per delivery of each side's own nodes; the idle side's nodes burn a bit."""
    result = SessionResult("project", "aether-bridge (V3)", "history", 4, 2000)
    for n, (off, on) in enumerate(pairs, 1):
        steps = []
        for side, us, busy in (("off", off, (2, 3)), ("on", on, (0, 1))):
            step = _step(f"{side}-{n}", us)
            share = int(us * 1000 * 1000 / 2)
            step.node_cpu_ns = tuple(share if i in busy else 99_000 for i in range(4))
            step.redis_cpu_ns = 1_000_000 if side == "on" else 500_000
            steps.append(step)
        result.steps += steps if n % 2 else steps[::-1]
    return result


def test_history_targets_count_each_sides_own_nodes_at_each_rate() -> None:
    slow = [(10.0, 11.0), (10.0, 10.0), (10.0, 12.0), (10.0, 30.0)]
    fast = [(10.0, 12.0), (10.0, 13.0), (10.0, 12.0), (10.0, 14.0)]
    sessions = [_history_session(slow + fast)]
    table = Table(sessions)
    low, high = (t for t in TARGETS if t.text.startswith("history on vs off"))
    assert "20,000" in low.text
    assert "40,000" in high.text
    value, status = low.check(table)
    assert value == pytest.approx(1.15)  # ratios 1.0 1.1 1.2 3.0; idle nodes not counted
    assert status == "met"
    value, status = high.check(table)
    assert value == pytest.approx(1.25)
    assert status == "**not met**"
    report = render(sessions, {"history": catalogue(False)["history"]}, "cmd", 1.0, False)
    assert "**on/off = 1.150×**" in report
    assert "**on/off = 1.250×**" in report
    assert "40,000 deliveries/s (800 messages/s)" in report
    assert "| 1 | off, on | 10.00 | 11.00 | 1.100 | 0.50 | 1.00 |" in report
    assert "| 2 | on, off | 10.00 | 10.00 | 1.000 |" in report
    assert "| 5 | off, on | 10.00 | 12.00 | 1.200 |" in report
    # the target's row is left out of a run without the scenario
    assert "history on vs off" not in render([], {}, "cmd", 1.0, False)
