"""RedisBroker: plain-channel pub/sub with a supervised subscriber and a batching publisher.

redis-py reconnects a PubSub silently and a half-open socket raises nothing, so this module
owns the subscriber connection: it never lets redis-py retry, probes its own node channel,
re-subscribes from its own channel set after any failure and reports a Discontinuity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..errors import BackendUnavailable
from .base import BrokerEvent, BrokerMessage, Discontinuity

log = logging.getLogger("aether.broker")

_REDIS_ERRORS = (redis.exceptions.RedisError, OSError, asyncio.TimeoutError)
_PROBE = b"probe"


class _ProbeLost(Exception):
    """The subscriber saw none of its own probes in time: the connection is half-open."""


def redis_client(url: str, *, timeout: float) -> aioredis.Redis:
    """A client that fails fast instead of retrying silently: faults are ours to handle."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


class RedisBroker:
    """A Broker over Redis plain channels (never patterns: they cost every publish)."""

    def __init__(
        self,
        url: str,
        *,
        node_channel: str,
        timeout: float = 2.0,
        probe_interval: float = 5.0,
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._probe_interval = probe_interval
        self._node_channel = node_channel
        self._publisher = redis_client(url, timeout=timeout)
        self._subscriber = redis_client(url, timeout=timeout)
        self._channels: set[str] = set()
        self._pubsub: PubSub | None = None
        self._confirmations: defaultdict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._pending: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._flusher = asyncio.create_task(self._flush_forever(), name="redis-publisher")
        self._connected = asyncio.Event()
        self._closed = False
        self.reconnects = 0

    @property
    def ready(self) -> bool:
        return self._connected.is_set()

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the subscriber is connected (start-up, tests)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def publish(self, channel: str, data: bytes) -> None:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((channel, data, future))
        self._wakeup.set()
        await future

    async def _flush_forever(self) -> None:
        # One writer pipelines whatever publishes queued up meanwhile: one round trip per
        # batch instead of one per message, and no connection-pool exhaustion under bursts.
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            try:
                async with self._publisher.pipeline(transaction=False) as pipe:
                    for channel, data, _ in batch:
                        pipe.publish(channel, data)
                    await pipe.execute()
            except _REDIS_ERRORS as exc:
                error = BackendUnavailable(f"Redis publish failed: {exc}")
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(error)
            else:
                for *_, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None or not self.ready:
            raise BackendUnavailable("Redis subscriber is reconnecting")
        future = asyncio.get_running_loop().create_future()
        self._confirmations[channel].append(future)
        try:
            await pubsub.subscribe(channel)
            await asyncio.wait_for(asyncio.shield(future), self._timeout)
        except _REDIS_ERRORS as exc:
            raise BackendUnavailable(f"Redis subscribe failed: {exc}") from exc

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is not None and self.ready:
            # A failure here is repaired by the reconnect, which subscribes _channels only.
            with contextlib.suppress(*_REDIS_ERRORS):
                await pubsub.unsubscribe(channel)

    async def events(self) -> AsyncIterator[BrokerEvent]:
        backoff = 0.05
        first = True
        while not self._closed:
            try:
                pubsub = await self._connect()
            except _REDIS_ERRORS as exc:
                log.warning("Redis subscriber cannot connect: %s", exc)
            else:
                if not first:
                    self.reconnects += 1
                    log.warning("Redis subscriber reconnected; announcing a discontinuity")
                    yield Discontinuity("broker-reconnected")
                first = False
                backoff = 0.05
                try:
                    async for message in self._read(pubsub):
                        yield message
                except (*_REDIS_ERRORS, _ProbeLost) as exc:
                    log.warning("Redis subscriber lost its connection: %r", exc)
                finally:
                    await self._disconnect(pubsub)
            if self._closed:
                break
            await asyncio.sleep(backoff * (1 + random.random()))
            backoff = min(backoff * 2, 1.0)

    async def _connect(self) -> PubSub:
        pubsub = self._subscriber.pubsub()
        try:
            channels = [self._node_channel, *self._channels]
            await pubsub.subscribe(*channels)
            confirmed = 0
            async with asyncio.timeout(self._timeout * 2):
                while confirmed < len(channels):
                    message = await pubsub.get_message(timeout=self._timeout)
                    if message is not None and message["type"] == "subscribe":
                        confirmed += 1
        except BaseException:
            await self._disconnect(pubsub)
            raise
        self._pubsub = pubsub
        self._connected.set()
        return pubsub

    async def _disconnect(self, pubsub: PubSub) -> None:
        self._connected.clear()
        if self._pubsub is pubsub:
            self._pubsub = None
        for futures in self._confirmations.values():
            for future in futures:
                if not future.done():
                    future.set_exception(BackendUnavailable("Redis subscriber disconnected"))
        self._confirmations.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pubsub.aclose(), self._timeout)

    async def _read(self, pubsub: PubSub) -> AsyncIterator[BrokerMessage]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self._probe_interval + self._timeout
        next_probe = loop.time()
        node_channel = self._node_channel.encode()
        while True:
            now = loop.time()
            if now >= next_probe:
                next_probe = now + self._probe_interval
                self._send_probe()
            if now > deadline:
                raise _ProbeLost(f"no traffic for {2 * self._probe_interval + self._timeout:.1f}s")
            message: dict[str, Any] | None = await pubsub.get_message(
                timeout=min(self._probe_interval, 0.5)
            )
            if message is None:
                continue
            deadline = loop.time() + 2 * self._probe_interval + self._timeout
            kind, channel = message["type"], message["channel"]
            if kind == "message":
                if channel != node_channel:
                    yield BrokerMessage(channel.decode(), message["data"])
            elif kind == "subscribe":
                futures = self._confirmations.get(channel.decode())
                if futures:
                    future = futures.popleft()
                    if not future.done():
                        future.set_result(None)

    def _send_probe(self) -> None:
        # Fire and forget: a failed probe shows up as a missing probe on the reader side.
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.exception())
        self._pending.append((self._node_channel, _PROBE, future))
        self._wakeup.set()

    async def ping(self) -> None:
        try:
            await asyncio.wait_for(self._publisher.ping(), self._timeout)
        except _REDIS_ERRORS as exc:
            raise BackendUnavailable(f"Redis ping failed: {exc}") from exc
        if not self.ready:
            raise BackendUnavailable("Redis subscriber is reconnecting")

    async def aclose(self) -> None:
        self._closed = True
        self._flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._flusher
        if self._pubsub is not None:
            await self._disconnect(self._pubsub)
        await self._publisher.aclose()
        await self._subscriber.aclose()
