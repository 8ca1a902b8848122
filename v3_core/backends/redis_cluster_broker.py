"""ClusterBroker: sharded pub/sub on a Redis Cluster (SPUBLISH/SSUBSCRIBE, Redis >= 7).

A cluster relays every classic PUBLISH to every node over its bus, so classic pub/sub does not
grow with the cluster. A shard channel lives in its slot: SPUBLISH goes to the shard that owns
the slot and reaches only that shard's subscribers. This broker holds one subscriber connection
per shard that owns a channel this node wants, and follows a channel when its slot moves: a
failover (the connection drops), a migration (the server pushes ``sunsubscribe``, or answers
MOVED), or any change of the slot map. Each move is a Discontinuity for the channels it
touched, so their gaps are filled from history or announced, never silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import redis.exceptions
from redis.crc import key_slot

from v3_core.errors import BackendUnavailable
from v3_core.streams import HistoryPolicy, Position, StreamState

from .base import RECONNECTED, RESTARTED, BrokerEvent, BrokerMessage, Discontinuity
from .redis_client import REDIS_ERRORS, backend_errors, cluster_client, parse_cluster_url
from .redis_cluster_publisher import REDIRECTED, ClusterPublisher
from .redis_history import framed, history_script, read_history, read_position
from .redis_pipe import consume_exception
from .redis_slots import SlotMap
from .redis_subscriptions import Probes
from .redis_wire import RedisWire

log = logging.getLogger("aether.broker")

_REROUTE_PAUSE = 0.2  # seconds between attempts to place channels while a slot has no owner


class _Moved(BackendUnavailable):
    """The node answered MOVED or ASK: the slot map is out of date."""


class _Dropped(BackendUnavailable):
    """The shard connection went away before confirming."""


class _Shard:
    """One subscriber connection to the node that owns some slots, and its channels."""

    def __init__(self, name: str, wire: RedisWire, probe_channel: str) -> None:
        self.name = name
        self.wire = wire
        self.probe_channel = probe_channel
        self.channels: set[str] = set()
        self.leaving: set[str] = set()  # SUNSUBSCRIBE sent, not yet confirmed
        self.pending: deque[tuple[str, asyncio.Future[None]]] = deque()  # SSUBSCRIBEs sent
        self.reader: asyncio.Task[None] | None = None


class ClusterBroker:
    """A Broker over a Redis Cluster's shard channels."""

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
        self._credentials = parse_cluster_url(url)
        self.history = history or HistoryPolicy(size=0)
        self._cluster = cluster_client(url, timeout=timeout)
        self._slots = SlotMap(self._cluster, timeout=timeout)
        self._read_history = self._cluster.register_script(history_script("read"))
        self._wanted: set[str] = set()
        self._shards: dict[str, _Shard] = {}
        self._connecting: dict[str, asyncio.Task[_Shard]] = {}
        self._events: asyncio.Queue[BrokerEvent | None] = asyncio.Queue()
        self._rerouting: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._publisher = ClusterPublisher(
            self._slots,
            self._credentials,
            node_channel=node_channel,
            timeout=timeout,
            history=self.history,
        )
        self._closed = False

    # -- readiness -----------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._slots.ready.is_set() and not self._rerouting

    async def wait_ready(self, timeout: float) -> None:
        await asyncio.wait_for(self._slots.ready.wait(), timeout)

    async def ping(self) -> None:
        with backend_errors("Redis Cluster ping failed"):
            await asyncio.wait_for(self._cluster.ping(), self._timeout)
        if not self.ready:
            raise BackendUnavailable("Redis Cluster subscriber is moving channels")

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, channel: str, data: bytes) -> int:
        if self._closed:
            raise BackendUnavailable("broker closed")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._publisher.put((channel, data, future))
        return await future

    async def history_after(
        self, channel: str, since: Position
    ) -> tuple[StreamState, list[BrokerMessage]]:
        return await read_history(self._read_history, channel, since, self.history, self._timeout)

    async def position(self, channel: str) -> Position:
        return await read_position(self._hmget, channel, self._timeout)

    async def _hmget(self, key: str, *fields: str) -> Any:
        return await self._cluster.hmget(key, list(fields))

    # -- subscriptions -------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        """Return once ``channel`` is live on the shard that owns its slot."""
        self._wanted.add(channel)
        try:
            async with asyncio.timeout(self._timeout * 2):
                await self._place(channel)
        except TimeoutError:
            raise BackendUnavailable(f"Redis Cluster subscribe of {channel} timed out") from None

    async def _place(self, channel: str) -> None:
        """SSUBSCRIBE ``channel`` where its slot lives, following MOVED and dropped shards."""
        while True:
            await self._slots.start()
            try:
                shard = await self._shard_for(channel)
                if channel in shard.channels:
                    return
                future = asyncio.get_running_loop().create_future()
                future.add_done_callback(consume_exception)
                shard.pending.append((channel, future))
                shard.wire.send(("SSUBSCRIBE", channel))
                await asyncio.shield(future)  # _confirmed records the channel on the shard
                return
            except _Moved:
                await self._slots.refresh()
            except (_Dropped, *REDIS_ERRORS) as exc:
                log.debug("placing %s: %r; trying again", channel, exc)
                await asyncio.sleep(_REROUTE_PAUSE)
                await self._slots.refresh()

    async def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        for shard in self._shards.values():
            if channel in shard.channels:
                self._leave(shard, channel)

    def _leave(self, shard: _Shard, channel: str) -> None:
        shard.channels.discard(channel)
        shard.leaving.add(channel)
        with contextlib.suppress(*REDIS_ERRORS):
            shard.wire.send(("SUNSUBSCRIBE", channel))

    # -- shards --------------------------------------------------------------------------

    async def _shard_for(self, channel: str) -> _Shard:
        name, host, port = self._slots.owner(channel)
        shard = self._shards.get(name)
        if shard is not None and not shard.wire.closed:
            return shard
        task = self._connecting.get(name)
        if task is None:
            task = self._connecting[name] = asyncio.create_task(self._connect(name, host, port))
            task.add_done_callback(lambda _: self._connecting.pop(name, None))
        return await asyncio.shield(task)

    async def _connect(self, name: str, host: str, port: int) -> _Shard:
        url = self._credentials.node_url(host, port)
        wire = await RedisWire.open(url, timeout=self._timeout, name=f"{self._node_channel}:sub")
        probe_channel = self._probe_channel(name)
        shard = _Shard(name, wire, probe_channel)
        try:
            shard.pending.append((probe_channel, asyncio.get_running_loop().create_future()))
            wire.send(("SSUBSCRIBE", probe_channel))
            while shard.pending:
                self._dispatch(shard, await wire.replies())
        except BaseException:
            await wire.aclose()
            raise
        self._shards[name] = shard
        shard.reader = self._spawn(self._read(shard), f"shard-{name}")
        return shard

    def _probe_channel(self, name: str) -> str:
        """A channel of this node's in a slot the shard owns, for its liveness probes."""
        manager = self._cluster.nodes_manager
        for n in range(10_000):
            channel = f"{self._node_channel}:{n}"
            if manager.get_node_from_slot(key_slot(channel.encode())).name == name:
                return channel
        return self._node_channel  # not reached with 16384 slots over a few shards

    async def _read(self, shard: _Shard) -> None:
        loop = asyncio.get_running_loop()
        probes = Probes(self._probe_interval, self._timeout, loop.time())
        try:
            while True:
                now = loop.time()
                if shard.wire.closed:
                    raise redis.exceptions.ConnectionError("connection dropped")
                if probes.overdue(now):
                    raise redis.exceptions.TimeoutError("probe not echoed")
                if (probe := probes.due(now)) is not None:
                    self._spawn(self._send_probe(shard.probe_channel, probe), "probe")
                wait = max(probes.next_deadline() - loop.time(), 0.0) + 0.001
                try:
                    async with asyncio.timeout(wait):
                        replies = await shard.wire.replies()
                except TimeoutError:
                    if not shard.wire.unread():
                        continue  # the probes' turn
                    replies = await shard.wire.replies_within(self._timeout)  # a busy loop
                probes.heard(loop.time())
                self._dispatch(shard, replies, probes, loop.time())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("Redis Cluster shard %s lost: %r; moving its channels", shard.name, exc)
            await self._drop(shard)

    async def _send_probe(self, channel: str, data: bytes) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await self._cluster.spublish(channel, data)

    def _dispatch(
        self,
        shard: _Shard,
        replies: list[Any],
        probes: Probes | None = None,
        now: float = 0.0,
    ) -> None:
        for reply in replies:
            if isinstance(reply, Exception):
                self._refused(shard, reply)
                continue
            kind = reply[0] if isinstance(reply, list) and reply else None
            if kind == b"smessage":
                channel = reply[1].decode()
                if channel == shard.probe_channel:
                    if probes is not None:
                        probes.echo(reply[2], now)
                else:
                    self._events.put_nowait(framed(reply[1], reply[2]))
            elif kind == b"ssubscribe":
                self._confirmed(shard, reply[1].decode())
            elif kind == b"sunsubscribe":
                channel = reply[1].decode()
                if channel in shard.leaving:
                    shard.leaving.discard(channel)
                elif channel in shard.channels:
                    # Pushed by the server: the slot moved away (a migration).
                    shard.channels.discard(channel)
                    self._move([channel], RECONNECTED)

    def _confirmed(self, shard: _Shard, channel: str) -> None:
        """Redis holds ``channel`` on this shard now, whether or not its subscribe still
        waits: one that gave up (the timeout) and left would otherwise leave it subscribed
        and untracked, its traffic read for nobody."""
        for item in shard.pending:
            if item[0] == channel:
                shard.pending.remove(item)
                if not item[1].done():
                    item[1].set_result(None)
                break
        else:
            return
        if channel == shard.probe_channel:
            return
        shard.channels.add(channel)
        if channel not in self._wanted:  # left while it was being placed
            self._leave(shard, channel)

    def _refused(self, shard: _Shard, error: Exception) -> None:
        """An error answers the oldest SSUBSCRIBE still waiting (MOVED: the map is stale)."""
        if not shard.pending:
            log.warning("Redis Cluster shard %s: %r", shard.name, error)
            return
        _, future = shard.pending.popleft()
        moved = str(error).startswith(REDIRECTED)
        if not future.done():
            future.set_exception(_Moved(str(error)) if moved else _Dropped(str(error)))

    async def _drop(self, shard: _Shard) -> None:
        if self._shards.get(shard.name) is shard:
            del self._shards[shard.name]
        for _, future in shard.pending:
            if not future.done():
                future.set_exception(_Dropped("shard connection lost"))
        await shard.wire.drop(self._timeout)
        # Back on the same node (a dropped connection): its history is intact, so the gap is
        # filled. On another node (a failover), whose data may lag what this node delivered,
        # it counts as a restart: announce, never assume.
        self._move(list(shard.channels), RESTARTED, same_node=shard.name)

    def _move(self, channels: list[str], reason: str, same_node: str | None = None) -> None:
        wanted = [c for c in channels if c in self._wanted and c not in self._rerouting]
        if not wanted:
            return
        self._rerouting.update(wanted)
        self._spawn(self._reroute(wanted, reason, same_node), "reroute")

    async def _reroute(self, channels: list[str], reason: str, same_node: str | None) -> None:
        """Place ``channels`` again (retrying while the cluster elects), then announce: as
        RECONNECTED those that came back to ``same_node``, as ``reason`` the others."""
        try:
            while not self._closed:
                try:
                    await self._slots.refresh()
                    await asyncio.gather(*(self._place(c) for c in channels if c in self._wanted))
                    break
                except (*REDIS_ERRORS, BackendUnavailable) as exc:
                    log.debug("rerouting %d channels: %r", len(channels), exc)
                    await asyncio.sleep(_REROUTE_PAUSE)
        finally:
            self._rerouting.difference_update(channels)
        back = {
            c for c in channels if same_node is not None and self._slots.owner(c)[0] == same_node
        }
        for kind, moved in ((RECONNECTED, back), (reason, set(channels) - back)):
            if moved:
                log.warning("Redis Cluster: %d channels placed again (%s)", len(moved), kind)
                self._events.put_nowait(Discontinuity(kind, frozenset(moved)))

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- events and lifetime -------------------------------------------------------------

    async def events(self) -> AsyncIterator[BrokerEvent]:
        with contextlib.suppress(BackendUnavailable):
            await self._slots.start()
        while (event := await self._events.get()) is not None:
            yield event

    async def aclose(self) -> None:
        self._closed = True
        await self._publisher.aclose(BackendUnavailable("broker closed"))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for shard in list(self._shards.values()):
            with contextlib.suppress(Exception):
                await shard.wire.aclose()
        self._shards.clear()
        self._events.put_nowait(None)
        await self._cluster.aclose()
