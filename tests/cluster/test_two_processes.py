"""Two real `aether-bridge serve` processes on one real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest
import redis.asyncio as aioredis

from ..helpers import eventually, recv_json, v3
from .routing import every_target_is_delivered_across

pytestmark = pytest.mark.cluster

TTL = 2.0


@pytest.fixture
def nodes(start_node, redis_url):
    env = {"AETHER_PRESENCE_TTL": str(TTL)}
    return start_node("--redis-url", redis_url, env=env), start_node(
        "--redis-url", redis_url, env=env
    )


@pytest.fixture
async def redis_client(redis_url):
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_every_target_is_delivered_across_nodes(redis_node_pair):
    await every_target_is_delivered_across(*redis_node_pair)


async def test_node_subscribes_only_to_channels_of_local_members(nodes, redis_client, prefix):
    a, b = nodes

    async def numsub(*channels: str) -> dict[str, int]:
        return dict(await redis_client.pubsub_numsub(*channels))

    group, client = f"{prefix}g:g1", f"{prefix}c:alice"
    other_group = f"{prefix}g:g2"
    alice = await v3(a.ws, "g1", "alice")
    assert await numsub(group, client, other_group) == {group: 1, client: 1, other_group: 0}
    bob = await v3(b.ws, "g2", "bob")
    assert (await numsub(group, other_group))[other_group] == 1
    channels = set(await redis_client.pubsub_channels(f"{prefix}*"))
    # One channel per local group and client, the broadcast channel, one probe channel per node.
    assert channels == {
        group,
        client,
        other_group,
        f"{prefix}c:bob",
        f"{prefix}b",
        *{c for c in channels if c.startswith(f"{prefix}n:")},
    }
    assert len([c for c in channels if c.startswith(f"{prefix}n:")]) == 2
    assert await redis_client.execute_command("PUBSUB", "NUMPAT") == 0

    second_tab = await v3(a.ws, "g1", "alice")
    assert (await numsub(group))[group] == 1  # still one subscription, now two local members
    await alice.close()
    assert (await numsub(group))[group] == 1
    await second_tab.close()

    async def dropped() -> bool:
        return await numsub(group, client) == {group: 0, client: 0}

    await eventually(dropped, 2.0)
    await bob.close()
    await eventually(lambda: _zero(numsub(f"{prefix}b")), 2.0)


async def _zero(coro) -> bool:
    return all(count == 0 for count in (await coro).values())


async def test_killed_node_members_expire_from_presence(nodes):
    a, b = nodes
    observer = await v3(b.ws, "g1", "obs")
    victims = [await v3(a.ws, "g1", f"victim{i}") for i in range(5)]
    async with observer, httpx.AsyncClient() as http:

        async def members() -> list[str]:
            return (await http.get(f"{b.http}/v3/groups/g1/presence")).json()["clients"]

        await eventually(lambda: _eq(members(), sorted(["obs", *(f"victim{i}" for i in range(5))])))
        os.kill(a.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        await eventually(lambda: _eq(members(), ["obs"]), TTL + 3)
        assert time.monotonic() - killed_at <= TTL + 1.0  # TTL plus one refresh/sweep period
        leaves: set[str] = set()
        while len(leaves) < 5:
            frame = await recv_json(observer, TTL + 3)
            if frame.get("payload", {}).get("event") == "leave":
                leaves.add(frame["payload"]["client_id"])
        assert leaves == {f"victim{i}" for i in range(5)}
    for ws in victims:
        await ws.close()


async def _eq(coro, expected) -> bool:
    return await coro == expected


async def test_concurrent_connects_on_both_nodes_announce_each_client_once(redis_node_pair):
    a, b = redis_node_pair
    observer = await v3(a.ws, "g9", "obs")
    async with observer:
        clients = await asyncio.gather(*(v3((a, b)[i % 2].ws, "g9", f"c{i}") for i in range(20)))
        joins: list[str] = []
        while len(joins) < 20:
            frame = await recv_json(observer)
            if (
                frame.get("payload", {}).get("event") == "join"
                and frame["payload"]["client_id"] != "obs"
            ):
                joins.append(frame["payload"]["client_id"])
        assert sorted(joins) == sorted(f"c{i}" for i in range(20))
        for ws in clients:
            await ws.close()
