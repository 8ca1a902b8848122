"""A Redis Cluster a test may break: three masters, each with a replica, fast failover."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from ..support.redis_cluster import SLOTS
from ..support.redis_server import RedisServer

NODE_TIMEOUT_MS = 1000  # a replica takes over about two timeouts after its master dies


@dataclass
class ClusterNode:
    url: str
    port: int
    node_id: str
    pid: int
    _client: redis.Redis | None = None

    def client(self) -> redis.Redis:
        """One client per node, closed with the cluster."""
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_timeout=2)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


@dataclass
class BreakableCluster:
    url: str  # redis+cluster://seeds
    masters: list[ClusterNode]
    replicas: list[ClusterNode]

    def owner(self, slot: int) -> ClusterNode:
        """The node serving ``slot`` now (asked of any live node)."""
        for node in self.masters + self.replicas:
            with contextlib.suppress(redis.exceptions.ConnectionError):
                for first, last, primary, *_ in node.client().execute_command("CLUSTER SLOTS"):
                    if first <= slot <= last:
                        port = int(primary[1])
                        return next(n for n in self.masters + self.replicas if n.port == port)
        raise AssertionError(f"no live node serves slot {slot}")

    def kill(self, node: ClusterNode) -> None:
        os.kill(node.pid, signal.SIGKILL)


@contextlib.contextmanager
def cluster_with_replicas(
    binary: str = "redis-server", masters: int = 3
) -> Iterator[BreakableCluster]:
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aether-ha-")))
        nodes: list[ClusterNode] = []
        for n in range(masters * 2):
            server = stack.enter_context(
                RedisServer(
                    extra=("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
                    cwd=workdir / str(n),
                    binary=binary,
                    cluster_bus=True,
                )
            )
            url, bus = server.url, server.bus_port
            with redis.Redis.from_url(url) as client:
                info = client.info("server")
                node_id = client.execute_command("CLUSTER MYID").decode()
            port = int(url.rsplit(":", 1)[1])
            nodes.append(ClusterNode(url, port, node_id, int(info["process_id"])))
            stack.callback(nodes[-1].close)
            if n:
                nodes[0].client().execute_command("CLUSTER MEET", "127.0.0.1", port, bus)
        primaries, secondaries = nodes[:masters], nodes[masters:]
        for n, node in enumerate(primaries):
            first, last = n * SLOTS // masters, (n + 1) * SLOTS // masters
            node.client().execute_command("CLUSTER ADDSLOTS", *range(first, last))
        _wait(lambda: all(_knows(node, nodes) for node in nodes), "nodes to meet")
        for primary, replica in zip(primaries, secondaries, strict=True):
            replica.client().execute_command("CLUSTER REPLICATE", primary.node_id)
        _wait(lambda: all(_ok(node) for node in nodes), "cluster_state:ok")
        _wait(lambda: all(_synced(node) for node in secondaries), "replicas to sync")
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in primaries)
        yield BreakableCluster(f"redis+cluster://{seeds}", primaries, secondaries)


def _wait(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"test cluster: waited too long for {what}")
        time.sleep(0.05)


def _knows(node: ClusterNode, nodes: list[ClusterNode]) -> bool:
    listing = node.client().execute_command("CLUSTER NODES")
    text = listing.decode() if isinstance(listing, bytes) else str(listing)
    return all(other.node_id in text for other in nodes)


def _ok(node: ClusterNode) -> bool:
    info = node.client().execute_command("CLUSTER INFO")
    state = info.get("cluster_state") if isinstance(info, dict) else None
    return state in ("ok", b"ok")


def _synced(node: ClusterNode) -> bool:
    info = node.client().info("replication")
    return info.get("role") == "slave" and info.get("master_link_status") == "up"
