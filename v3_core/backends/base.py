"""The two backend roles, as Protocols whose docstrings are their contract.

The core fans out; a broker only moves bytes between nodes and a presence store only keeps
who is online. Each role has a memory implementation (one process) and a Redis one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class BrokerMessage:
    """Bytes published on a channel this node subscribes to."""

    channel: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Discontinuity:
    """The broker may have lost messages (it reconnected): subscribers should resync."""

    reason: str


BrokerEvent = BrokerMessage | Discontinuity


class Broker(Protocol):
    """Moves bytes between nodes; never fans out to connections itself.

    - ``publish`` returns once the message is handed to every node subscribed at that moment,
      or raises BackendUnavailable; it never drops silently.
    - ``subscribe`` is idempotent and returns once the subscription is active, so anything
      published afterwards is delivered; ``unsubscribe`` is idempotent.
    - ``events()`` has one consumer (the manager). Messages of one publisher arrive in order.
      When the broker loses its connection it re-subscribes every channel it holds on its
      own and yields a Discontinuity, because messages published meanwhile are gone.
    """

    async def publish(self, channel: str, data: bytes) -> None: ...
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


@dataclass(frozen=True, slots=True)
class Backends:
    """What `open_backends` gives the manager; typing it checks both implementations."""

    broker: Broker
    presence: PresenceStore
    description: str
