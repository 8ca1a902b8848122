"""ClusterBroker: a subscribe that gave up does not leave its channel subscribed for nobody."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from v3_core.backends import ClusterBroker
from v3_core.backends.redis_client import parse_cluster_url
from v3_core.backends.redis_wire import RedisWire
from v3_core.errors import BackendUnavailable


async def shard_subscribers(cluster_url: str, channel: str) -> int:
    """Subscribers of the shard channel, summed over the masters (its owner alone has any)."""
    total = 0
    for url in parse_cluster_url(cluster_url).seed_urls:
        async with aioredis.Redis.from_url(url) as client:
            total += dict(await client.pubsub_shardnumsub(channel)).get(channel.encode(), 0)
    return total


async def test_a_late_confirmation_after_the_caller_left_is_unsubscribed(
    redis_cluster_url, prefix, monkeypatch: pytest.MonkeyPatch
):
    """SSUBSCRIBE confirmed after the caller gave up (2× the timeout) and its client left:
    the confirmation used to find no one to record the channel, so it stayed subscribed on
    the shard, its traffic read for nobody, and no unsubscribe could find it."""
    channel = f"{prefix}g:late"
    send = RedisWire.send

    def delay_subscribe(self: RedisWire, *commands: tuple[str | bytes, ...]) -> None:
        if commands == (("SSUBSCRIBE", channel),):
            asyncio.get_running_loop().call_later(0.9, send, self, *commands)
            return
        send(self, *commands)

    broker = ClusterBroker(redis_cluster_url, node_channel=f"{prefix}n:a", timeout=0.3)
    try:
        await broker.subscribe(f"{prefix}g:warm")  # the slot map is read, a shard wire open
        monkeypatch.setattr(RedisWire, "send", delay_subscribe)
        with pytest.raises(BackendUnavailable):
            await broker.subscribe(channel)
        await broker.unsubscribe(channel)  # what a refused client's leave does
        await asyncio.sleep(0.6)  # the SSUBSCRIBE reaches Redis, and is confirmed
        for _ in range(50):
            if await shard_subscribers(redis_cluster_url, channel) == 0:
                break
            await asyncio.sleep(0.05)  # the SUNSUBSCRIBE that follows the confirmation
        assert await shard_subscribers(redis_cluster_url, channel) == 0
    finally:
        await broker.aclose()
