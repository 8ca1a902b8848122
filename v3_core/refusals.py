"""Where the manager reports what it could not pass on, for ops to inspect (dead letters).

Called only on a refusal, never on the delivery path; an implementation must not block or do
I/O in the call (bridge/dead_letters.py buffers and flushes in the background).
"""

from __future__ import annotations

from typing import Protocol

from .backends.base import BrokerMessage
from .connection import Connection
from .errors import MessageRejected


class RefusalSink(Protocol):
    def frame_refused(self, conn: Connection, text: str, rejected: MessageRejected) -> None:
        """A legacy client's frame was answered with an error reply instead of being sent."""
        ...

    def frame_too_big(self, conn: Connection) -> None:
        """A legacy client sent a frame over the size limit; the server closed it with 1009."""
        ...

    def broker_unreadable(self, message: BrokerMessage, reason: str) -> None:
        """A broker message this node could not read: no local client was given it."""
        ...

    def no_recipient(self, channel: str, text: str, origin: Connection | None) -> None:
        """A direct message reached no node: its client was connected nowhere. History keeps
        it for the client's next recovery, if it comes back within the TTL."""
        ...

    def slow_consumer(self, conn: Connection, undelivered: str | None) -> None:
        """A connection closed with 4008; ``undelivered`` is the first message it lost."""
        ...
