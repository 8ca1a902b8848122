"""ClusterPublisher: ClusterBroker's publishing half.

As on one Redis, one writer pipelines every publish queued meanwhile (redis_pipe.py), here on
one connection per shard, so one publisher's messages stay in order. A shard that answers
MOVED, ASK or TRYAGAIN has lost the slot: the map is read again and those messages go one by
one through redis-py's cluster client, which follows redirections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from v3_core.errors import BackendUnavailable
from v3_core.streams import HistoryPolicy

from .redis_client import REDIS_ERRORS, ClusterUrl
from .redis_history import history_args, history_keys, history_script
from .redis_pipe import PipelinedWire, fail_calls
from .redis_publisher import Publish, settle_publishes
from .redis_slots import Owner, SlotMap
from .redis_wire import RedisWire

log = logging.getLogger("aether.broker")

# Replies that mean "not here, not now": the slot moved (MOVED), is moving (ASK), or its keys
# are split mid-migration (TRYAGAIN). The call is retried through redis-py, which follows them.
REDIRECTED = ("MOVED", "ASK", "TRYAGAIN")


class ClusterPublisher(PipelinedWire[Publish]):
    """SPUBLISH (or the history script) for a batch, split by the shard owning each channel."""

    def __init__(
        self,
        slots: SlotMap,
        credentials: ClusterUrl,
        *,
        node_channel: str,
        timeout: float,
        history: HistoryPolicy,
    ) -> None:
        super().__init__(timeout=timeout, name="redis-cluster-publisher")
        self._slots = slots
        self._cluster = slots.cluster
        self._credentials = credentials
        self._node_channel = node_channel
        self._history = history
        self._append = self._cluster.register_script(history_script("publish"))
        self._history_args = history_args(history, secrets.token_hex(3), "SPUBLISH")
        self._wires: dict[str, RedisWire] = {}  # by shard name

    async def _send(self, batch: list[Publish]) -> None:
        await self._slots.start()
        if self._slots.stale:
            await self._slots.refresh()
        by_shard: dict[Owner, list[Publish]] = {}
        for item in batch:
            by_shard.setdefault(self._slots.owner(item[0]), []).append(item)
        moved = await asyncio.gather(*(self._publish_on(o, items) for o, items in by_shard.items()))
        if retry := [item for items in moved for item in items]:
            await self._slots.refresh()
            for channel, data, future in retry:  # one by one, via redis-py (follows MOVED)
                try:
                    if self._history.enabled:
                        keys = list(history_keys(channel))
                        count = await self._append(keys, [channel, data, *self._history_args])
                    else:
                        count = await self._cluster.spublish(channel, data)
                except REDIS_ERRORS as exc:
                    fail_calls([(channel, data, future)], BackendUnavailable(repr(exc)))
                else:
                    settle_publishes([(channel, data, future)], [count])

    async def _publish_on(self, owner: Owner, items: list[Publish]) -> list[Publish]:
        """Pipeline ``items`` on the shard's publisher; return those it answered MOVED."""
        name = owner[0]
        wire = self._wires.get(name)
        try:
            if wire is None or wire.closed:
                wire = await RedisWire.open(
                    self._credentials.node_url(owner[1], owner[2]),
                    timeout=self._timeout,
                    name=f"{self._node_channel}:pub",
                    script=str(self._append.script) if self._history.enabled else None,
                )
                self._wires[name] = wire
            replies = await wire.round_trip(*(self._command(c, data) for c, data, _ in items))
        except REDIS_ERRORS as exc:
            self._slots.stale = True
            self._wires.pop(name, None)
            if wire is not None:
                with contextlib.suppress(Exception):
                    await wire.aclose()
            fail_calls(items, BackendUnavailable(f"Redis Cluster publish failed: {exc!r}"))
            return []
        moved = []
        for item, reply in zip(items, replies, strict=True):
            if isinstance(reply, Exception) and str(reply).startswith(REDIRECTED):
                moved.append(item)
            elif isinstance(reply, Exception):
                fail_calls([item], BackendUnavailable(f"Redis Cluster publish failed: {reply!r}"))
            else:
                settle_publishes([item], [reply])
        return moved

    def _command(self, channel: str, data: bytes) -> tuple[str | bytes, ...]:
        if not self._history.enabled:
            return ("SPUBLISH", channel, data)
        meta, entries = history_keys(channel)
        return ("EVALSHA", self._append.sha, "2", meta, entries, channel, data, *self._history_args)

    async def _disconnect(self) -> None:
        # Replies of a failed batch may still arrive on any shard's wire: a later batch would
        # take them for its own (a MOVED read as OK loses a message). Only new connections
        # are in step.
        wires, self._wires = list(self._wires.values()), {}
        self._slots.stale = True
        for wire in wires:
            await wire.drop(self._timeout)

    async def _reset(self, error: Exception) -> None:
        if not isinstance(error, (*REDIS_ERRORS, BackendUnavailable)):
            log.exception("unexpected error publishing to Redis Cluster")
        await self._disconnect()

    def _error(self, error: Exception) -> BaseException:
        return BackendUnavailable(f"Redis Cluster publish failed: {error!r}")
