"""Which nodes are up: each node writes a heartbeat with its numbers, every node can list all.

Nodes otherwise never learn of each other (they share channels, not a membership list). Every
``interval`` a node writes one entry: ID, version, uptime, connections (V3 and legacy), ready,
its busiest groups, and its traffic rates over the last minutes. An entry not refreshed for
three intervals is a node that is gone. Redis: one hash, ``{p}nodes`` (node ID -> JSON), whose
key expires a minute after the last heartbeat of any node; stale fields are removed on read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis

from v3_core.backends.redis_client import backend_errors, redis_client

STALE_AFTER = 3  # heartbeat intervals without an update: the node is gone
FORGET_AFTER = 3600.0  # seconds after which a gone node's entry is deleted
TRAFFIC_STEP = 5.0  # seconds between traffic samples
TRAFFIC_POINTS = 60  # samples kept: the last 5 minutes


@dataclass(slots=True)
class NodeInfo:
    node_id: str
    version: str
    started_at: float  # unix seconds
    seen_at: float
    connections: int  # all sockets, V3 and legacy
    legacy_connections: int
    ready: bool
    # group Vision ID -> {"connections", "legacy", "legacy_id"}, for this node's busiest groups
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    traffic: dict[str, Any] = field(default_factory=dict)  # TrafficSeries.as_json()

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeInfo:
        return cls(**{k: data[k] for k in cls.__slots__ if k in data})


class NodeStore(Protocol):
    """Heartbeats of every node; ``nodes`` lists those seen within ``stale_after`` seconds,
    ``leave`` removes a node that stops cleanly. Each raises BackendUnavailable when the store
    does not answer."""

    async def beat(self, info: NodeInfo) -> None: ...
    async def leave(self, node_id: str) -> None: ...
    async def nodes(self, stale_after: float) -> list[NodeInfo]: ...
    async def aclose(self) -> None: ...


class MemoryNodeStore:
    """Nodes of one process (in-process test nodes may share one)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._clock = clock

    async def beat(self, info: NodeInfo) -> None:
        self._nodes[info.node_id] = info

    async def leave(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)

    async def nodes(self, stale_after: float) -> list[NodeInfo]:
        horizon = self._clock() - stale_after
        return sorted((n for n in self._nodes.values() if n.seen_at >= horizon), key=_order)

    async def aclose(self) -> None:
        return None


class RedisNodeStore:
    def __init__(self, url: str, *, prefix: str, timeout: float = 2.0) -> None:
        self._redis: aioredis.Redis = redis_client(url, timeout=timeout)
        self._key = f"{prefix}nodes"

    async def beat(self, info: NodeInfo) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(self._key, info.node_id, orjson.dumps(info.as_json()))
            pipe.expire(self._key, 60)
            await self._call(pipe.execute())

    async def leave(self, node_id: str) -> None:
        await self._call(self._redis.hdel(self._key, node_id))

    async def nodes(self, stale_after: float) -> list[NodeInfo]:
        fields = await self._call(self._redis.hgetall(self._key))
        now, found, gone = time.time(), [], []
        for raw_id, raw in fields.items():
            info = NodeInfo.from_json(orjson.loads(raw))
            if info.seen_at >= now - stale_after:
                found.append(info)
            elif info.seen_at < now - FORGET_AFTER:
                gone.append(raw_id)
        if gone:
            await self._call(self._redis.hdel(self._key, *gone))
        return sorted(found, key=_order)

    async def _call(self, pending: Any) -> Any:
        with backend_errors("node registry call failed"):
            return await pending

    async def aclose(self) -> None:
        await self._redis.aclose()


def _order(info: NodeInfo) -> tuple[float, str]:
    return (info.started_at, info.node_id)


def open_node_store(redis_url: str | None, *, prefix: str, timeout: float = 2.0) -> NodeStore:
    if redis_url is not None:
        return RedisNodeStore(redis_url, prefix=prefix, timeout=timeout)
    return MemoryNodeStore()


class TrafficSeries:
    """Rates (messages/s) per ``protocol target`` key, one point every ``step`` seconds over
    the last ``points`` steps, from the manager's cumulative counters. Pure."""

    def __init__(self, *, step: float = TRAFFIC_STEP, points: int = TRAFFIC_POINTS) -> None:
        self.step, self.points = step, points
        self._last: dict[str, int] | None = None
        self._last_at = 0.0
        self._rates: list[dict[str, float]] = []
        self.end = 0.0  # unix seconds of the newest point

    def sample(self, totals: dict[tuple[str, str], int], now: float) -> None:
        current = {f"{protocol} {target}": n for (protocol, target), n in totals.items()}
        if self._last is not None and now > self._last_at:
            elapsed = now - self._last_at
            rates = {k: (n - self._last.get(k, 0)) / elapsed for k, n in current.items()}
            self._rates = [*self._rates, rates][-self.points :]
            self.end = now
        self._last, self._last_at = current, now

    def as_json(self) -> dict[str, Any]:
        keys = sorted({k for rates in self._rates for k in rates})
        series = {k: [round(r.get(k, 0.0), 3) for r in self._rates] for k in keys}
        return {"step": self.step, "end": self.end, "series": series}


def sum_traffic(views: list[dict[str, Any]], step: float, points: int) -> dict[str, Any]:
    """Several nodes' series as one, each point placed by its time (nodes sample out of phase,
    so a point goes to the nearest step of the newest node's clock)."""
    ends = [v["end"] for v in views if v.get("series")]
    if not ends:
        return {"step": step, "end": 0.0, "series": {}}
    end = max(ends)
    total: dict[str, list[float]] = {}
    for view in views:
        for key, rates in view.get("series", {}).items():
            row = total.setdefault(key, [0.0] * points)
            shift = round((end - view["end"]) / step)
            for i, rate in enumerate(rates):
                slot = points - len(rates) + i - shift
                if 0 <= slot < points:
                    row[slot] = round(row[slot] + rate, 3)
    return {"step": step, "end": end, "series": total}
