"""What ``async for item in client`` yields besides ``MessageV3``.

Stream and echo messages are ``v3_core.messages.MessageV3``, the model the gateway itself
validates with (strict: it is what the server sends). Three frames are not messages a client
could send, so they get small types of their own instead of a loosened model:

- ``ServerError``: an ``error`` reply (``msg_type`` ``error`` is server-only, the model
  refuses it);
- ``Resync``: "messages of a stream may have been lost, refetch what you derive from it";
- ``UnknownFrame``: a frame this version cannot read (a newer server's field, say), handed
  over raw instead of ending the session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

from v3_core.messages import MessageV3

Stream = Literal["group", "client", "broadcast"]
STREAMS: tuple[Stream, ...] = ("group", "client", "broadcast")
# Which stream a message belongs to, by its target (guide section 10).
STREAM_OF_TARGET: dict[str, Stream] = {
    "group": "group",
    "direct": "client",
    "broadcast": "broadcast",
}


@dataclass(frozen=True, slots=True)
class ServerError:
    """One message this connection sent was rejected (guide section 5); the socket stays open.

    Program against ``code`` (``invalid-field``, ``rate-limited``, ``publish-failed``, ...);
    ``msg`` is for people. ``payload`` holds ``code`` and any extra detail (``retry_after``).
    """

    code: str
    msg: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resync:
    """Messages of ``stream`` (all streams when ``None``) may have been lost: refetch.

    ``local`` is False for the server's notice (guide section 9; ``reason`` is
    ``broker-reconnected``, ``broker-restarted`` or ``history-gap``). It is True for the one
    this client adds after a reconnect for a stream it had no position in, so could not name in
    ``?recover=`` (``reason`` ``not-recovered``): what that stream carried meanwhile is lost.
    """

    reason: str
    stream: Stream | None = None
    local: bool = False
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """A frame that is neither a valid ``MessageV3`` nor one of the server's own replies."""

    raw: str
    error: str


Item: TypeAlias = MessageV3 | ServerError | Resync | UnknownFrame
