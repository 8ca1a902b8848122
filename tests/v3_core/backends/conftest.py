"""Fixtures that build each backend, so one conformance suite runs on memory and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from v3_core.backends import (
    Broker,
    ClusterBroker,
    MemoryBroker,
    MemoryHub,
    MemoryPresenceStore,
    PresenceStore,
)
from v3_core.backends.redis_broker import RedisBroker
from v3_core.backends.redis_client import is_cluster, parse_cluster_url
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
def cut_subscriber(backend_url, prefix) -> Callable[[str], Awaitable[int]]:
    """Kill a node's subscriber connections server-side (CLIENT KILL), as a network fault
    does; returns how many were killed. Brokers name them ``<node channel>:sub``."""
    if backend_url is None:
        pytest.skip(
            "a MemoryBroker has no connection to lose: a publish puts the message straight on "
            "each subscriber's queue, so it can miss nothing and never owes a Discontinuity"
        )
    urls = parse_cluster_url(backend_url).seed_urls if is_cluster(backend_url) else [backend_url]

    async def cut(node: str) -> int:
        name, killed = f"{prefix}n:{node}:sub", 0
        for url in urls:
            async with aioredis.Redis.from_url(url, decode_responses=True) as client:
                for entry in await client.client_list():
                    if entry["name"] == name:
                        killed += await client.client_kill_filter(_id=entry["id"])
        return killed

    return cut


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
