"""Backends for the broker and presence roles; `open_backends` picks them from a URL.

The Redis backends are imported on first use, so a node without Redis never loads redis-py.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from .redis_broker import RedisBroker
    from .redis_cluster_broker import ClusterBroker
    from .redis_cursors import RedisCursorStore
    from .redis_presence import RedisPresenceStore

_REDIS_BACKENDS = {
    "ClusterBroker": ".redis_cluster_broker",
    "RedisBroker": ".redis_broker",
    "RedisCursorStore": ".redis_cursors",
    "RedisPresenceStore": ".redis_presence",
}

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


def __getattr__(name: str) -> Any:
    """The Redis backends, imported when first named."""
    module = _REDIS_BACKENDS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
    else:
        # Imported here, so that a node without Redis never loads redis-py.
        from .redis_broker import RedisBroker
        from .redis_client import REDIS_SCHEMES, is_cluster
        from .redis_cluster_broker import ClusterBroker
        from .redis_cursors import RedisCursorStore
        from .redis_presence import RedisPresenceStore

        if not redis_url.startswith(REDIS_SCHEMES):
            raise ValueError(f"unsupported Redis URL scheme in {_redact(redis_url)!r}")
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
