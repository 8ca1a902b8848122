"""The pure parts of ``bench.cluster_pubsub``: names by slot, parsing, delivery check, report."""

from __future__ import annotations

from redis.crc import key_slot

from bench.cluster_pubsub import (
    BROADCAST,
    BUS_FIELDS,
    EMPTY,
    TRAFFIC,
    Delta,
    RoundResult,
    bus_bytes_by_pid,
    check_delivery,
    commands_line,
    delta,
    parse_info,
    pick_clients,
    pick_groups,
    pick_prefix,
    report,
    sample_from,
    shard_of,
)
from tests.support.redis_cluster import slot_ranges

RANGES = slot_ranges(3)


def test_slot_ranges_cover_every_slot_once() -> None:
    assert [len(r) for r in RANGES] == [5461, 5461, 5462]
    assert [s for r in RANGES for s in r] == list(range(16384))


def test_names_land_on_the_shard_asked() -> None:
    prefix = pick_prefix("t", RANGES, BROADCAST)
    assert shard_of(f"{prefix}b", RANGES) == BROADCAST
    assert shard_of(f"{prefix}v2:mode", RANGES) == BROADCAST
    groups = pick_groups(prefix, RANGES, TRAFFIC, 5)
    assert len(set(groups)) == 5
    for group in groups:
        assert key_slot(f"{prefix}g:{group}".encode()) in RANGES[TRAFFIC]
        # presence keys are {prefix}p:{<group>}: their slot is the group ID's own
        assert key_slot(f"{prefix}p:{{{group}}}".encode()) in RANGES[TRAFFIC]
        # history keys are {<channel>}:h and {<channel>}:s
        assert key_slot(f"{{{prefix}g:{group}}}:s".encode()) in RANGES[TRAFFIC]
    for client in pick_clients(prefix, RANGES, EMPTY, 7):
        assert shard_of(f"{prefix}c:{client}", RANGES) == EMPTY
        assert not client.isdigit()  # a Vision ID


def test_parse_info_text_and_dict() -> None:
    text = "# CPU\r\nused_cpu_sys:1.5\r\nused_cpu_user:0.25\r\n\r\n# Other\r\nx:y:z\r\n"
    assert parse_info(text) == {"used_cpu_sys": "1.5", "used_cpu_user": "0.25", "x": "y:z"}
    assert parse_info(text.encode())["x"] == "y:z"
    assert parse_info({"used_cpu_sys": 1.5}) == {"used_cpu_sys": "1.5"}


def _sample(cpu: float, sent: int, bus: int, calls: int) -> object:
    return sample_from(
        {
            "used_cpu_sys": cpu,
            "used_cpu_user": cpu,
            "used_cpu_sys_main_thread": cpu / 2,
            "used_cpu_user_main_thread": cpu / 2,
        },
        {"total_net_output_bytes": 100 * sent},
        f"cluster_state:ok\r\ncluster_stats_messages_sent:{sent}\r\n",
        int(cpu * 1e9),
        bus,
        {"cmdstat_evalsha": {"calls": calls, "usec": 1}, "cmdstat_info": {"calls": 1}},
    )


def test_delta_of_two_samples() -> None:
    before, after = _sample(1.0, 10, 1000, 5), _sample(1.5, 30, 5000, 105)
    d = delta(before, after)  # type: ignore[arg-type]
    assert round(d.cpu_us) == 1_000_000
    assert round(d.main_us) == 500_000
    assert round(d.sched_us) == 500_000
    assert d.bus["cluster_stats_messages_sent"] == 20
    assert d.bus["cluster_stats_messages_publishshard_sent"] == 0  # absent: 0
    assert set(d.bus) == set(BUS_FIELDS)
    assert (d.net_out, d.bus_bytes) == (2000, 4000)
    assert d.commands == {"evalsha": 100}  # unchanged counters left out
    half = d.scaled(0.5)
    assert (round(half.cpu_us), half.bus_bytes) == (500_000, 2000)


