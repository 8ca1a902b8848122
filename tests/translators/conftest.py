"""Fixtures for the translators: an IdStore on each backend, with a prefix per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from translators import IdStore, MemoryIdStore, RedisIdStore


@pytest.fixture
def store_url(backend_url: str | None, prefix: str) -> Iterator[str | None]:
    """The parametrized backend's URL; this test's Redis keys are deleted afterwards."""
    yield backend_url
    if backend_url is not None:
        client = redis.Redis.from_url(backend_url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.fixture
async def id_store(store_url: str | None, prefix: str) -> AsyncIterator[IdStore]:
    """An IdStore on each backend (memory, then Redis under this test's prefix)."""
    store: IdStore
    store = MemoryIdStore() if store_url is None else RedisIdStore(store_url, prefix=prefix)
    yield store
    await store.aclose()
