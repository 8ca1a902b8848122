"""NodeStore conformance (memory and Redis), and the traffic series behind the chart."""

from __future__ import annotations

import time

import pytest

from bridge.node_registry import (
    MemoryNodeStore,
    NodeInfo,
    NodeStore,
    RedisNodeStore,
    TrafficSeries,
    sum_traffic,
)
from v3_core import BackendUnavailable

from ..helpers import free_port


def info(node_id: str, seen_at: float, started_at: float = 0.0) -> NodeInfo:
    return NodeInfo(node_id, "1.2.3", started_at, seen_at, 5, 2, True, {"g": {"connections": 5}})


@pytest.fixture
async def store(backend_url, prefix):
    made: NodeStore = (
        MemoryNodeStore() if backend_url is None else RedisNodeStore(backend_url, prefix=prefix)
    )
    yield made
    await made.aclose()


async def test_lists_live_nodes_oldest_first_and_hides_stale_ones(store):
    now = time.time()
    await store.beat(info("b", now, started_at=now - 10))
    await store.beat(info("a", now - 1, started_at=now - 100))
    await store.beat(info("gone", now - 30, started_at=now - 1000))
    nodes = await store.nodes(stale_after=5)
    assert [n.node_id for n in nodes] == ["a", "b"]
    assert nodes[0] == info("a", now - 1, started_at=now - 100)  # round trip intact


async def test_a_beat_replaces_the_node_entry(store):
    now = time.time()
    await store.beat(info("a", now - 20))
    assert await store.nodes(stale_after=5) == []
    await store.beat(info("a", now))
    assert [n.seen_at for n in await store.nodes(stale_after=5)] == [now]


async def test_a_node_that_leaves_is_gone_at_once(store):
    now = time.time()
    await store.beat(info("a", now))
    await store.beat(info("b", now))
    await store.leave("a")
    await store.leave("never-seen")
    assert [n.node_id for n in await store.nodes(stale_after=5)] == ["b"]


async def test_unreachable_redis_raises_backend_unavailable(prefix):
    store = RedisNodeStore(f"redis://127.0.0.1:{free_port()}", prefix=prefix, timeout=0.5)
    try:
        with pytest.raises(BackendUnavailable):
            await store.beat(info("a", time.time()))
        with pytest.raises(BackendUnavailable):
            await store.nodes(5)
    finally:
        await store.aclose()


def test_traffic_rates_per_step_from_cumulative_counters():
    series = TrafficSeries(step=5, points=3)
    series.sample({("v2", "group"): 10}, 100.0)
    assert series.as_json() == {"step": 5, "end": 0.0, "series": {}}  # a rate needs two
    series.sample({("v2", "group"): 20, ("v3", "direct"): 5}, 105.0)
    series.sample({("v2", "group"): 20, ("v3", "direct"): 10}, 110.0)
    assert series.as_json() == {
        "step": 5,
        "end": 110.0,
        "series": {"v2 group": [2.0, 0.0], "v3 direct": [1.0, 1.0]},
    }
    for t in (115.0, 120.0):
        series.sample({("v2", "group"): 20, ("v3", "direct"): 10}, t)
    assert len(series.as_json()["series"]["v3 direct"]) == 3  # the last `points` only


def test_cluster_traffic_sums_nodes_by_time():
    a = {"step": 5, "end": 110.0, "series": {"v2 group": [1.0, 2.0]}}
    b = {"step": 5, "end": 105.4, "series": {"v2 group": [4.0], "v3 group": [3.0]}}
    assert sum_traffic([a, b, {"series": {}}], 5, 4) == {
        "step": 5,
        "end": 110.0,
        "series": {"v2 group": [0.0, 0.0, 5.0, 2.0], "v3 group": [0.0, 0.0, 3.0, 0.0]},
    }
    assert sum_traffic([], 5, 4)["series"] == {}
