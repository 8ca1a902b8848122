"""What only the Redis store promises: how little Redis work a node's refresh costs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from v3_core.backends.redis_presence import RedisPresenceStore

ENTRIES = [(f"g{i % 20}", f"c{i}", f"conn{i}") for i in range(1000)]  # 20 groups of 50


@pytest.fixture
async def store(redis_url, prefix) -> AsyncIterator[RedisPresenceStore]:
    store = RedisPresenceStore(redis_url, ttl=5, prefix=prefix)
    await store.touch(ENTRIES[:1])  # loads the scripts
    await store.sweep(["g0"])
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


def _count_pipelines(store: RedisPresenceStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many batches the store sends over its pipe (each one round trip)."""
    assert store._pipe is not None  # one Redis: batches skip redis-py
    sent = [0]
    send = store._pipe.run_many

    async def counted(*args: Any) -> Any:
        sent[0] += 1
        return await send(*args)

    monkeypatch.setattr(store._pipe, "run_many", counted)
    return sent


async def test_refresh_and_sweep_run_one_script_per_group_not_per_connection(store, client):
    """Scripts run one at a time in Redis and every PUBLISH waits behind them."""
    before = await _script_calls(client)
    await store.touch(ENTRIES)
    assert await _script_calls(client) - before == 20
    assert len(await store.members("g3")) == 50
    before = await _script_calls(client)
    assert await store.sweep(f"g{i}" for i in range(20)) == []
    assert await _script_calls(client) - before == 20


async def test_a_refresh_takes_one_round_trip_per_hundred_connections(store, client, monkeypatch):
    """Each pipeline is built with the event loop held: about a hundred entries at a time."""
    pipelines = _count_pipelines(store, monkeypatch)
    await store.touch(ENTRIES)
    assert pipelines[0] == 10  # of two groups each


async def test_a_pipeline_costs_no_script_exists_round_trip(store, client):
    """redis-py would open every pipeline of scripts with a SCRIPT EXISTS: a round trip more."""
    before = await _calls(client, "script|exists")
    await store.touch(ENTRIES)
    await store.sweep(f"g{i}" for i in range(20))
    assert await _calls(client, "script|exists") - before == 0


async def test_a_lone_touch_is_one_script_call_not_a_pipeline(store, client, monkeypatch):
    """A heartbeat touches one connection: one EVALSHA."""
    pipelines = _count_pipelines(store, monkeypatch)
    before = await _script_calls(client)
    await store.touch(ENTRIES[:1])
    assert (pipelines[0], await _script_calls(client) - before) == (0, 1)


async def test_a_batch_reloads_the_script_a_restarted_redis_forgot(store, client):
    await client.script_flush()
    await store.touch(ENTRIES)
    assert len(await store.members("g3")) == 50


async def test_a_sweep_takes_one_round_trip_per_fifty_groups(store, client, monkeypatch):
    groups = [f"g{i}" for i in range(120)]
    pipelines = _count_pipelines(store, monkeypatch)
    await store.sweep(groups)
    assert pipelines[0] == 3


async def test_concurrent_lone_touches_share_the_pipe_and_survive_a_script_flush(store, client):
    """Heartbeats' touches go through one hiredis wire; a Redis that forgot the scripts (as
    after SCRIPT FLUSH) gets them loaded again and the calls it refused sent once more."""
    await asyncio.gather(*(store.touch([entry]) for entry in ENTRIES[:50]))
    assert len(await store.members("g3")) == 3  # c3, c23, c43
    await client.script_flush()
    await store.touch(ENTRIES[:1])
    assert "c0" in await store.members("g0")


async def test_connects_and_closes_share_the_pipe_and_survive_a_script_flush(store, client):
    """A storm of connects' adds and closes' removes, through the same wire as the touches:
    after SCRIPT FLUSH none of them fails, and each tells who came online or went offline."""
    await client.script_flush()
    came_online = await asyncio.gather(
        *(store.add("gx", f"c{i % 10}", f"conn{i}") for i in range(40))
    )
    assert sum(came_online) == 10  # each client's first connection
    assert len(await store.members("gx")) == 10
    await client.script_flush()
    went_offline = await asyncio.gather(
        *(store.remove("gx", f"c{i % 10}", f"conn{i}") for i in range(40))
    )
    assert sum(went_offline) == 10  # each client's last connection
    assert await store.members("gx") == []


async def test_a_nodes_first_connect_loads_every_presence_script(store, client):
    """The sweep's and the members' scripts go through redis-py, whose first EVALSHA on a
    Redis that never saw them is answered NOSCRIPT (an error in Redis' stats, which the B4
    storm test saw when a node's first sweep fell inside its window). The pipe loads them all
    when it opens, at the node's first connect."""
    await client.script_flush()
    await store.add("g1", "c1", "conn1")
    shas = list(store._sha.values())
    assert len(shas) == 5
    assert await client.script_exists(*shas) == [True] * 5
