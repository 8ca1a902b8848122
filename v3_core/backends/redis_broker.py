"""RedisBroker: plain-channel pub/sub with a supervised subscriber and a batching publisher.

A half-open socket raises nothing, so this module owns the subscriber connection: nothing
retries on it behind our back, a probe on the node's own channel must come back within the
timeout, and after any failure the subscriber re-subscribes from its own channel set and
yields a Discontinuity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any, cast

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.maint_notifications import MaintNotificationsConfig

from v3_core.errors import BackendUnavailable
from v3_core.streams import EMPTY, HistoryPolicy, Position, StreamState

from .base import RECONNECTED, RESTARTED, BrokerEvent, BrokerMessage, Discontinuity
from .redis_url import is_cluster, parse_cluster_url
from .redis_wire import RedisWire

log = logging.getLogger("aether.broker")

# What a Redis call can raise when Redis is unreachable, failing or moving (a cluster's own
# errors, such as no reachable seed or an uncovered slot, do not derive from RedisError).
REDIS_ERRORS = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
    OSError,
    asyncio.TimeoutError,
)
_PROBE = b"probe "
_MIN_BACKOFF, _MAX_BACKOFF = 0.05, 0.5  # reconnect delay, doubled per failure, plus jitter
_WAKE = b"wake"  # on the node's own channel: makes the reader look at _recycle_reason now
_SLACK = 0.001  # past a probe deadline when the reader wakes for it, never just before


class _Recycle(Exception):
    """The subscriber connection can no longer be trusted (probe lost, command failed)."""


class _Dropped(BackendUnavailable):
    """The subscriber connection went away before confirming a subscribe."""


def redis_client(
    url: str, *, timeout: float, pool_size: int | None = None, name: str | None = None
) -> aioredis.Redis:
    """A client that fails fast instead of retrying silently: faults are ours to handle.

    With ``pool_size`` the pool blocks up to ``timeout`` for a free connection, where
    redis-py's default pool raises at its 100th concurrent call (a burst of connects).
    A ``redis+cluster://`` URL gives a RedisCluster, typed as Redis: it has the same
    commands, and callers use only those (pipelines of scripts excepted: see presence).
    """
    if is_cluster(url):
        return cast(aioredis.Redis, cluster_client(url, timeout=timeout))
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # Zero retries, but the failure hook still disconnects a connection that failed.
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
        "client_name": name,
        # Left on ("auto"), the pool skips its check for connections the server closed, so
        # after a Redis restart the first command on every pooled connection fails once.
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }
    if pool_size is None:
        return aioredis.Redis.from_url(url, **options)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=timeout, **options
    )
    return aioredis.Redis.from_pool(pool)  # the client owns (and closes) its pool


CONTROL_POOL = 32  # connections for history reads, positions, INFO and PING

# Connections per cluster node. redis-py's cluster pool has no blocking variant: past this a
# call fails (BackendUnavailable, so 1013 for a connect) instead of waiting. A reconnect storm
# of a few hundred clients on one node stays under it (matrix B4: 200).
CLUSTER_POOL = 256


def cluster_client(url: str, *, timeout: float) -> RedisCluster:
    """redis-py's cluster client, with its own retries: a failover needs the slot map
    refreshed and the command sent again, which only the cluster client knows how to do."""
    cluster = parse_cluster_url(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster.seeds],
        username=cluster.username,
        password=cluster.password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        max_connections=CLUSTER_POOL,  # above any pool_size asked: it cannot block
        health_check_interval=0,
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )


class _Probes:
    """Liveness of the subscriber: every probe published must come back within ``timeout``.

    Only an echo proves the path works both ways; a half-open socket raises nothing.
    """

    def __init__(self, interval: float, timeout: float, now: float) -> None:
        self.interval, self.timeout = interval, timeout
        # Probes of an earlier connection may still arrive: they prove nothing about this one.
        self.prefix = _PROBE + random.randbytes(4).hex().encode() + b" "
        self.sent = self.echoed = 0
        self.next_at = now
        self.waiting_since: float | None = None  # send time of the oldest unanswered probe

    def due(self, now: float) -> bytes | None:
        """The probe to publish now, if one is due."""
        if now < self.next_at:
            return None
        self.next_at = now + self.interval
        self.sent += 1
        if self.waiting_since is None:
            self.waiting_since = now
        return self.prefix + str(self.sent).encode()

    def echo(self, data: bytes, now: float) -> None:
        if not data.startswith(self.prefix):
            return
        with contextlib.suppress(ValueError):
            self.echoed = max(self.echoed, int(data.removeprefix(self.prefix)))
        if self.echoed >= self.sent:
            self.waiting_since = None
        elif self.waiting_since is not None:
            self.waiting_since = now  # older probes came back; the newest is young

    def overdue(self, now: float) -> bool:
        return self.waiting_since is not None and now - self.waiting_since > self.timeout

    def next_deadline(self) -> float:
        """When the reader must look again: the next probe, or the oldest one's time limit."""
        if self.waiting_since is None:
            return self.next_at
        return min(self.next_at, self.waiting_since + self.timeout)


