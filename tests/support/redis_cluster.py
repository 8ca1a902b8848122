"""A throwaway Redis Cluster of masters on free loopback ports, for the tests and the bench.

The slots are split evenly and the masters met with CLUSTER MEET, so no redis-cli is needed.
Each bus port is chosen too: the default (port + 10000) may pass 65535 for a high free port.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from .redis_server import RedisServer

SLOTS = 16384


def slot_ranges(masters: int) -> list[range]:
    """The slots each master serves, split evenly in order."""
    return [range(n * SLOTS // masters, (n + 1) * SLOTS // masters) for n in range(masters)]


@dataclass
class RedisCluster:
    nodes: list[RedisServer]
    buses: list[int]
    ranges: list[range]

    @property
    def url(self) -> str:
        """The seeds, as ``AETHER_REDIS_URL`` takes them."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)


@contextlib.contextmanager
def redis_cluster(
    workdir: Path, masters: int = 3, *, extra: Sequence[str] = (), binary: str = "redis-server"
) -> Iterator[RedisCluster]:
    """Masters with the slots split between them, once every node sees cluster_state:ok."""
    with contextlib.ExitStack() as stack:
        nodes = [
            stack.enter_context(
                RedisServer(
                    workdir / f"redis-{n}.log",
                    extra=extra,
                    cwd=workdir / str(n),  # where the node keeps its nodes.conf
                    binary=binary,
                    cluster_bus=True,
                )
            )
            for n in range(masters)
        ]
        buses = [node.bus_port for node in nodes]
        ranges = slot_ranges(masters)
        for node, slots in zip(nodes, ranges, strict=True):
            cluster_command(node.port, "ADDSLOTS", *slots)
        for node, bus in zip(nodes[1:], buses[1:], strict=True):
            cluster_command(nodes[0].port, "MEET", "127.0.0.1", node.port, bus)
        deadline = time.monotonic() + 30
        while not all(_converged(node.port, masters) for node in nodes):
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        yield RedisCluster(nodes, buses, ranges)


def cluster_command(port: int, subcommand: str, *args: str | int) -> object:
    """``CLUSTER <subcommand> <args>`` on a short-lived connection, its reply as redis-py
    parses it (the command name as one string, so CLUSTER INFO comes back as a dict)."""
    with redis.Redis(port=port, socket_timeout=5, decode_responses=True) as client:
        return client.execute_command(f"CLUSTER {subcommand}", *args)


def _converged(port: int, masters: int) -> bool:
    info = cluster_command(port, "INFO")  # parsed into a dict by redis-py
    if not isinstance(info, dict):
        return False
    return info.get("cluster_state") == "ok" and info.get("cluster_known_nodes") == str(masters)
