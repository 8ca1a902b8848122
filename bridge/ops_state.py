"""The numbers behind the ops page: this node's heartbeat, and the cluster view built from all.

The heartbeat runs in the background (one registry write per interval, one traffic sample per
step); nothing here runs per message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from v3_core import ConnectionManager
from v3_core.errors import BackendUnavailable

from .node_registry import (
    STALE_AFTER,
    TRAFFIC_POINTS,
    TRAFFIC_STEP,
    NodeInfo,
    NodeStore,
    TrafficSeries,
    sum_traffic,
)
from .periodic import every
from .v2.control import V2Control
from .version import VERSION

log = logging.getLogger("aether.ops")

TOP_GROUPS = 50  # groups per node in a heartbeat, busiest first


class NodeHeartbeat:
    """``async with NodeHeartbeat(...)``: this node in the registry while the app runs."""

    def __init__(
        self,
        store: NodeStore,
        manager: ConnectionManager,
        v2: V2Control,
        *,
        interval: float = 1.0,
        traffic: TrafficSeries | None = None,
    ) -> None:
        self.store, self.interval = store, interval
        self._manager, self._v2 = manager, v2
        self.started_at = time.time()
        self.traffic = traffic or TrafficSeries()
        self._sampled_at = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def info(self) -> NodeInfo:
        """This node now (the ops page shows its own node live, others as of their beat)."""
        now = time.time()
        if now - self._sampled_at >= self.traffic.step:
            self._sampled_at = now
            self.traffic.sample(self._manager.stats.traffic_totals(), now)
        return NodeInfo(
            node_id=self._manager.node_id,
            version=VERSION,
            started_at=self.started_at,
            seen_at=now,
            connections=len(self._manager),
            legacy_connections=self._v2.connections,
            ready=self._manager.ready,
            groups=self._groups(),
            traffic=self.traffic.as_json(),
        )

    def _groups(self) -> dict[str, dict[str, Any]]:
        sizes, legacy = self._manager.group_sizes(), self._v2.legacy_by_group()
        busiest = sorted(sizes, key=lambda g: -sizes[g])[:TOP_GROUPS]
        return {
            g: {
                "connections": sizes[g],
                "legacy": legacy.get(g, (0, ""))[0],
                "legacy_id": legacy.get(g, (0, ""))[1],
            }
            for g in busiest
        }

    async def nodes(self) -> list[NodeInfo]:
        """Every live node, this one as of now. Raises BackendUnavailable."""
        me = self.info()
        others = await self.store.nodes(self.interval * STALE_AFTER)
        return sorted(
            [me, *(n for n in others if n.node_id != me.node_id)],
            key=lambda n: (n.started_at, n.node_id),
        )

    async def beat(self) -> None:
        try:
            await self.store.beat(self.info())
        except BackendUnavailable as exc:
            if not self._failing:
                log.warning("node heartbeat failed (the ops page misses this node): %s", exc)
            self._failing = True
        else:
            self._failing = False

    async def __aenter__(self) -> NodeHeartbeat:
        await self.beat()
        self._task = asyncio.create_task(
            every(self.interval, self._stop, self.beat, log, "node heartbeat"),
            name="node-heartbeat",
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        try:  # off the ops page at once, not three intervals later
            await self.store.leave(self._manager.node_id)
        except BackendUnavailable as exc:
            log.warning("could not leave the node registry: %s", exc)
        await self.store.aclose()


def cluster_json(
    nodes: list[NodeInfo],
    v2: V2Control,
    self_id: str,
    legacy_of: Callable[[str, str], str | None] = lambda namespace, vision_id: None,
) -> dict[str, Any]:
    """``GET /ops/api/cluster``: nodes, summed traffic, and groups with their V2 mode.

    ``legacy_of``: a group's legacy integer when no open legacy connection names it (the ID
    mapper's cache; no I/O)."""
    now = time.time()
    groups: dict[str, dict[str, Any]] = {}
    for node in nodes:
        for group_id, row in node.groups.items():
            seen = groups.setdefault(
                group_id,
                {"group_id": group_id, "legacy_id": "", "connections": 0, "v2_clients": 0},
            )
            seen["connections"] += row["connections"]
            seen["v2_clients"] += row["legacy"]
            seen["legacy_id"] = seen["legacy_id"] or row["legacy_id"]
    policy = v2.policy
    for group_id in policy.groups:  # a group with a mode of its own is listed, even if empty
        groups.setdefault(
            group_id, {"group_id": group_id, "legacy_id": "", "connections": 0, "v2_clients": 0}
        )
    for row in groups.values():
        row["legacy_id"] = row["legacy_id"] or legacy_of("group", row["group_id"]) or ""
        row["mode"] = policy.mode_for(row["group_id"])
        row["own_mode"] = row["group_id"] in policy.groups
    steps = {n.traffic.get("step", TRAFFIC_STEP) for n in nodes} or {TRAFFIC_STEP}
    return {
        "self": self_id,
        "now": now,
        "nodes": [
            {
                "node_id": n.node_id,
                "version": n.version,
                "uptime": round(now - n.started_at, 1),
                "connections": n.connections,
                "v3_connections": n.connections - n.legacy_connections,
                "legacy_connections": n.legacy_connections,
                "ready": n.ready,
                "seen_ago": round(now - n.seen_at, 1),
            }
            for n in nodes
        ],
        "traffic": sum_traffic([n.traffic for n in nodes], min(steps), TRAFFIC_POINTS),
        "global_mode": policy.global_mode,
        "groups": sorted(groups.values(), key=lambda r: (-r["connections"], r["group_id"])),
    }