def _script(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"history_{name}.lua").read_text()


def history_keys(channel: str) -> tuple[str, str]:
    """A stream's meta hash and entries, in the channel's own hash slot: a key's hash tag is
    the channel name, which a channel without braces hashes by whole (SPUBLISH included)."""
    return f"{{{channel}}}:h", f"{{{channel}}}:s"


def _framed(channel: bytes, data: bytes) -> BrokerMessage:
    """A message as the history script publishes it (``@<offset> <epoch>`` on a first line),
    or as plain PUBLISH does (history off)."""
    if not data.startswith(b"@"):
        return BrokerMessage(channel.decode(), data)
    head, _, body = data.partition(b"\n")
    offset, _, epoch = head[1:].partition(b" ")
    return BrokerMessage(channel.decode(), body, Position(epoch.decode(), int(offset)))


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
        self._probe_interval = probe_interval
        self._node_channel = node_channel
        self.history = history or HistoryPolicy(size=0)
        self._history_args = (
            str(self.history.size),
            str(max(1, round(self.history.ttl * 1000))),
            secrets.token_hex(3),  # this node's part of the epochs it starts
            "PUBLISH",
        )
        # History reads come in bursts (a reconnect storm: three per recovering client): a
        # blocking pool makes them wait for a connection, where redis-py's default pool
        # raises at its 100th concurrent call and the client would get a needless resync.
        self._control = redis_client(url, timeout=timeout, pool_size=CONTROL_POOL)
        self._append = self._control.register_script(_script("publish"))
        self._read_history = self._control.register_script(_script("read"))
        # A cluster routes each script call to its channel's shard; one server takes the
        # whole batch on the publisher's wire.
        self._cluster = is_cluster(url)
        # Where the two wires connect: the server, or a cluster's seeds in an order of this
        # node's own (classic pub/sub reaches every node of a cluster, so any one will do, and
        # nodes spread over the seeds instead of all reading from the first).
        self._wire_urls = [url]
        if is_cluster(url):
            seeds = parse_cluster_url(url).seed_urls
            self._wire_urls = random.sample(seeds, len(seeds))
        self._publisher: RedisWire | None = None
        self._channels: set[str] = set()
        self._subscriber: RedisWire | None = None
        self._recycle_reason: str | None = None
        self._confirmations: defaultdict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._pending: list[tuple[str, bytes, asyncio.Future[int]]] = []
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

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, channel: str, data: bytes) -> int:
        if self._closed:
            raise BackendUnavailable("broker closed")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((channel, data, future))
        self._wakeup.set()
        return await future

    async def _flush_forever(self) -> None:
        # One writer pipelines whatever publishes queued up meanwhile: one round trip per
        # batch instead of one per message.
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            try:
                async with asyncio.timeout(self._timeout):
                    receivers = await self._publish_batch(batch)
            except Exception as exc:  # the flusher must outlive any failure, or publish hangs
                if not isinstance(exc, REDIS_ERRORS):
                    log.exception("unexpected error publishing to Redis")
                # Replies of this batch may still arrive: only a new connection is in step.
                await self._drop_publisher()
                fail_publishes(batch, BackendUnavailable(f"Redis publish failed: {exc!r}"))
            else:
                settle_publishes(batch, receivers)

    async def _publish_batch(
        self, batch: list[tuple[str, bytes, asyncio.Future[int]]]
    ) -> list[Any]:
        """Each message's receiver count (PUBLISH's reply, or the script's)."""
        if self._cluster and self.history.enabled:
            return await self._append_on_cluster(batch)
        wire = self._publisher
        if wire is None or wire.closed:
            # Closed by the server (a Redis restart, CLIENT KILL): reconnect before writing,
            # as redis-py's pool does, rather than fail the first batch after it.
            await self._drop_publisher()
            wire = await RedisWire.open_first(
                self._wire_urls, timeout=self._timeout, name=f"{self._node_channel}:pub"
            )
            if self.history.enabled:
                # Loaded on every new connection: a restarted Redis has forgotten it.
                await wire.load_script(str(self._append.script))
            self._publisher = wire
        wire.send(*(self._command(channel, data) for channel, data, _ in batch))
        received: list[Any] = []
        while len(received) < len(batch):
            replies = await wire.replies()
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            received += replies
        return received

    def _command(self, channel: str, data: bytes) -> tuple[str | bytes, ...]:
        if not self.history.enabled or channel == self._node_channel:
            return ("PUBLISH", channel, data)
        meta, entries = history_keys(channel)
        return ("EVALSHA", self._append.sha, "2", meta, entries, channel, data, *self._history_args)

    async def _append_on_cluster(
        self, batch: list[tuple[str, bytes, asyncio.Future[int]]]
    ) -> list[Any]:
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

    async def _drop_publisher(self) -> None:
        wire, self._publisher = self._publisher, None
        if wire is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(wire.aclose(), self._timeout)

    def _publish_to_self(self, data: bytes) -> None:
        """A probe, or a wake-up for the reader, on the node's own channel.

        Fire and forget: a failed probe shows up as a missing echo on the reader side.
        """
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(consume_exception)
        self._pending.append((self._node_channel, data, future))
        self._wakeup.set()

    # -- subscriptions -------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        """Return once ``channel`` is live; raise BackendUnavailable after the timeout.

        A reconnect takes a round trip or two, so a subscribe that meets one waits for it
        rather than refuse the client (1013): while the subscriber is reconnecting, and when
        the connection drops before confirming this channel (the new connection subscribes
        every channel held, this one too). While Redis is down, it fails after the timeout.
        """
        self._channels.add(channel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._connected.wait()
            except TimeoutError:
                raise BackendUnavailable("Redis subscriber is reconnecting") from None
            wire = self._subscriber
            if wire is None:  # dropped between the wake-up and now
                continue
            future = loop.create_future()
            future.add_done_callback(consume_exception)  # its waiter may have given up
            self._confirmations[channel].append(future)
            try:
                wire.send(("SUBSCRIBE", channel))
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(future)
                return
            except _Dropped:
                continue
            except REDIS_ERRORS as exc:
                # The command may or may not have reached Redis: only a fresh connection is sure.
                self._recycle(f"subscribe failed: {exc!r}")
                raise BackendUnavailable(f"Redis subscribe failed: {exc!r}") from exc

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        wire = self._subscriber
        if wire is not None and self.ready:
            try:
                wire.send(("UNSUBSCRIBE", channel))
            except REDIS_ERRORS as exc:
                self._recycle(f"unsubscribe failed: {exc!r}")

    def _recycle(self, reason: str) -> None:
        """Make the reader drop this connection; it re-subscribes from ``_channels``.

        The reader sleeps until its next probe is due, so a message on the node's channel
        wakes it now; if Redis cannot deliver that, the probe deadline will.
        """
        self._recycle_reason = self._recycle_reason or reason
        self._publish_to_self(_WAKE)

    # -- the supervised subscriber -------------------------------------------------------

    async def events(self) -> AsyncIterator[BrokerEvent]:
        backoff = _MIN_BACKOFF
        run_id: str | None = None  # Redis' own id: it changes when the server restarts
        while not self._closed:
            try:
                wire, early, server = await self._connect()
            except REDIS_ERRORS as exc:
                log.warning("Redis subscriber cannot connect: %r", exc)
            else:
                backoff = _MIN_BACKOFF
                if run_id is not None:
                    self.reconnects += 1
                    reason = RECONNECTED if server == run_id else RESTARTED
                    log.warning("Redis subscriber back (%s); announcing a discontinuity", reason)
                    yield Discontinuity(reason)
                run_id = server
                try:
                    for message in early:
                        yield message
                    async for message in self._read(wire):
                        yield message
                except (*REDIS_ERRORS, _Recycle) as exc:
                    log.warning("Redis subscriber lost its connection: %r", exc)
                finally:
                    await self._disconnect(wire)
            await asyncio.sleep(backoff * (1 + random.random()))
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _connect(self) -> tuple[RedisWire, list[BrokerMessage], str]:
        """Subscribe every channel held on a new connection.

        Returns the connection, messages that arrived while subscribing, and the server's
        run_id (a restarted Redis has lost every key, presence included).
        """
        channels = [self._node_channel, *self._channels]
        async with asyncio.timeout(2 * self._timeout):
            wire = await RedisWire.open_first(
                self._wire_urls, timeout=self._timeout, name=f"{self._node_channel}:sub"
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
        self._recycle_reason = None
        self._subscriber = wire
        self._connected.set()
        # A channel whose last member left while this connection was being made.
        if stale := set(channels[1:]) - self._channels:
            try:
                wire.send(("UNSUBSCRIBE", *stale))
            except REDIS_ERRORS as exc:
                self._recycle(f"unsubscribe failed: {exc!r}")
        return wire, early, run_id

    async def _confirm(self, wire: RedisWire, expected: int) -> list[BrokerMessage]:
        """Wait for ``expected`` subscribe confirmations, keeping messages that come meanwhile."""
        early: list[BrokerMessage] = []
        node_channel = self._node_channel.encode()
        while expected:
            for reply in await wire.replies():
                kind = _kind(reply)
                if kind == b"subscribe":
                    expected -= 1
                elif kind == b"message" and reply[1] != node_channel:
                    early.append(_framed(reply[1], reply[2]))
        return early

    async def _disconnect(self, wire: RedisWire) -> None:
        self._connected.clear()
        if self._subscriber is wire:
            self._subscriber = None
        for futures in self._confirmations.values():
            for future in futures:
                if not future.done():
                    future.set_exception(_Dropped("Redis subscriber disconnected"))
        self._confirmations.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(wire.aclose(), self._timeout)

    async def _read(self, wire: RedisWire) -> AsyncIterator[BrokerMessage]:
        loop = asyncio.get_running_loop()
        probes = _Probes(self._probe_interval, self._timeout, loop.time())
        node_channel = self._node_channel.encode()
        while True:
            self._check_usable(wire, probes, loop.time())
            # Sleep until a probe is due: an idle node wakes for its probes, not to poll.
            wait = max(probes.next_deadline() - loop.time(), 0.0) + _SLACK
            try:
                async with asyncio.timeout(wait):
                    replies = await wire.replies()
            except TimeoutError:
                continue
            for reply in replies:
                kind = _kind(reply)
                if kind == b"message":
                    channel = reply[1]
                    if channel == node_channel:
                        probes.echo(reply[2], loop.time())
                    else:
                        yield _framed(channel, reply[2])
                elif kind == b"subscribe":
                    self._confirm_one(reply[1].decode())

    def _check_usable(self, wire: RedisWire, probes: _Probes, now: float) -> None:
        """Raise _Recycle when this connection may have lost messages; send a due probe."""
        if self._recycle_reason is not None:
            raise _Recycle(self._recycle_reason)
        if wire.closed:
            raise _Recycle("connection dropped")
        if probes.overdue(now):
            raise _Recycle(f"probe not echoed within {self._timeout}s")
        if (probe := probes.due(now)) is not None:
            self._publish_to_self(probe)

    def _confirm_one(self, channel: str) -> None:
        futures = self._confirmations.get(channel)
        if not futures:
            return
        future = futures.popleft()
        if not futures:
            del self._confirmations[channel]
        if not future.done():
            future.set_result(None)

    # -- history -------------------------------------------------------------------------

    async def history_after(
        self, channel: str, since: Position
    ) -> tuple[StreamState, list[BrokerMessage]]:
        return await read_history(self._read_history, channel, since, self.history, self._timeout)

    async def position(self, channel: str) -> Position:
        meta, _ = history_keys(channel)
        try:
            epoch, last = await asyncio.wait_for(
                self._control.hmget(meta, ["epoch", "last"]), self._timeout
            )
        except REDIS_ERRORS as exc:
            raise BackendUnavailable(f"Redis history read failed: {exc!r}") from exc
        if epoch is None:
            return EMPTY
        return Position(_text(epoch), int(last or 0))

    # -- health and lifetime -------------------------------------------------------------

    async def ping(self) -> None:
        try:
            await asyncio.wait_for(self._control.ping(), self._timeout)
        except REDIS_ERRORS as exc:
            raise BackendUnavailable(f"Redis ping failed: {exc!r}") from exc
        if not self.ready:
            raise BackendUnavailable("Redis subscriber is reconnecting")

    async def aclose(self) -> None:
        self._closed = True
        self._flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._flusher
        fail_publishes(self._pending, BackendUnavailable("broker closed"))
        self._pending = []
        if self._subscriber is not None:
            await self._disconnect(self._subscriber)
        await self._drop_publisher()
        await self._control.aclose()


async def read_history(
    script: AsyncScript, channel: str, since: Position, policy: HistoryPolicy, timeout: float
) -> tuple[StreamState, list[BrokerMessage]]:
    """lua/history_read.lua for one stream: its state and entries after ``since``."""
    after = since.offset if since.epoch else 0
    try:
        epoch, last, entries = await asyncio.wait_for(
            script(list(history_keys(channel)), [after, policy.size]), timeout
        )
    except REDIS_ERRORS as exc:
        raise BackendUnavailable(f"Redis history read failed: {exc!r}") from exc
    epoch = _text(epoch)
    found = [
        BrokerMessage(channel, fields[1], Position(epoch, int(entry_id.split(b"-")[1])))
        for entry_id, fields in entries
    ]
    first = found[0].position.offset if found and found[0].position else 0
    return StreamState(epoch, int(last), first), found


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _kind(reply: Any) -> bytes | None:
    """``message``, ``subscribe``, ... for a pub/sub push; raises an error reply."""
    if isinstance(reply, Exception):
        raise reply
    return reply[0] if isinstance(reply, list) and reply else None


def fail_publishes(
    batch: list[tuple[str, bytes, asyncio.Future[int]]], error: BaseException
) -> None:
    """Each publish still waiting raises ``error`` (both brokers' publishers use it)."""
    for *_, future in batch:
        if not future.done():
            future.set_exception(error)


def settle_publishes(
    batch: list[tuple[str, bytes, asyncio.Future[int]]], counts: list[Any]
) -> None:
    """Each publish gets how many subscribers its message reached."""
    for (*_, future), count in zip(batch, counts, strict=True):
        if not future.done():
            future.set_result(count if isinstance(count, int) else 0)


def consume_exception(future: asyncio.Future[Any]) -> None:
    """For a future nobody awaits: its exception is read, so asyncio does not log it."""
    if not future.cancelled():
        future.exception()
