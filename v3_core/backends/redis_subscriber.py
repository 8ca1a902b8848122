"""RedisSubscriber: RedisBroker's supervised subscriber connection.

A half-open socket raises nothing, so this module owns the subscriber connection: nothing
retries on it behind our back, a probe on the node's own channel must come back within the
timeout, and after any failure the subscriber re-subscribes from its own channel set and
yields a Discontinuity. What to do when is decided in redis_subscriptions.py, without I/O.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from v3_core.errors import BackendUnavailable

from .base import BrokerEvent, BrokerMessage
from .redis_client import REDIS_ERRORS
from .redis_history import framed
from .redis_pipe import consume_exception
from .redis_subscriptions import Dropped, Probes, Recycle, Subscriptions
from .redis_wire import RedisWire

log = logging.getLogger("aether.broker")

WAKE = b"wake"  # on the node's own channel: makes the reader look at its recycle reason now
_SLACK = 0.001  # past a probe deadline when the reader wakes for it, never just before
_LATE_LIMIT = 10  # timeouts a subscribe waits for a late confirmation, at most


class RedisSubscriber:
    """One connection subscribed to every channel the node holds, plus its own channel, on
    which ``publish_to_self`` sends the probes (and wake-ups) the reader expects back."""

    def __init__(
        self,
        urls: list[str],
        *,
        node_channel: str,
        timeout: float,
        probe_interval: float,
        publish_to_self: Callable[[bytes], None],
    ) -> None:
        self._urls = urls
        self._node_channel = node_channel
        self._timeout = timeout
        self._probe_interval = probe_interval
        self._publish_to_self = publish_to_self
        self._state = Subscriptions(timeout)
        self._wire: RedisWire | None = None
        self._probes: Probes | None = None  # the current connection's, while it is read
        self._reading: asyncio.Timeout | None = None  # the reader's wait, while it waits
        self._connected = asyncio.Event()
        self._closed = False

    @property
    def ready(self) -> bool:
        return self._connected.is_set()

    @property
    def reconnects(self) -> int:
        return self._state.reconnects

    async def wait_ready(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def subscribe(self, channel: str) -> None:
        """Return once ``channel`` is live; raise BackendUnavailable after the timeout.

        A reconnect takes a round trip or two, so a subscribe that meets one waits for it
        rather than refuse the client (1013): while the subscriber is reconnecting, and when
        the connection drops before confirming this channel (the new connection subscribes
        every channel held, this one too). While Redis is down, it fails after the timeout.
        """
        self._state.channels.add(channel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._connected.wait()
            except TimeoutError:
                raise BackendUnavailable("Redis subscriber is reconnecting") from None
            wire = self._wire
            if wire is None:  # dropped between the wake-up and now
                continue
            future = loop.create_future()
            future.add_done_callback(consume_exception)  # its waiter may have given up
            self._state.awaiting(channel, future)
            try:
                wire.send(("SUBSCRIBE", channel))
            except REDIS_ERRORS as exc:
                # The command may or may not have reached Redis: only a fresh connection is sure.
                self.recycle(f"subscribe failed: {exc!r}")
                raise BackendUnavailable(f"Redis subscribe failed: {exc!r}") from exc
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(future)
                return
            except Dropped:
                continue
            except TimeoutError:
                pass
            # Late: a node too busy to read its replies in time (a reconnect storm), a busy
            # Redis, or a dead connection. A probe now tells which: the wait goes on while
            # the connection shows life, and ends with Dropped when it does not (within
            # the timeout), rather than refuse clients a live connection would have served.
            self._probe_now(wire)
            try:
                # A backstop, if the reader does not run at all (its consumer stuck).
                async with asyncio.timeout(_LATE_LIMIT * self._timeout):
                    await asyncio.shield(future)
                return
            except Dropped:
                continue  # past the deadline: refused unless the subscriber is back already
            except TimeoutError:
                raise BackendUnavailable("Redis subscribe not confirmed") from None

    async def unsubscribe(self, channel: str) -> None:
        self._state.channels.discard(channel)
        wire = self._wire
        if wire is not None and self.ready:
            try:
                wire.send(("UNSUBSCRIBE", channel))
            except REDIS_ERRORS as exc:
                self.recycle(f"unsubscribe failed: {exc!r}")

    def _probe_now(self, wire: RedisWire) -> None:
        """Send a probe now, and have the reader look for its echo by its deadline."""
        probes, reading = self._probes, self._reading
        if wire is not self._wire or probes is None:
            return  # being replaced: the wait ends with Dropped
        now = asyncio.get_running_loop().time()
        self._publish_to_self(probes.force(now))
        if reading is not None and not reading.expired():  # (expired: it is looking now)
            reading.reschedule(min(reading.when() or now, probes.next_deadline() + _SLACK))

    def recycle(self, reason: str) -> None:
        """Make the reader drop this connection; it re-subscribes every channel held.

        The reader sleeps until its next probe is due, so a message on the node's channel
        wakes it now; if Redis cannot deliver that, the probe deadline will.
        """
        self._state.recycle(reason)
        self._publish_to_self(WAKE)

    async def events(self) -> AsyncIterator[BrokerEvent]:
        state = self._state
        while not self._closed:
            try:
                wire, early, run_id = await self._connect()
            except REDIS_ERRORS as exc:
                log.warning("Redis subscriber cannot connect: %r", exc)
            else:
                if (gap := state.back(run_id)) is not None:
                    log.warning(
                        "Redis subscriber back (%s); announcing a discontinuity", gap.reason
                    )
                    yield gap
                try:
                    for message in early:
                        yield message
                    async for message in self._read(wire):
                        yield message
                except (*REDIS_ERRORS, Recycle) as exc:
                    log.warning("Redis subscriber lost its connection: %r", exc)
                finally:
                    await self._disconnect(wire)
            await asyncio.sleep(state.next_delay())

    async def _connect(self) -> tuple[RedisWire, list[BrokerMessage], str]:
        """Subscribe every channel held on a new connection.

        Returns the connection, messages that arrived while subscribing, and the server's
        run_id (a restarted Redis has lost every key, presence included).
        """
        channels = [self._node_channel, *self._state.channels]
        async with asyncio.timeout(2 * self._timeout):
            wire = await RedisWire.open_first(
                self._urls, timeout=self._timeout, name=f"{self._node_channel}:sub"
            )
        try:
            # The run_id of the server this connection reads from (in a cluster, another
            # node after a failover: counted as a restart, the cautious reading).
            run_id = await wire.run_id()
            wire.send(("SUBSCRIBE", *channels))
            early = await self._confirm(wire, len(channels))
        except BaseException:
            await self._disconnect(wire)
            raise
        stale = self._state.connected(channels[1:])
        self._wire = wire
        self._connected.set()
        if stale:  # channels whose last member left while this connection was being made
            try:
                wire.send(("UNSUBSCRIBE", *stale))
            except REDIS_ERRORS as exc:
                self.recycle(f"unsubscribe failed: {exc!r}")
        return wire, early, run_id

    async def _confirm(self, wire: RedisWire, expected: int) -> list[BrokerMessage]:
        """Wait for ``expected`` subscribe confirmations, keeping messages that come meanwhile.

        Given up when Redis is silent for the timeout, not when all take longer: a node busy
        with a storm reads the confirmations of its 19,000 channels over many turns.
        """
        early: list[BrokerMessage] = []
        node_channel = self._node_channel.encode()
        while expected:
            for reply in await wire.replies_within(self._timeout):
                kind = _kind(reply)
                if kind == b"subscribe":
                    expected -= 1
                elif kind == b"message" and reply[1] != node_channel:
                    early.append(framed(reply[1], reply[2]))
        return early

    async def _disconnect(self, wire: RedisWire) -> None:
        self._connected.clear()
        if self._wire is wire:
            self._wire = self._probes = None
        self._state.disconnected()
        await wire.drop(self._timeout)

    async def aclose(self) -> None:
        self._closed = True
        if self._wire is not None:
            await self._disconnect(self._wire)

    async def _read(self, wire: RedisWire) -> AsyncIterator[BrokerMessage]:
        loop = asyncio.get_running_loop()
        probes = self._probes = Probes(self._probe_interval, self._timeout, loop.time())
        node_channel = self._node_channel.encode()
        state = self._state
        while True:
            if (probe := state.check(wire.closed, probes, loop.time())) is not None:
                self._publish_to_self(probe)
            # Sleep until a probe is due: an idle node wakes for its probes, not to poll.
            wait = max(probes.next_deadline() - loop.time(), 0.0) + _SLACK
            try:
                async with asyncio.timeout(wait) as self._reading:
                    replies = await wire.replies()
            except TimeoutError:
                if not wire.unread():
                    continue  # the probes' turn
                replies = await wire.replies_within(self._timeout)  # the loop was too busy
            finally:
                self._reading = None
            probes.heard(loop.time())
            for reply in replies:
                kind = _kind(reply)
                if kind == b"message":
                    channel = reply[1]
                    if channel == node_channel:
                        probes.echo(reply[2], loop.time())
                    else:
                        yield framed(channel, reply[2])
                elif kind == b"subscribe":
                    state.confirmed(reply[1].decode())


def _kind(reply: Any) -> bytes | None:
    """``message``, ``subscribe``, ... for a pub/sub push; raises an error reply."""
    if isinstance(reply, Exception):
        raise reply
    return reply[0] if isinstance(reply, list) and reply else None