SS = """\
ESTAB 0 0 127.0.0.1:32982 127.0.0.1:17102 users:(("redis-server",pid=28008,fd=9))
\t bbr wscale:10,10 rto:204 bytes_sent:6768 bytes_acked:6769 bytes_received:6768 segs_out:8
ESTAB 0 0 127.0.0.1:17102 127.0.0.1:32982 users:(("redis-server",pid=28066,fd=9))
\t bbr wscale:10,10 rto:204 bytes_sent:100 bytes_acked:100 bytes_received:6768 segs_out:4
ESTAB 0 0 127.0.0.1:17101 127.0.0.1:35386 users:(("redis-server",pid=28008,fd=11))
\t bbr wscale:10,10 rto:204 bytes_acked:50 bytes_received:6768 segs_out:4
ESTAB 0 0 127.0.0.1:17101 127.0.0.1:35387
\t bbr wscale:10,10 rto:204 bytes_sent:999 bytes_received:1
"""


def test_bus_bytes_by_pid() -> None:
    # bytes_sent, else bytes_acked; a socket without a process (not ours) counts for none
    assert bus_bytes_by_pid(SS) == {28008: 6818, 28066: 100}


def test_check_delivery() -> None:
    assert check_delivery([1, 5, 9], group=1, groups=4, messages=12) == []
    assert check_delivery([1, 5, 5, 9], 1, 4, 12) == ["1 duplicates"]
    assert check_delivery([1, 9], 1, 4, 12) == ["1 missing (first 5)"]
    assert check_delivery([1, 2, 5, 9], 1, 4, 12) == ["1 from other groups"]
    assert check_delivery([5, 1, 9], 1, 4, 12) == ["out of send order (2 positions differ)"]


def _delta(cpu_us: float, bus_bytes: int = 0) -> Delta:
    return Delta(cpu_us, cpu_us, cpu_us, dict.fromkeys(BUS_FIELDS, 0), 0, bus_bytes, {})


def _round(mode: str, index: int, cpus: list[float]) -> RoundResult:
    return RoundResult(
        mode=mode,
        index=index,
        messages=100,
        traffic_s=2.0,
        idle_s=1.0,
        send_s=1.0,
        traffic=[_delta(c) for c in cpus],
        idle=[_delta(50.0) for _ in cpus],
        nodes_us=1000.0,
        nodes_idle_us=10.0,
        subscribers=[1, 1, 0],
        machine_busy=0.5,
        delivered=400,
        expected=400,
    )


def test_report_takes_medians_per_mode_and_shard() -> None:
    results = [
        _round("classic", 1, [1000.0, 300.0, 200.0]),
        _round("sharded", 1, [800.0, 100.0, 100.0]),
        _round("classic", 2, [3000.0, 500.0, 400.0]),
        _round("sharded", 2, [1200.0, 100.0, 100.0]),
    ]
    text = report(results, ["# header"])
    assert text.startswith("# header\n")
    # classic shard 0: median of 10 and 30 µs/msg; idle 50 µs times 2 (window ratio) / 100 msgs
    assert "| classic | 0 | traffic: groups, clients, history, presence | 20.0 |" in text
    assert "| 20.0 | 1.0 | 19.0 |" in text
    assert "| sharded | 2 | idle: nothing named | 1.0 |" in text
    assert "| classic 2 | 1/1/0 | 30.0 | 5.0 | 4.0 | 10.0 | 0.2 | 1.00 s | 50 % | 400/400 |" in text


def test_commands_line_leaves_out_the_meter() -> None:
    calls = {"info": 9, "cluster|info": 3, "evalsha": 100, "publish": 100, "hgetall": 1}
    assert commands_line(calls, 100) == "evalsha 1.00, publish 1.00, hgetall 0.01"
    assert commands_line({"info": 4}, 100) == "none"
