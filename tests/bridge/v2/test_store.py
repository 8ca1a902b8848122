"""V2Store conformance: the same behaviour in memory and in Redis."""

from __future__ import annotations

import time

import pytest
import redis

from bridge.v2.policy import GLOBAL
from bridge.v2.store import MemoryV2Store, RedisV2Store, V2Store
from bridge.v2.usage import ClientDelta
from v3_core import BackendUnavailable

from ...helpers import free_port


@pytest.fixture
async def store(backend_url, prefix):
    made: V2Store = (
        MemoryV2Store() if backend_url is None else RedisV2Store(backend_url, prefix=prefix)
    )
    yield made
    await made.aclose()


async def test_empty_store_is_open_everywhere(store):
    policy = await store.policy()
    assert policy.as_json() == {"global": "open", "groups": {}}


async def test_set_and_clear_modes(store):
    await store.set_mode(GLOBAL, "warn")
    await store.set_mode("grp_a", "closed")
    assert (await store.policy()).as_json() == {"global": "warn", "groups": {"grp_a": "closed"}}
    await store.set_mode("grp_a", None)
    await store.set_mode(GLOBAL, None)
    assert (await store.policy()).as_json() == {"global": "open", "groups": {}}


async def test_usage_adds_up_flushes_from_several_nodes(store):
    now = time.time()
    await store.record({("grp_a", "dev_1"): ClientDelta("3", "17", 2, 1, now - 5)})
    await store.record({("grp_a", "dev_1"): ClientDelta("", "", 3, 1, now - 10)})
    await store.record({("grp_a", "dev_2"): ClientDelta("3", "", 0, 1, now)})
    [group] = await store.usage()
    assert (group.group_id, group.group_legacy) == ("grp_a", "3")
    clients = {c.client_id: c for c in group.clients}
    one = clients["dev_1"]
    assert (one.client_legacy, one.messages, one.connects) == ("17", 5, 2)
    assert one.last_seen == pytest.approx(now - 5, abs=0.01)
    assert (clients["dev_2"].messages, clients["dev_2"].connects) == (0, 1)


async def test_usage_past_the_ttl_is_forgotten(backend_url, prefix):
    store: V2Store = (
        MemoryV2Store(usage_ttl=60)
        if backend_url is None
        else RedisV2Store(backend_url, prefix=prefix, usage_ttl=60)
    )
    try:
        await store.record({("grp_old", "dev_1"): ClientDelta("", "", 1, 1, time.time() - 120)})
        await store.record({("grp_new", "dev_1"): ClientDelta("", "", 1, 1, time.time())})
        assert [g.group_id for g in await store.usage()] == ["grp_new"]
    finally:
        await store.aclose()


async def test_redis_keys_stay_under_the_prefix(redis_url, prefix):
    store = RedisV2Store(redis_url, prefix=prefix)
    try:
        await store.set_mode(GLOBAL, "warn")
        await store.record({("grp_a", "dev_1"): ClientDelta("", "", 1, 1, time.time())})
    finally:
        await store.aclose()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = sorted(client.scan_iter(f"{prefix}*"))
        assert keys == [f"{prefix}v2:{k}" for k in ("g:grp_a", "groups", "mode", "s:grp_a")]
        assert 0 < client.ttl(f"{prefix}v2:g:grp_a") <= 30 * 86400
        assert client.ttl(f"{prefix}v2:mode") == -1
    finally:
        client.close()


async def test_redis_store_down_raises_backend_unavailable(prefix):
    store = RedisV2Store(f"redis://127.0.0.1:{free_port()}", prefix=prefix, timeout=0.5)
    try:
        with pytest.raises(BackendUnavailable):
            await store.policy()
    finally:
        await store.aclose()


async def test_a_flush_costs_redis_about_one_command_per_active_client(redis_url, prefix):
    """Every open legacy connection is in every flush: per-client HSET/ZADD/EXPIREs held a
    node's event loop about 100 ms per 500 clients while the pipeline was built."""
    store = RedisV2Store(redis_url, prefix=prefix)
    client = redis.Redis.from_url(redis_url)
    now = time.time()
    delta = {
        (f"grp_{i % 4}", f"dev_{i}"): ClientDelta(str(i % 4), str(i), i % 2, 0, now)
        for i in range(400)
    }
    try:
        await store.policy()  # connected: the handshake's commands are not counted
        before = client.info("stats")["total_commands_processed"]
        await store.record(delta)
        commands = client.info("stats")["total_commands_processed"] - before - 1  # the INFO
        # 200 clients sent messages (one HINCRBY each); per group one HSET, one ZADD and two
        # EXPIREs; one ZADD and one EXPIRE for the group index
        assert commands == 200 + 4 * 4 + 2
        usage = {g.group_id: g for g in await store.usage()}
        dev_7 = next(c for c in usage["grp_3"].clients if c.client_id == "dev_7")
        assert (usage["grp_3"].group_legacy, dev_7.client_legacy, dev_7.messages) == ("3", "7", 1)
        assert sum(len(g.clients) for g in usage.values()) == 400
    finally:
        await store.aclose()
        client.close()
