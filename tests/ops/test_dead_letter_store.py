"""DeadLetterStore conformance (memory and Redis), and how samples are cut and redacted."""

from __future__ import annotations

import time

import pytest

from bridge.dead_letter_store import (
    DeadLetter,
    DeadLetterStore,
    MemoryDeadLetterStore,
    RedisDeadLetterStore,
)
from bridge.dead_letters import cut, redact
from v3_core import BackendUnavailable

from ..helpers import free_port


def make_store(backend_url: str | None, prefix: str, **options: float) -> DeadLetterStore:
    if backend_url is None:
        return MemoryDeadLetterStore(**options)  # type: ignore[arg-type]
    return RedisDeadLetterStore(backend_url, prefix=prefix, **options)  # type: ignore[arg-type]


def letter(code: str, group: str, at: float, sample: str = "x") -> DeadLetter:
    return DeadLetter(at, "nodeA", "legacy-frame", code, group, "why", sample, len(sample))


@pytest.fixture
async def store(backend_url, prefix):
    made = make_store(backend_url, prefix, keep=3)
    yield made
    await made.aclose()


async def test_keeps_the_newest_per_group_and_code_newest_first(store):
    now = time.time()
    await store.record([letter("untranslatable", "grp_a", now - 10 + i) for i in range(5)], {})
    await store.record([letter("invalid-id", "grp_a", now - 20)], {})
    await store.record([letter("untranslatable", "grp_b", now - 1)], {})
    found = await store.recent(100)
    assert [(d.code, d.group_id, round(now - d.at)) for d in found] == [
        ("untranslatable", "grp_b", 1),
        ("untranslatable", "grp_a", 6),
        ("untranslatable", "grp_a", 7),
        ("untranslatable", "grp_a", 8),  # keep=3: the two oldest of grp_a are gone
        ("invalid-id", "grp_a", 20),
    ]
    assert [d.code for d in await store.recent(2)] == ["untranslatable"] * 2
    assert found[0] == letter("untranslatable", "grp_b", found[0].at)  # round trip intact


async def test_counts_add_up_across_nodes(store):
    await store.record([], {"untranslatable": 3, "too-big": 1})
    await store.record([], {"untranslatable": 2})
    assert await store.counts() == {"untranslatable": 5, "too-big": 1}


async def test_samples_past_the_ttl_are_gone(backend_url, prefix):
    store = make_store(backend_url, prefix, ttl=60)
    try:
        now = time.time()
        await store.record([letter("untranslatable", "g1", now - 120)], {})
        await store.record([letter("untranslatable", "g2", now - 5)], {})
        assert [d.group_id for d in await store.recent(10)] == ["g2"]
    finally:
        await store.aclose()


async def test_redis_keys_expire(redis_url, prefix):
    import redis.asyncio as aioredis

    store = RedisDeadLetterStore(redis_url, prefix=prefix, ttl=60)
    await store.record([letter("untranslatable", "g1", time.time())], {"untranslatable": 1})
    await store.aclose()
    client = aioredis.from_url(redis_url)
    try:
        keys = await client.keys(f"{prefix}dl:*")
        assert len(keys) == 3, keys
        for key in keys:
            assert 0 < await client.ttl(key) <= 60, key
    finally:
        await client.aclose()


async def test_least_recent_keys_go_beyond_max_keys(backend_url, prefix):
    store = make_store(backend_url, prefix, max_keys=2)
    try:
        now = time.time()
        for i, group in enumerate(("g1", "g2", "g3")):
            await store.record([letter("untranslatable", group, now - 10 + i)], {})
        assert {d.group_id for d in await store.recent(10)} == {"g2", "g3"}
    finally:
        await store.aclose()


async def test_unreachable_redis_raises_backend_unavailable(prefix):
    store = RedisDeadLetterStore(f"redis://127.0.0.1:{free_port()}", prefix=prefix, timeout=0.5)
    try:
        with pytest.raises(BackendUnavailable):
            await store.record([letter("untranslatable", "g", time.time())], {})
        with pytest.raises(BackendUnavailable):
            await store.recent(10)
    finally:
        await store.aclose()


# -- cutting and redacting -------------------------------------------------------------------

SECRET = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkZXYifQ.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "text",
    [
        f'{{"token": "{SECRET}", "msg": "hi"}}',
        '{"access_token":"s3cr3t-value","msg":"hi"}',
        '{"Authorization": "Bearer s3cr3t-value"}',
        "connect?token=s3cr3t-value&x=1",
        f"plain text with a jwt {SECRET} inside",
        '{"api_key": "s3cr3t-value"}',
        '{"password": "s3cr3t-value',  # cut mid-value
    ],
)
def test_credentials_are_redacted(text):
    cleaned = redact(text)
    assert "s3cr3t" not in cleaned and SECRET not in cleaned, cleaned
    assert "[redacted]" in cleaned


def test_long_payloads_are_cut_to_the_limit_in_bytes():
    text = '{"msg": "' + "é" * 5000 + '"}'
    kept = cut(text, 100)
    head, _, tail = kept.partition("…")
    assert len(head.encode()) <= 100
    assert tail == f"[{len(text.encode()) - len(head.encode())} more bytes]"
    assert cut("short", 100) == "short"


def test_a_token_past_the_cut_is_not_kept_in_part():
    text = '{"msg": "' + "a" * 90 + f'", "token": "{SECRET}"}}'
    assert "eyJ" not in cut(text, 120)
