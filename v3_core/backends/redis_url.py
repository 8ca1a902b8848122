"""Redis URLs: one server (``redis://``, ``rediss://``, ``unix://``) or a Redis Cluster.

A cluster is named by its seed nodes, ``redis+cluster://[[user]:password@]host:port[,host:port...]``
(contract section 1): clients discover the rest of the cluster from whichever seed answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

CLUSTER_SCHEME = "redis+cluster://"
SERVER_SCHEMES = ("redis://", "rediss://", "unix://")
REDIS_SCHEMES = (*SERVER_SCHEMES, CLUSTER_SCHEME)  # every URL a Redis backend takes


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
