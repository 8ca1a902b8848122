"""What only the Redis store promises: how little Redis work a node's refresh costs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from v3_core.backends.redis_presence import RedisPresenceStore

ENTRIES = [(f"g{i % 20}", f"c{i}", f"conn{i}") for i in range(1000)]  # 20 groups of 50


@pytest.fixture
async def store(redis_url, prefix) -> AsyncIterator[RedisPresenceStore]:
    store = RedisPresenceStore(redis_url, ttl=5, prefix=prefix)
    await store.touch(ENTRIES[:1])  # loads the script
    yield store
    await store.aclose()


@pytest.fixture
async def client(redis_url) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _calls(client: aioredis.Redis, *commands: str) -> int:
    stats = await client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k.removeprefix("cmdstat_") in commands)


async def _script_calls(client: aioredis.Redis) -> int:
    return await _calls(client, "evalsha", "eval")


async def _pipelines(client: aioredis.Redis) -> int:
    """redis-py opens every pipeline that runs scripts with one SCRIPT EXISTS."""
    return await _calls(client, "script|exists")


async def test_refresh_and_sweep_run_one_script_per_group_not_per_connection(store, client):
    """Scripts run one at a time in Redis and every PUBLISH waits behind them."""
    before = await _script_calls(client)
    await store.touch(ENTRIES)
    assert await _script_calls(client) - before == 20
    assert len(await store.members("g3")) == 50
    before = await _script_calls(client)
    assert await store.sweep(f"g{i}" for i in range(20)) == []
    assert await _script_calls(client) - before == 20


async def test_a_refresh_takes_one_round_trip_per_hundred_connections(store, client):
    """Each pipeline is built with the event loop held: about a hundred entries at a time."""
    before = await _pipelines(client)
    await store.touch(ENTRIES)
    assert await _pipelines(client) - before == 10  # of two groups each


async def test_a_sweep_takes_one_round_trip_per_fifty_groups(store, client):
    groups = [f"g{i}" for i in range(120)]
    before = await _pipelines(client)
    await store.sweep(groups)
    assert await _pipelines(client) - before == 3
