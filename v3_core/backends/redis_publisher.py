"""RedisPublisher: RedisBroker's publishing half, every publish queued meanwhile in one batch.

One writer pipelines the batch on a hiredis wire (redis_pipe.py): one round trip per batch
instead of one per message. With history on, each publish is one EVALSHA of
lua/history_publish.lua, which numbers the message and appends it in the same step.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import redis.asyncio as aioredis

from v3_core.errors import BackendUnavailable
from v3_core.streams import HistoryPolicy

from .redis_client import REDIS_ERRORS
from .redis_history import history_args, history_keys, history_script
from .redis_pipe import PipelinedWire, consume_exception
from .redis_wire import RedisWire

log = logging.getLogger("aether.broker")

Publish = tuple[str, bytes, "asyncio.Future[int]"]


class RedisPublisher(PipelinedWire[Publish]):
    """PUBLISH (or the history script) for a batch of messages on one connection.

    On a Redis Cluster with history on, each script call goes to its channel's shard through
    redis-py's cluster client instead (it follows MOVED and failovers).
    """

    def __init__(
        self,
        control: aioredis.Redis,
        urls: list[str],
        *,
        node_channel: str,
        timeout: float,
        history: HistoryPolicy,
        cluster: bool,
    ) -> None:
        super().__init__(timeout=timeout, name="redis-publisher")
        self._control = control
        self._urls = urls
        self._node_channel = node_channel
        self._history = history
        self._cluster = cluster
        self._append = control.register_script(history_script("publish"))
        # secrets.token_hex(3): this node's part of the epochs it starts
        self._history_args = history_args(history, secrets.token_hex(3), "PUBLISH")

    def publish_to_self(self, data: bytes) -> None:
        """A probe, or a wake-up for the reader, on the node's own channel.

        Fire and forget: a failed probe shows up as a missing echo on the reader side.
        """
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(consume_exception)
        self.put((self._node_channel, data, future))

    async def _send(self, batch: list[Publish]) -> None:
        if self._cluster and self._history.enabled:
            settle_publishes(batch, await self._append_on_cluster(batch))
            return
        wire = self._wire
        if wire is None or wire.closed:
            wire = await self._reconnect()
        receivers = await wire.round_trip(
            *(self._command(channel, data) for channel, data, _ in batch)
        )
        for reply in receivers:
            if isinstance(reply, Exception):
                raise reply
        settle_publishes(batch, receivers)

    async def _open(self) -> RedisWire:
        script = str(self._append.script) if self._history.enabled else None
        name = f"{self._node_channel}:pub"
        return await RedisWire.open_first(
            self._urls, timeout=self._timeout, name=name, script=script
        )

    def _command(self, channel: str, data: bytes) -> tuple[str | bytes, ...]:
        if not self._history.enabled or channel == self._node_channel:
            return ("PUBLISH", channel, data)
        meta, entries = history_keys(channel)
        return ("EVALSHA", self._append.sha, "2", meta, entries, channel, data, *self._history_args)

    async def _append_on_cluster(self, batch: list[Publish]) -> list[Any]:
        """Each script call to its channel's shard, through redis-py's cluster client (it
        follows MOVED and failovers). Probes are classic PUBLISH: any node relays them."""
        calls = [
            self._control.publish(channel, data)
            if channel == self._node_channel
            else self._append(list(history_keys(channel)), [channel, data, *self._history_args])
            for channel, data, _ in batch
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    async def _reset(self, error: Exception) -> None:
        if not isinstance(error, REDIS_ERRORS):
            log.exception("unexpected error publishing to Redis")
        await super()._reset(error)

    def _error(self, error: Exception) -> BaseException:
        return BackendUnavailable(f"Redis publish failed: {error!r}")


def settle_publishes(batch: list[Publish], counts: list[Any]) -> None:
    """Each publish gets how many subscribers its message reached."""
    for (*_, future), count in zip(batch, counts, strict=True):
        if not future.done():
            future.set_result(count if isinstance(count, int) else 0)
