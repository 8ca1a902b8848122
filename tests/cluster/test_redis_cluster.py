"""Two real `aether-bridge serve` processes on a real three-master Redis Cluster.

``redis+cluster://host:port[,host:port...]`` selects a Redis Cluster by its seed nodes
(docs/ops-runbook.md section 1). Each node is given different seeds and finds the rest of the
cluster from them; everything the two share goes through the cluster (shard channels on the
masters that own them).
"""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio.cluster import RedisCluster

from v3_core.backends.redis_client import parse_cluster_url

from ..helpers import connect, eventually, recv_json, send_json, v3
from .routing import every_target_is_delivered_across

pytestmark = pytest.mark.cluster


@pytest.fixture
def seeds(redis_cluster_url: str) -> list[str]:
    cluster = parse_cluster_url(redis_cluster_url)
    return [f"redis+cluster://{host}:{port}" for host, port in cluster.seeds]


@pytest.fixture
def cluster_nodes(start_node, seeds: list[str]):
    env = {"AETHER_PRESENCE_TTL": "2"}
    two_seeds = seeds[1] + "," + seeds[2].removeprefix("redis+cluster://")
    return (
        start_node("--redis-url", seeds[0], env=env),
        start_node("--redis-url", two_seeds, env=env),
    )


async def test_every_target_is_delivered_across_nodes_on_a_cluster(cluster_nodes):
    await every_target_is_delivered_across(*cluster_nodes)


async def test_presence_is_shared_through_the_cluster(cluster_nodes, seeds):
    a, b = cluster_nodes
    assert f"using Redis Cluster (sharded pub/sub) with seeds {seeds[0]}" in a.log.read_text()
    async with await v3(a.ws, "room", "alice") as alice, await v3(b.ws, "room", "bob"):

        async def both_listed() -> bool:
            async with httpx.AsyncClient() as http:
                for node in (a, b):
                    found = (await http.get(f"{node.http}/v3/groups/room/presence")).json()
                    if found["clients"] != ["alice", "bob"]:
                        return False
            return True

        await eventually(both_listed, 5.0)
        await send_json(alice, {"msg_type": "heartbeat", "target": "echo"})
        reply = await recv_json(alice)
        while reply["msg_type"] == "presence":  # bob's join, if it came after the listing
            reply = await recv_json(alice)
        assert reply["msg_type"] == "heartbeat"  # the presence refresh went through the cluster


async def test_a_legacy_client_is_mapped_and_reached_across_nodes(
    cluster_nodes, redis_cluster_url: str, prefix: str
):
    """The ID store lives in the cluster: both nodes give database integer 42 one Vision ID."""
    a, b = cluster_nodes
    legacy_a = await connect(a.ws, "/ws/group/7/client/42")
    legacy_b = await connect(b.ws, "/ws/group/7/client/43")
    async with legacy_a, legacy_b:
        await send_json(legacy_b, {"msg": "hello", "to": 42})
        got = await recv_json(legacy_a)
        while got.get("type") != "msg":  # presence joins come first
            got = await recv_json(legacy_a)
        assert (got["msg"], got["from"], got["group"]) == ("hello", 43, 7)
        async with httpx.AsyncClient() as http:  # the V2 store's pipelines, on the cluster
            usage = (await http.get(f"{b.http}/v2/usage")).json()
        (group,) = usage["groups"]
        assert (group["group_legacy"], group["messages"]) == ("7", 1)
    client = RedisCluster.from_url(parse_cluster_url(redis_cluster_url).seed_urls[0])
    try:
        mapped = await client.get(f"{prefix}id:{{client}}:l:42")
    finally:
        await client.aclose()
    assert mapped is not None
