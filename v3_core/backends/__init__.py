"""Backends for the broker and presence roles; `open_backends` picks them from a URL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from v3_core.streams import HistoryPolicy

from .base import (
    Backends,
    Broker,
    BrokerEvent,
    BrokerMessage,
    CursorStore,
    Discontinuity,
    PresenceStore,
)
from .memory import MemoryBroker, MemoryCursorStore, MemoryHub, MemoryPresenceStore
from .redis_broker import RedisBroker
from .redis_cluster_broker import ClusterBroker
from .redis_cursors import RedisCursorStore
from .redis_presence import RedisPresenceStore
from .redis_url import REDIS_SCHEMES, is_cluster

__all__ = [
    "Backends",
    "Broker",
    "BrokerEvent",
    "BrokerMessage",
    "ClusterBroker",
    "CursorStore",
    "Discontinuity",
    "MemoryBroker",
    "MemoryCursorStore",
    "MemoryHub",
    "MemoryPresenceStore",
    "PresenceStore",
    "RedisBroker",
    "RedisCursorStore",
    "RedisPresenceStore",
    "open_backends",
]


@contextlib.asynccontextmanager
async def open_backends(
    redis_url: str | None,
    *,
    prefix: str,
    node_channel: str,
    presence_ttl: float,
    timeout: float = 2.0,
    probe_interval: float = 5.0,
    history: HistoryPolicy | None = None,
    cluster_pubsub: str = "sharded",
    hub: MemoryHub | None = None,
) -> AsyncIterator[Backends]:
    """Redis backends for a ``redis://``/``rediss://``/``unix://`` URL or a Redis Cluster's
    ``redis+cluster://host:port,...``; in-process ones for None."""
    broker: Broker
    presence: PresenceStore
    cursors: CursorStore
    history = history or HistoryPolicy()
    if redis_url is None:
        hub = hub or MemoryHub()
        broker = MemoryBroker(hub, history)
        presence = MemoryPresenceStore(ttl=presence_ttl, hub=hub)
        cursors = MemoryCursorStore(ttl=history.ttl, hub=hub)
        description = "embedded in-process broker and presence (single process)"
    elif redis_url.startswith(REDIS_SCHEMES):
        # A malformed cluster URL raises ValueError here, in RedisBroker, before any connect.
        sharded = is_cluster(redis_url) and cluster_pubsub == "sharded"
        broker = (ClusterBroker if sharded else RedisBroker)(
            redis_url,
            node_channel=node_channel,
            timeout=timeout,
            probe_interval=probe_interval,
            history=history,
        )
        presence = RedisPresenceStore(redis_url, ttl=presence_ttl, prefix=prefix, timeout=timeout)
        cursors = RedisCursorStore(redis_url, ttl=history.ttl, prefix=prefix, timeout=timeout)
        kind = "Redis Cluster with seeds" if is_cluster(redis_url) else "Redis at"
        if is_cluster(redis_url):
            kind = f"Redis Cluster ({cluster_pubsub} pub/sub) with seeds"
        description = f"{kind} {_redact(redis_url)}"
    else:
        raise ValueError(f"unsupported Redis URL scheme in {_redact(redis_url)!r}")
    try:
        yield Backends(broker=broker, presence=presence, cursors=cursors, description=description)
    finally:
        await broker.aclose()
        await presence.aclose()
        await cursors.aclose()


def _redact(url: str) -> str:
    """The URL without its password, fit for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if user else f"{scheme}{sep}***@{host}"
