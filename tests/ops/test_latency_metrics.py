"""Latency histograms, error replies by code and traffic by protocol, on /metrics by node."""

from __future__ import annotations

import timeit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from v3_core.latency import Histogram

from ..helpers import connect, recv_msg, send_json, v3


def test_buckets_are_cumulative_with_inclusive_upper_bounds():
    histogram = Histogram((0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.002, 0.5):
        histogram.observe(seconds)
    assert histogram.cumulative() == [("0.001", 2), ("0.01", 3), ("+Inf", 4)]
    assert histogram.count == 4 and abs(histogram.total - 0.5035) < 1e-9


def test_an_observation_costs_well_under_a_microsecond():
    histogram = Histogram((0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1.0))
    n = 200_000
    per_call = timeit.timeit(lambda: histogram.observe(0.0003), number=n) / n
    print(f"FIGURE Histogram.observe: {per_call * 1e9:.0f} ns per call (lambda call included)")
    assert per_call < 5e-6  # generous: a loaded CI machine


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_time_publish_fan_out_and_handshakes_by_node(two_nodes):
    a, b = two_nodes
    async with (
        await v3(a.ws, "grp_a", "dev_1") as one,
        await connect(b.ws, "/ws/group/grp_a/client/dev_2") as two,
    ):
        for n in range(16):  # publish and fan-out are timed one message in 8
            await send_json(one, {"msg_type": "msg", "target": "group", "msg": f"hi {n}"})
        for n in range(16):
            assert (await recv_msg(two))["msg"] == f"hi {n}"
        await send_json(two, {"msg": "to nobody", "to": "not valid!"})
        assert (await recv_msg(two))["data"]["code"] == "invalid-id"
        async with httpx.AsyncClient() as http:
            on_a = samples((await http.get(f"{a.http}/metrics")).text)
            on_b = samples((await http.get(f"{b.http}/metrics")).text)
    node_a, node_b = (("node", "nodeA"),), (("node", "nodeB"),)
    assert on_a[("aether_publish_seconds_count", node_a)] == 2  # 16 publishes, 1 in 8 timed
    assert on_a[("aether_handshake_seconds_count", node_a)] == 1
    assert on_b[("aether_handshake_seconds_count", node_b)] == 1
    assert on_b[("aether_fan_out_seconds_count", node_b)] >= 2  # the 16 (and presence events)
    inf = (("le", "+Inf"), ("node", "nodeB"))
    assert (
        on_b[("aether_fan_out_seconds_bucket", inf)]
        == on_b[("aether_fan_out_seconds_count", node_b)]
    )
    assert on_b[("aether_error_replies_total", (("code", "invalid-id"), *node_b))] == 1
    traffic = "aether_traffic_messages_total"
    assert on_a[(traffic, (*node_a, ("protocol", "v3"), ("target", "group")))] == 16
    assert (traffic, (*node_b, ("protocol", "v2"), ("target", "direct"))) not in on_b  # refused
    assert on_a[("aether_node_info", (*node_a, ("version", on_a_version(on_a))))] == 1


def on_a_version(found: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> str:
    [version] = [dict(labels)["version"] for name, labels in found if name == "aether_node_info"]
    return version
