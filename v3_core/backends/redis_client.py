"""Everything that talks to Redis starts here: its URLs, its clients and its errors.

One server is ``redis://``, ``rediss://`` or ``unix://``; a Redis Cluster is named by its seed
nodes, ``redis+cluster://[[user]:password@]host:port[,host:port...]``, and clients discover the
rest of the cluster from whichever seed answers (docs/design.md, "On a Redis Cluster").
Whatever a Redis call raises when Redis is unreachable, failing or moving is REDIS_ERRORS, and
``backend_errors`` turns it into the BackendUnavailable callers handle, the way httpx maps
transport errors once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast
from urllib.parse import quote, unquote

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

from v3_core.errors import BackendUnavailable

CLUSTER_SCHEME = "redis+cluster://"
SERVER_SCHEMES = ("redis://", "rediss://", "unix://")
REDIS_SCHEMES = (*SERVER_SCHEMES, CLUSTER_SCHEME)  # every URL a Redis backend takes

# What a Redis call can raise when Redis is unreachable, failing or moving (a cluster's own
# errors, such as no reachable seed or an uncovered slot, do not derive from RedisError).
REDIS_ERRORS = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
    OSError,
    asyncio.TimeoutError,
)


class backend_errors:  # a context manager, named like contextlib.suppress
    """``with backend_errors("presence add failed"):`` raises any of REDIS_ERRORS as
    BackendUnavailable("presence add failed: ConnectionError: Error 111 connecting to ...");
    other exceptions pass.

    The error's class and text both: redis-py's repr drops the text, and a TimeoutError has
    none.
    """

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(error, REDIS_ERRORS):
            text = str(error)
            kind_name = type(error).__name__
            detail = f"{kind_name}: {text}" if text else kind_name
            raise BackendUnavailable(f"{self._what}: {detail}") from error


# -- URLs ----------------------------------------------------------------------------------


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


@dataclass(frozen=True, slots=True)
class ClusterUrl:
    seeds: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None

    def node_url(self, host: str, port: int) -> str:
        """A ``redis://`` URL for one node of the cluster, with the cluster's credentials."""
        credentials = ""
        if self.username or self.password:
            user = quote(self.username or "", safe="")
            secret = quote(self.password or "", safe="")
            credentials = f"{user}:{secret}@" if self.password else f"{user}@"
        return f"redis://{credentials}{host}:{port}/0"

    @property
    def seed_urls(self) -> list[str]:
        return [self.node_url(host, port) for host, port in self.seeds]


def parse_cluster_url(url: str) -> ClusterUrl:
    """Raises ValueError for a URL that names no seed, or a database other than 0."""
    if not is_cluster(url):
        raise ValueError(f"not a {CLUSTER_SCHEME} URL")
    rest = url.removeprefix(CLUSTER_SCHEME)
    rest, _, query = rest.partition("?")
    location, _, path = rest.partition("/")
    if path.strip("/") not in ("", "0") or query:
        raise ValueError("a Redis Cluster URL takes no database and no options (database 0 only)")
    credentials, at, hosts = location.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    seeds = tuple(_host_port(item) for item in hosts.split(",") if item)
    if not seeds:
        raise ValueError("a Redis Cluster URL needs at least one seed node, host:port")
    return ClusterUrl(seeds, username, password)


def _host_port(item: str) -> tuple[str, int]:
    host, colon, port = item.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ValueError(f"seed node {item!r} is not host:port")
    return host.strip("[]"), int(port)


# -- clients -------------------------------------------------------------------------------

# Connections per cluster node. redis-py's cluster pool has no blocking variant: past this a
# call fails (BackendUnavailable, so 1013 for a connect) instead of waiting. A reconnect storm
# of 200 clients on one node (tests/chaos/test_b4_reconnect_storm.py) stays well under it.
CLUSTER_POOL = 256


def redis_client(
    url: str, *, timeout: float, pool_size: int | None = None, name: str | None = None
) -> aioredis.Redis:
    """A client that fails fast instead of retrying silently: faults are ours to handle.

    With ``pool_size`` the pool blocks up to ``timeout`` for a free connection, where
    redis-py's default pool raises at its 100th concurrent call (a burst of connects).
    A ``redis+cluster://`` URL gives a RedisCluster, typed as Redis: it has the same
    commands, and callers use only those (pipelines of scripts excepted: see presence).
    """
    if is_cluster(url):
        return cast(aioredis.Redis, cluster_client(url, timeout=timeout))
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # Zero retries, but the failure hook still disconnects a connection that failed.
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
        "client_name": name,
        # Left on ("auto"), the pool skips its check for connections the server closed, so
        # after a Redis restart the first command on every pooled connection fails once.
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }
    if pool_size is None:
        return aioredis.Redis.from_url(url, **options)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=timeout, **options
    )
    return aioredis.Redis.from_pool(pool)  # the client owns (and closes) its pool


def cluster_client(url: str, *, timeout: float) -> RedisCluster:
    """redis-py's cluster client, with its own retries: a failover needs the slot map
    refreshed and the command sent again, which only the cluster client knows how to do."""
    cluster = parse_cluster_url(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster.seeds],
        username=cluster.username,
        password=cluster.password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        max_connections=CLUSTER_POOL,  # above any pool_size asked: it cannot block
        health_check_interval=0,
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )
