"""Sharded pub/sub on a Redis Cluster: a shard carries only its own channels' traffic, and a
node holds one subscriber connection per shard that owns a channel it wants."""

from __future__ import annotations

import itertools

import pytest
import redis
from redis.crc import key_slot

from v3_core.backends.redis_client import parse_cluster_url

from ..helpers import recv_msg, send_json, v3

pytestmark = pytest.mark.cluster


def masters(url: str) -> list[redis.Redis]:
    cluster = parse_cluster_url(url)
    return [redis.Redis.from_url(seed) for seed in cluster.seed_urls]


def owner_port(client: redis.Redis, channel: str) -> int:
    slot = key_slot(channel.encode())
    for first, last, primary, *_ in client.execute_command("CLUSTER SLOTS"):
        if first <= slot <= last:
            return int(primary[1])
    raise AssertionError(f"no owner for slot {slot}")


def name_on(client: redis.Redis, template: str, port: int) -> str:
    """The first ``template.format(n)`` whose channel lives on the master at ``port``."""
    for n in itertools.count():
        name = template.format(n)
        if owner_port(client, name) == port:
            return name
    raise AssertionError("unreachable")


def bus_publishes(client: redis.Redis) -> int:
    info = client.execute_command("CLUSTER INFO")
    return sum(
        int(info.get(key, 0))
        for key in (
            "cluster_stats_messages_publish_sent",
            "cluster_stats_messages_publishshard_sent",
        )
    )


def subscribers_named(client: redis.Redis, name: str) -> int:
    return sum(1 for c in client.client_list() if c.get("name") == name)


async def test_one_shard_carries_the_traffic_and_holds_the_only_subscriber(
    start_node, redis_cluster_url, prefix
):
    clients = masters(redis_cluster_url)
    try:
        home = owner_port(clients[0], f"{prefix}b")  # the broadcast channel: every node holds it
        group = name_on(clients[0], prefix + "g:room{}", home).removeprefix(f"{prefix}g:")
        client = name_on(clients[0], prefix + "c:ann{}", home).removeprefix(f"{prefix}c:")
        node = start_node("--redis-url", redis_cluster_url, env={"AETHER_NODE_ID": "shardy"})
        before = [bus_publishes(c) for c in clients]
        async with await v3(node.ws, group, client) as ws:
            for n in range(50):
                await send_json(ws, {"msg_type": "msg", "target": "group", "msg": f"m{n}"})
            for n in range(50):
                assert (await recv_msg(ws))["msg"] == f"m{n}"
            subscribers = {
                int(c.connection_pool.connection_kwargs["port"]): subscribers_named(
                    c, f"{prefix}n:shardy:sub"
                )
                for c in clients
            }
            after = [bus_publishes(c) for c in clients]
        # One subscriber connection, on the one shard that owns every channel the node wants.
        assert subscribers == {port: int(port == home) for port in subscribers}
        # No message crossed the cluster bus: no node relays another shard's traffic.
        assert after == before
    finally:
        for c in clients:
            c.close()
