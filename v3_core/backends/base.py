"""The two backend roles, as Protocols whose docstrings say what every implementation promises.

The core fans out; a broker only moves bytes between nodes and a presence store only keeps
who is online. Each role has a memory implementation (one process) and a Redis one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Protocol

from v3_core.streams import HistoryPolicy, Position, StreamState


@dataclass(frozen=True, slots=True)
class BrokerMessage:
    """Bytes published on a channel this node subscribes to, at their stream position
    (None when history is off)."""

    channel: str
    data: bytes
    position: Position | None = None


@dataclass(frozen=True, slots=True)
class Discontinuity:
    """The broker may have lost messages (it reconnected): on ``channels``, or on every
    channel when None. With ``RECONNECTED`` the data in Redis is intact (history can fill
    the gap); any other reason means it may not be."""

    reason: str
    channels: frozenset[str] | None = None


BrokerEvent = BrokerMessage | Discontinuity

# Discontinuity reasons (clients see them as the resync notice's payload.reason).
RECONNECTED = "broker-reconnected"  # the connection was lost; Redis kept its state
RESTARTED = "broker-restarted"  # Redis restarted: messages and every key (presence) are gone


class Broker(Protocol):
    """Moves bytes between nodes; never fans out to connections itself.

    - ``publish`` returns once the message is handed to every node subscribed at that moment,
      or raises BackendUnavailable; it never drops silently.
    - ``subscribe`` is idempotent and returns once the subscription is active, so anything
      published afterwards is delivered; ``unsubscribe`` is idempotent.
    - ``events()`` has one consumer (the manager). Messages of one publisher arrive in order.
      When the broker loses its connection it re-subscribes every channel it holds on its
      own and yields a Discontinuity, because messages published meanwhile are gone.
    - With history on (``history.size`` > 0) every channel published to is a stream:
      ``publish`` numbers the message and appends it to the channel's history in the same
      atomic step as the publish, so no node sees a live message history lacks; messages of
      a channel reach every subscriber in offset order. Off, positions are None.
    """

    history: HistoryPolicy

    async def publish(self, channel: str, data: bytes) -> int:
        """Send ``data`` to the channel's subscribers; how many there were (0: no node holds
        the channel, so no client was given it). Raises BackendUnavailable."""
        ...

    async def history_after(
        self, channel: str, since: Position
    ) -> tuple[StreamState, list[BrokerMessage]]:
        """The stream's state and its messages after ``since.offset`` (at most
        ``history.size``, oldest first; all of them when ``since.epoch`` is ""). Whether they
        cover the gap is ``streams.covers``' call. Raises BackendUnavailable."""
        ...

    async def position(self, channel: str) -> Position:
        """The stream's newest position; ``streams.EMPTY`` when it has no history."""
        ...

    async def subscribe(self, channel: str) -> None: ...
    async def unsubscribe(self, channel: str) -> None: ...
    def events(self) -> AsyncIterator[BrokerEvent]: ...
    @property
    def ready(self) -> bool:
        """True while the broker is connected and its subscriptions are in place."""
        ...

    async def wait_ready(self, timeout: float) -> None:
        """Return once ready; raise TimeoutError after ``timeout`` seconds."""
        ...

    async def ping(self) -> None: ...
    async def aclose(self) -> None: ...


class PresenceStore(Protocol):
    """Who is online, per group, keyed by connection so a client's tabs count once.

    Every entry expires ``ttl`` seconds after it was last added or touched, so the entries of
    a node that died without cleaning up age out. ``add`` returns True when the client came
    online in the group (its first live connection); ``remove`` returns True when it went
    offline (its last). ``expire`` removes the clients of a group whose every connection has
    expired and returns them, each to exactly one caller even across nodes, so each gets one
    leave event; ``sweep`` does that for many groups at once, as ``(group, client)`` pairs.
    """

    async def add(self, group_id: str, client_id: str, conn_id: str) -> bool: ...
    async def remove(self, group_id: str, client_id: str, conn_id: str) -> bool: ...
    async def touch(self, entries: list[tuple[str, str, str]]) -> None: ...
    async def members(self, group_id: str) -> list[str]: ...
    async def expire(self, group_id: str) -> list[str]: ...
    async def sweep(self, group_ids: Iterable[str]) -> list[tuple[str, str]]: ...
    async def aclose(self) -> None: ...


class CursorStore(Protocol):
    """Where a legacy connection leaves the positions it delivered when it ends, so the next
    connect of the same group and client, on any node, replays what it missed.

    Entries are keyed by connection and expire ``ttl`` seconds after they were saved; a
    client with several connections leaves several.
    """

    async def save(self, group_id: str, client_id: str, conn_id: str, positions: str) -> None: ...
    async def entries(self, group_id: str, client_id: str) -> dict[str, str]: ...
    async def discard(self, group_id: str, client_id: str, conn_id: str) -> None: ...
    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Backends:
    """What `open_backends` gives the manager; typing it checks both implementations."""

    broker: Broker
    presence: PresenceStore
    cursors: CursorStore
    description: str
