"""Behaviour of the harness's pure parts: run with ``pytest bench/tests`` (no timing asserted)."""

from __future__ import annotations

import struct
from array import array

import orjson
import pytest

from bench.dialects import SOCKETIO, V2, V3, stamp_ns
from bench.measured import StepResult, percentile, tail_clustering
from bench.profile import summarise
from bench.scenarios import Step, catalogue, noisy, spread, timeline
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
