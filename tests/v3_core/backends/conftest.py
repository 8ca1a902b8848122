"""Fixtures that build each backend, so one conformance suite runs on memory and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from v3_core.backends import (
    Broker,
    ClusterBroker,
    MemoryBroker,
    MemoryHub,
    MemoryPresenceStore,
    PresenceStore,
)
from v3_core.backends.redis_broker import RedisBroker
from v3_core.backends.redis_presence import RedisPresenceStore
from v3_core.streams import HistoryPolicy

TTL = 0.5


@pytest.fixture(params=["memory", "redis", "cluster"])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """The conformance suites also run on a Redis Cluster (``redis+cluster://``)."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue(
        "redis_url" if request.param == "redis" else "redis_cluster_url"
    )
    return url


@pytest.fixture
async def make_broker(backend_url, prefix) -> AsyncIterator[Callable[..., Awaitable[Broker]]]:
    """Build brokers that share one medium (a memory hub or the test Redis), as nodes do."""
    hub = MemoryHub()
    brokers: list[Broker] = []

    async def make(node: str, history: HistoryPolicy | None = None) -> Broker:
        broker: Broker
        if backend_url is None:
            broker = MemoryBroker(hub, history)
        else:
            kind = ClusterBroker if backend_url.startswith("redis+cluster://") else RedisBroker
            broker = kind(
                backend_url, node_channel=f"{prefix}n:{node}", timeout=1.0, history=history
            )
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        await broker.aclose()


@pytest.fixture
async def make_presence(backend_url, prefix) -> AsyncIterator[Callable[[], PresenceStore]]:
    hub = MemoryHub()
    stores: list[PresenceStore] = []

    def make() -> PresenceStore:
        store: PresenceStore
        if backend_url is None:
            store = MemoryPresenceStore(ttl=TTL, hub=hub)
        else:
            store = RedisPresenceStore(backend_url, ttl=TTL, prefix=prefix)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.aclose()
