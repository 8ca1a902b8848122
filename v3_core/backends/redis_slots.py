"""SlotMap: which node of a Redis Cluster owns a channel's slot, as redis-py's cluster
client knows it, read again on demand when a move or a failure says it is out of date."""

from __future__ import annotations

import asyncio

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from .redis_client import backend_errors

Owner = tuple[str, str, int]  # a node's name, host and port


class SlotMap:
    def __init__(self, cluster: RedisCluster, *, timeout: float) -> None:
        self.cluster = cluster
        self.ready = asyncio.Event()  # set once the map was read
        self.stale = False  # a publisher's shard failed: it may have been replaced (a failover)
        self._timeout = timeout
        self._started = False

    async def start(self) -> None:
        """Read the map, the first time only."""
        if not self._started:
            self._started = True
            await self.refresh()

    async def refresh(self) -> None:
        # The client's own initialize() refreshes only once its commands failed, and no
        # sooner than its throttle allows; the nodes manager reads the map now.
        first = not self.ready.is_set()
        refresh = self.cluster.initialize() if first else self.cluster.nodes_manager.initialize()
        with backend_errors("Redis Cluster slot map"):
            await asyncio.wait_for(refresh, self._timeout)
        self.stale = False
        self.ready.set()

    def owner(self, channel: str) -> Owner:
        node = self.cluster.nodes_manager.get_node_from_slot(key_slot(channel.encode()))
        return node.name, node.host, int(node.port)
