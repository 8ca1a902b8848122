"""Builds an IdMapper from settings: the one place that picks the store and the upstream."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from v3_core.backends.redis_client import REDIS_SCHEMES

from .id_mapping import IdMapper
from .id_stores import IdStore, MemoryIdStore, RedisIdStore
from .upstream import UpstreamIdLookup


@contextlib.asynccontextmanager
async def open_id_mapper(
    redis_url: str | None,
    *,
    prefix: str = "aether:",
    lookup_url: str | None = None,
    lookup_timeout: float = 2.0,
    lookup_token: str | None = None,
    redis_timeout: float = 2.0,
    cache_size: int = 100_000,
    store: IdStore | None = None,
) -> AsyncIterator[IdMapper]:
    """An IdMapper over Redis (any URL open_backends takes) or in-process (None), closed on exit.

    Without Redis and without ``lookup_url`` minted IDs last only as long as the process.
    ``store`` overrides the choice (in-process test nodes sharing one MemoryIdStore).
    """
    if store is None:
        store = _store_for(redis_url, prefix=prefix, timeout=redis_timeout)
    upstream = None
    if lookup_url:
        upstream = UpstreamIdLookup(lookup_url, timeout=lookup_timeout, token=lookup_token)
    mapper = IdMapper(store, upstream=upstream, cache_size=cache_size)
    try:
        yield mapper
    finally:
        await mapper.aclose()


def _store_for(redis_url: str | None, *, prefix: str, timeout: float) -> IdStore:
    if redis_url is None:
        return MemoryIdStore()
    if redis_url.startswith(REDIS_SCHEMES):
        return RedisIdStore(redis_url, prefix=prefix, timeout=timeout)
    raise ValueError("the ID store supports redis://, rediss://, unix:// and redis+cluster:// URLs")
