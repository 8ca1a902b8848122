"""IdStore conformance: every test runs on MemoryIdStore and on RedisIdStore."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from tests.helpers import free_port
from translators import IdStore, RedisIdStore
from v3_core.errors import BackendUnavailable
from v3_core.ids import new_vision_id


async def test_id_store_get_unknown_is_none(id_store: IdStore) -> None:
    assert await id_store.get("client", "42") is None


async def test_id_store_get_legacy_unknown_is_none(id_store: IdStore) -> None:
    assert await id_store.get_legacy("client", "visUnknown") is None


async def test_id_store_put_if_absent_returns_the_new_id(id_store: IdStore) -> None:
    assert await id_store.put_if_absent("client", "42", "visA") == "visA"


async def test_id_store_maps_both_ways(id_store: IdStore) -> None:
    await id_store.put_if_absent("client", "42", "visA")
    assert (await id_store.get("client", "42"), await id_store.get_legacy("client", "visA")) == (
        "visA",
        "42",
    )


async def test_id_store_first_mapping_wins(id_store: IdStore) -> None:
    await id_store.put_if_absent("client", "42", "visA")
    assert await id_store.put_if_absent("client", "42", "visB") == "visA"


async def test_id_store_loser_gets_no_reverse_mapping(id_store: IdStore) -> None:
    await id_store.put_if_absent("client", "42", "visA")
    await id_store.put_if_absent("client", "42", "visB")
    assert await id_store.get_legacy("client", "visB") is None


async def test_id_store_namespaces_are_separate(id_store: IdStore) -> None:
    await id_store.put_if_absent("client", "42", "visClient")
    await id_store.put_if_absent("group", "42", "visGroup")
    assert (await id_store.get("client", "42"), await id_store.get("group", "42")) == (
        "visClient",
        "visGroup",
    )


async def test_id_store_concurrent_puts_agree_on_one_winner(id_store: IdStore) -> None:
    candidates = [new_vision_id() for _ in range(20)]
    winners = await asyncio.gather(*(id_store.put_if_absent("group", "9", c) for c in candidates))
    assert len(set(winners)) == 1
    assert winners[0] in candidates


async def test_id_store_answers_a_burst_larger_than_a_default_pool(id_store: IdStore) -> None:
    """A reconnect storm reads the store for every legacy connect at once (scenario B4)."""
    await id_store.put_if_absent("client", "42", "visA")
    answers = await asyncio.gather(*(id_store.get("client", "42") for _ in range(250)))
    assert answers == ["visA"] * 250  # redis-py's default pool raised at the 101st


async def test_redis_id_store_survives_a_new_client(redis_url: str, prefix: str) -> None:
    """The mapping lives in Redis: another node (or a restart) sees it."""
    first = RedisIdStore(redis_url, prefix=prefix)
    second = RedisIdStore(redis_url, prefix=prefix)
    try:
        await first.put_if_absent("client", "42", "visA")
        assert await second.get("client", "42") == "visA"
    finally:
        await first.aclose()
        await second.aclose()
        await _delete_prefix(redis_url, prefix)


@pytest.mark.parametrize("call", ["get", "get_legacy", "put_if_absent"])
async def test_redis_id_store_down_raises_backend_unavailable(call: str) -> None:
    store = RedisIdStore(f"redis://127.0.0.1:{free_port()}", prefix="x:", timeout=0.5)
    args = ("client", "42", "visA") if call == "put_if_absent" else ("client", "42")
    try:
        with pytest.raises(BackendUnavailable):
            await getattr(store, call)(*args)
    finally:
        await store.aclose()


async def _delete_prefix(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
