"""In-process backends: the single-node default, and real implementations for tests.

Several MemoryBroker instances sharing one MemoryHub behave like nodes sharing one Redis.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterable

from v3_core.streams import EMPTY, HistoryPolicy, Position, StreamState

from .base import BrokerEvent, BrokerMessage


class _Stream:
    """One channel's history: its epoch, last offset and newest messages."""

    __slots__ = ("entries", "epoch", "expires_at", "last")

    def __init__(self, size: int) -> None:
        self.epoch = secrets.token_hex(6)  # a new hub (a restarted node) starts new epochs
        self.last = 0
        self.entries: deque[tuple[int, bytes]] = deque(maxlen=size)
        self.expires_at = 0.0


class MemoryHub:
    """What in-process nodes share: subscriptions, stream histories and the presence table."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.subscribers: defaultdict[str, set[MemoryBroker]] = defaultdict(set)
        self.streams: dict[str, _Stream] = {}
        # group -> client -> conn -> expires at
        self.presence: defaultdict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        # (group, client) -> conn -> (expires at, positions)
        self.cursors: defaultdict[tuple[str, str], dict[str, tuple[float, str]]] = defaultdict(dict)

    def stream(self, channel: str) -> _Stream | None:
        """The channel's history, or None once it expired (its epoch is gone with it)."""
        stream = self.streams.get(channel)
        if stream is not None and stream.expires_at <= self.clock():
            del self.streams[channel]
            return None
        return stream


class MemoryBroker:
    """A Broker whose nodes live in one process."""

    def __init__(self, hub: MemoryHub | None = None, history: HistoryPolicy | None = None) -> None:
        self._hub = hub or MemoryHub()
        self.history = history or HistoryPolicy(size=0)
        self._queue: asyncio.Queue[BrokerEvent | None] = asyncio.Queue()
        self._channels: set[str] = set()
        self._closed = False

    @property
    def ready(self) -> bool:
        return not self._closed

    async def publish(self, channel: str, data: bytes) -> int:
        position = self._append(channel, data) if self.history.enabled else None
        message = BrokerMessage(channel, data, position)
        subscribers = self._hub.subscribers.get(channel, ())
        for broker in subscribers:
            broker._queue.put_nowait(message)
        return len(subscribers)

    def _append(self, channel: str, data: bytes) -> Position:
        hub, policy = self._hub, self.history
        stream = hub.stream(channel)
        if stream is None:
            stream = hub.streams[channel] = _Stream(policy.size)
        stream.last += 1
        stream.entries.append((stream.last, data))
        stream.expires_at = hub.clock() + policy.ttl
        return Position(stream.epoch, stream.last)

    async def history_after(
        self, channel: str, since: Position
    ) -> tuple[StreamState, list[BrokerMessage]]:
        stream = self._hub.stream(channel)
        if stream is None:
            return StreamState("", 0), []
        after = since.offset if since.epoch == stream.epoch else 0
        found = [
            BrokerMessage(channel, data, Position(stream.epoch, offset))
            for offset, data in stream.entries
            if offset > after
        ]
        first = found[0].position.offset if found and found[0].position else 0
        return StreamState(stream.epoch, stream.last, first), found

    async def position(self, channel: str) -> Position:
        stream = self._hub.stream(channel)
        return EMPTY if stream is None else Position(stream.epoch, stream.last)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        self._hub.subscribers[channel].add(self)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        subscribers = self._hub.subscribers.get(channel)
        if subscribers is not None:
            subscribers.discard(self)
            if not subscribers:
                del self._hub.subscribers[channel]

    async def events(self) -> AsyncIterator[BrokerEvent]:
        while (event := await self._queue.get()) is not None:
            yield event

    async def wait_ready(self, timeout: float) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        for channel in list(self._channels):
            await self.unsubscribe(channel)
        self._closed = True
        self._queue.put_nowait(None)


class MemoryPresenceStore:
    """A PresenceStore in a dict, with expiry read from an injectable clock."""

    def __init__(
        self, ttl: float, clock: Callable[[], float] = time.monotonic, hub: MemoryHub | None = None
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._groups = (hub or MemoryHub()).presence

    def _live_conns(self, group_id: str, client_id: str) -> dict[str, float]:
        now = self._clock()
        conns = self._groups[group_id].get(client_id, {})
        return {conn: at for conn, at in conns.items() if at > now}

    async def add(self, group_id: str, client_id: str, conn_id: str) -> bool:
        conns = self._live_conns(group_id, client_id)
        came_online = not conns
        conns[conn_id] = self._clock() + self.ttl
        self._groups[group_id][client_id] = conns
        return came_online

    async def remove(self, group_id: str, client_id: str, conn_id: str) -> bool:
        clients = self._groups.get(group_id)
        if clients is None or client_id not in clients:
            return False
        conns = self._live_conns(group_id, client_id)
        if conn_id not in conns:
            # Already expired (and announced by expire()) or never added.
            if not conns:
                self._forget(group_id, client_id)
            return False
        del conns[conn_id]
        if conns:
            clients[client_id] = conns
            return False
        self._forget(group_id, client_id)
        return True

    async def touch(self, entries: list[tuple[str, str, str]]) -> None:
        expires_at = self._clock() + self.ttl
        for group_id, client_id, conn_id in entries:
            self._groups[group_id].setdefault(client_id, {})[conn_id] = expires_at

    async def members(self, group_id: str) -> list[str]:
        clients = self._groups.get(group_id, {})
        return sorted(c for c in clients if self._live_conns(group_id, c))

    async def expire(self, group_id: str) -> list[str]:
        clients = self._groups.get(group_id, {})
        gone = [c for c in clients if not self._live_conns(group_id, c)]
        for client_id in gone:
            self._forget(group_id, client_id)
        return sorted(gone)

    async def sweep(self, group_ids: Iterable[str]) -> list[tuple[str, str]]:
        return [(g, c) for g in group_ids for c in await self.expire(g)]

    def _forget(self, group_id: str, client_id: str) -> None:
        clients = self._groups[group_id]
        clients.pop(client_id, None)
        if not clients:
            del self._groups[group_id]

    async def aclose(self) -> None:
        return None


class MemoryCursorStore:
    """A CursorStore in the hub, so in-process nodes share it as nodes share one Redis."""

    def __init__(self, ttl: float, hub: MemoryHub | None = None) -> None:
        self.ttl = ttl
        self._hub = hub or MemoryHub()

    async def save(self, group_id: str, client_id: str, conn_id: str, positions: str) -> None:
        self._hub.cursors[group_id, client_id][conn_id] = (self._hub.clock() + self.ttl, positions)

    async def entries(self, group_id: str, client_id: str) -> dict[str, str]:
        now = self._hub.clock()
        held = self._hub.cursors.get((group_id, client_id), {})
        return {conn: positions for conn, (until, positions) in held.items() if until > now}

    async def discard(self, group_id: str, client_id: str, conn_id: str) -> None:
        key = (group_id, client_id)
        held = self._hub.cursors.get(key)
        if held is not None:
            held.pop(conn_id, None)
            if not held:
                del self._hub.cursors[key]

    async def aclose(self) -> None:
        return None
