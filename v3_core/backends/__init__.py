"""Backends for the broker and presence roles; `open_backends` picks them from a URL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from .base import Backends, Broker, BrokerEvent, BrokerMessage, Discontinuity, PresenceStore
from .memory import MemoryBroker, MemoryHub, MemoryPresenceStore
from .redis_broker import RedisBroker
from .redis_presence import RedisPresenceStore
from .redis_url import REDIS_SCHEMES, is_cluster

__all__ = [
    "Backends",
    "Broker",
    "BrokerEvent",
    "BrokerMessage",
    "Discontinuity",
    "MemoryBroker",
    "MemoryHub",
    "MemoryPresenceStore",
    "PresenceStore",
    "RedisBroker",
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
    hub: MemoryHub | None = None,
) -> AsyncIterator[Backends]:
    """Redis backends for a ``redis://``/``rediss://``/``unix://`` URL or a Redis Cluster's
    ``redis+cluster://host:port,...``; in-process ones for None."""
    broker: Broker
    presence: PresenceStore
    if redis_url is None:
        hub = hub or MemoryHub()
        broker = MemoryBroker(hub)
        presence = MemoryPresenceStore(ttl=presence_ttl, hub=hub)
        description = "embedded in-process broker and presence (single process)"
    elif redis_url.startswith(REDIS_SCHEMES):
        # A malformed cluster URL raises ValueError here, in RedisBroker, before any connect.
        broker = RedisBroker(
            redis_url, node_channel=node_channel, timeout=timeout, probe_interval=probe_interval
        )
        presence = RedisPresenceStore(redis_url, ttl=presence_ttl, prefix=prefix, timeout=timeout)
        kind = "Redis Cluster with seeds" if is_cluster(redis_url) else "Redis at"
        description = f"{kind} {_redact(redis_url)}"
    else:
        raise ValueError(f"unsupported Redis URL scheme in {_redact(redis_url)!r}")
    try:
        yield Backends(broker=broker, presence=presence, description=description)
    finally:
        await broker.aclose()
        await presence.aclose()


def _redact(url: str) -> str:
    """The URL without its password, fit for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if user else f"{scheme}{sep}***@{host}"
