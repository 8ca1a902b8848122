"""Channel names and the envelope nodes exchange over the broker. Pure: no I/O.

Only this module knows how channels are spelled. A node subscribes to one channel per local
group, one per local client, the broadcast channel and its own node channel (liveness probe).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import orjson

from .messages import MessageV3
from .streams import Position, StreamName

ECHO = None  # route() result for a message that never leaves its connection


@dataclass(frozen=True, slots=True)
class Channels:
    """Channel names under one prefix, so tenants of one Redis (and tests) never collide."""

    prefix: str = "aether:"

    def group(self, group_id: str) -> str:
        return f"{self.prefix}g:{group_id}"

    def client(self, client_id: str) -> str:
        return f"{self.prefix}c:{client_id}"

    @property
    def broadcast(self) -> str:
        return f"{self.prefix}b"

    def node(self, node_id: str) -> str:
        return f"{self.prefix}n:{node_id}"

    def streams(self, group_id: str, client_id: str) -> dict[StreamName, str]:
        """A connection's three streams and their channels."""
        return {
            "group": self.group(group_id),
            "client": self.client(client_id),
            "broadcast": self.broadcast,
        }

    def by_channel(
        self, group_id: str, client_id: str, positions: dict[StreamName, Position]
    ) -> dict[str, Position]:
        """Positions named by stream (``recover=``) keyed by their channels instead."""
        channels = self.streams(group_id, client_id)
        return {channels[name]: position for name, position in positions.items()}

    def stream_name(self, channel: str) -> StreamName:
        """Which of a client's streams ``channel`` carries, as ``recover=`` names it."""
        kind = channel[len(self.prefix) : len(self.prefix) + 2]
        return "group" if kind == "g:" else "client" if kind == "c:" else "broadcast"

    def route(self, message: MessageV3) -> str | None:
        """The one channel a message is published on, or None (ECHO) for echo."""
        target = message.target
        if target == "group":
            assert message.group_id is not None, "stamp() or the HTTP API sets group_id"
            return self.group(message.group_id)
        if target == "direct":
            assert message.to_id is not None, "the model requires to_id for direct"
            return self.client(message.to_id)
        if target == "broadcast":
            return self.broadcast
        return ECHO


Tags = Mapping[str, str]
"""What a dialect attaches to a connection and to the messages it sends, opaque to the core.

The core carries them from the sending connection through the broker to every node's renderer
and never reads them (as centrifuge carries a publication's tags). A key or value holds no
space, ``=`` or newline, and ``o`` and ``s`` are the envelope's own keys.
"""

NO_TAGS: Tags = MappingProxyType({})  # shared by every connection and message without tags

ENVELOPE = "aether/1"  # format and major version; a node reads its own major only


class UnreadableEnvelope(ValueError):
    """What came over the broker is not an envelope this node can read, or its body is not
    a V3 message: it is counted and dropped, never sent to a client."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """What travels between nodes: the encoded V3 text plus routing facts it does not carry.

    ``skip_conn`` is the sending connection for ``direct`` (the sender gets no copy even when
    it messages its own client ID); ``tags`` are the sending connection's (`Tags`), so the
    dialects that render the message on other nodes never look them up.

    On the wire: ``aether/1 o=<origin> [s=<skip>] [<tag>=<value> ...]``, a newline, then the
    V3 JSON text. Every key but ``o`` and ``s`` is a tag, and a dialect reads only the tags it
    knows: a newer release can add one and an older node still reads the rest (the legacy
    dialect's ``f`` and ``g`` read the same before tags had a name). A new major version is
    for what cannot be read that way.
    """

    origin: str
    text: str
    skip_conn: str = ""
    tags: Tags = field(default_factory=lambda: NO_TAGS)

    def pack(self) -> bytes:
        fields = [ENVELOPE, f"o={self.origin}"]
        if self.skip_conn:
            fields.append(f"s={self.skip_conn}")
        for key, value in self.tags.items():
            fields.append(f"{key}={value}")
        return f"{' '.join(fields)}\n{self.text}".encode()

    @classmethod
    def unpack(cls, data: bytes) -> Envelope:
        """Inverse of pack(); raises UnreadableEnvelope on anything else, including a body
        that is not a JSON object with ``version`` "3"."""
        header, newline, body = data.partition(b"\n")
        if not newline:
            raise UnreadableEnvelope("no header line")
        version, *fields = header.decode("utf-8", "replace").split(" ")
        if version != ENVELOPE:
            raise UnreadableEnvelope(f"envelope format {version[:24]!r}, not {ENVELOPE!r}")
        values = dict(field.partition("=")[::2] for field in fields)
        try:
            text = body.decode()
            message = orjson.loads(body)
        except (UnicodeDecodeError, orjson.JSONDecodeError) as exc:
            raise UnreadableEnvelope(f"body is not JSON: {exc}") from None
        if not isinstance(message, dict) or message.get("version") != "3":
            raise UnreadableEnvelope('body is not a V3 message (version "3")')
        origin, skip_conn = values.pop("o", ""), values.pop("s", "")
        return cls(origin, text, skip_conn, values or NO_TAGS)
