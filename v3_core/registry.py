"""LocalRegistry: this node's connections, indexed by the channels they listen on. Pure.

Adding the first member of a channel and removing the last are the only moments a node
subscribes or unsubscribes; `add` and `remove` return exactly those channels.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from collections.abc import Set as AbstractSet
from typing import Any, Generic, TypeVar

C = TypeVar("C", bound=Hashable)


class LocalRegistry(Generic[C]):
    """channel -> local connections, plus connection -> its channels."""

    def __init__(self) -> None:
        self._members: dict[str, set[C]] = {}
        self._channels: dict[C, tuple[str, ...]] = {}
        self.changes = 0  # bumped by every add and remove: what was derived from it is stale

    def add(self, conn: C, channels: Iterable[str]) -> list[str]:
        """Register ``conn`` on ``channels``; return those that had no local member before."""
        if conn in self._channels:
            raise ValueError("connection already registered")
        names = tuple(dict.fromkeys(channels))
        self._channels[conn] = names
        self.changes += 1
        first: list[str] = []
        for channel in names:
            members = self._members.get(channel)
            if members is None:
                self._members[channel] = {conn}
                first.append(channel)
            else:
                members.add(conn)
        return first

    def remove(self, conn: C) -> list[str]:
        """Forget ``conn``; return the channels it was the last local member of."""
        last: list[str] = []
        self.changes += 1
        for channel in self._channels.pop(conn, ()):
            members = self._members[channel]
            members.discard(conn)
            if not members:
                del self._members[channel]
                last.append(channel)
        return last

    def members(self, channel: str) -> AbstractSet[C]:
        """The local connections listening on ``channel`` (empty when none)."""
        return self._members.get(channel, _EMPTY)

    def has_channel(self, channel: str) -> bool:
        return channel in self._members

    @property
    def channels(self) -> list[str]:
        return list(self._members)

    @property
    def connections(self) -> list[C]:
        return list(self._channels)

    def __len__(self) -> int:
        return len(self._channels)


_EMPTY: frozenset[Any] = frozenset()
