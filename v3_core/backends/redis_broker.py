"""RedisBroker: plain-channel pub/sub, composed of a batching publisher (redis_publisher.py)
and a supervised subscriber (redis_subscriber.py), each on a hiredis wire of its own."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from v3_core.errors import BackendUnavailable
from v3_core.streams import HistoryPolicy, Position, StreamState

from .base import BrokerEvent, BrokerMessage
from .redis_client import backend_errors, is_cluster, parse_cluster_url, redis_client
from .redis_history import ScriptCall, history_script, read_history, read_position
from .redis_publisher import RedisPublisher
from .redis_script_pipe import PipelinedScripts, script_sha
from .redis_subscriber import RedisSubscriber

CONTROL_POOL = 32  # connections for history reads, positions, INFO and PING


class RedisBroker:
    """A Broker over Redis plain channels (never patterns: they cost every publish).

    Publishing and subscribing each hold one RedisWire (hiredis, no redis-py per message);
    a redis-py client serves the rare commands (INFO, PING, history reads). With history on,
    every publish is one EVALSHA of lua/history_publish.lua.
    """

    def __init__(
        self,
        url: str,
        *,
        node_channel: str,
        timeout: float = 2.0,
        probe_interval: float = 5.0,
        history: HistoryPolicy | None = None,
    ) -> None:
        self._timeout = timeout
        self.history = history or HistoryPolicy(size=0)
        # History reads come in bursts (a reconnect storm: three per recovering client): a
        # blocking pool makes them wait for a connection, where redis-py's default pool
        # raises at its 100th concurrent call and the client would get a needless resync.
        self._control = redis_client(url, timeout=timeout, pool_size=CONTROL_POOL)
        read_script = history_script("read")
        self._read_history = self._control.register_script(read_script)
        # On one server, a connect's position lookup and a recovery's history read share a
        # pipelined wire: a reconnect storm's thousands of them go out in a few round trips,
        # where the pool made them queue for a connection until they timed out.
        self._reads = (
            None
            if is_cluster(url)
            else PipelinedScripts(
                url, (read_script,), timeout=timeout, name=f"{node_channel}:reads"
            )
        )
        self._read_sha = script_sha(read_script)
        # Where the two wires connect: the server, or a cluster's seeds in an order of this
        # node's own (classic pub/sub reaches every node of a cluster, so any one will do, and
        # nodes spread over the seeds instead of all reading from the first).
        wire_urls = [url]
        if is_cluster(url):
            seeds = parse_cluster_url(url).seed_urls
            wire_urls = random.sample(seeds, len(seeds))
        # A cluster routes each script call to its channel's shard; one server takes the
        # whole batch on the publisher's wire.
        self._publisher = RedisPublisher(
            self._control,
            wire_urls,
            node_channel=node_channel,
            timeout=timeout,
            history=self.history,
            cluster=is_cluster(url),
        )
        self._subscriber = RedisSubscriber(
            wire_urls,
            node_channel=node_channel,
            timeout=timeout,
            probe_interval=probe_interval,
            publish_to_self=self._publisher.publish_to_self,
        )
        self._closed = False

    @property
    def ready(self) -> bool:
        return self._subscriber.ready

    @property
    def reconnects(self) -> int:
        """How many times the subscriber came back after losing its connection."""
        return self._subscriber.reconnects

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the subscriber is connected (start-up, tests)."""
        await self._subscriber.wait_ready(timeout)

    async def publish(self, channel: str, data: bytes) -> int:
        if self._closed:
            raise BackendUnavailable("broker closed")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._publisher.put((channel, data, future))
        return await future

    async def subscribe(self, channel: str) -> None:
        await self._subscriber.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self._subscriber.unsubscribe(channel)

    def events(self) -> AsyncIterator[BrokerEvent]:
        return self._subscriber.events()

    async def history_after(
        self, channel: str, since: Position
    ) -> tuple[StreamState, list[BrokerMessage]]:
        reads = self._reads
        script: ScriptCall
        if reads is None:  # redis-py: held to the timeout here; a wire's reads are already
            script, timeout = self._read_history, self._timeout
        else:
            script, timeout = partial(reads.run, self._read_sha), None
        return await read_history(script, channel, since, self.history, timeout)

    async def position(self, channel: str) -> Position:
        reads = self._reads
        if reads is None:
            return await read_position(self._hmget, channel, self._timeout)
        return await read_position(partial(reads.call, "HMGET"), channel, None)

    async def _hmget(self, key: str, *fields: str) -> Any:
        return await self._control.hmget(key, list(fields))

    async def ping(self) -> None:
        with backend_errors("Redis ping failed"):
            await asyncio.wait_for(self._control.ping(), self._timeout)
        if not self.ready:
            raise BackendUnavailable("Redis subscriber is reconnecting")

    async def aclose(self) -> None:
        self._closed = True
        await self._publisher.aclose(BackendUnavailable("broker closed"))
        await self._subscriber.aclose()
        if self._reads is not None:
            await self._reads.aclose()
        await self._control.aclose()
