"""What only the Redis store promises: how much Redis work a refresh costs."""

from __future__ import annotations

import redis.asyncio as aioredis

from v3_core.backends.redis_presence import RedisPresenceStore


async def _script_calls(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


async def test_a_refresh_runs_one_script_per_group_not_per_connection(redis_url, prefix):
    """Scripts run one at a time in Redis and every PUBLISH waits behind them."""
    store = RedisPresenceStore(redis_url, ttl=5, prefix=prefix)
    client = aioredis.Redis.from_url(redis_url)
    try:
        entries = [(f"g{i % 20}", f"c{i}", f"conn{i}") for i in range(1000)]
        await store.touch(entries[:1])  # loads the script
        before = await _script_calls(client)
        await store.touch(entries)
        assert await _script_calls(client) - before == 20
        assert len(await store.members("g3")) == 50
    finally:
        await store.aclose()
        await client.aclose()
