"""Channel names and the envelope nodes exchange over the broker. Pure: no I/O.

Only this module knows how channels are spelled. A node subscribes to one channel per local
group, one per local client, the broadcast channel and its own node channel (liveness probe).
"""

from __future__ import annotations

from dataclasses import dataclass

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


ENVELOPE = "aether/1"  # format and major version; a node reads its own major only


class UnreadableEnvelope(ValueError):
    """What came over the broker is not an envelope this node can read, or its body is not
    a V3 message: it is counted and dropped, never sent to a client."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """What travels between nodes: the encoded V3 text plus routing facts it does not carry.

    ``skip_conn`` is the sending connection for ``direct`` (the sender gets no copy even when
    it messages its own client ID); ``from_legacy``/``group_legacy`` are the integer IDs the
    V2 outbound translator shows legacy clients, so receivers never look them up.

    On the wire: ``aether/1 o=<origin> [s=<skip>] [f=<from>] [g=<group>]``, a newline, then
    the V3 JSON text. Keys a node does not know are ignored, so a newer release can add one
    and an older node still reads the rest; a new major version is for what cannot be read
    that way.
    """

    origin: str
    text: str
    skip_conn: str = ""
    from_legacy: str = ""
    group_legacy: str = ""

    def pack(self) -> bytes:
        fields = [ENVELOPE, f"o={self.origin}"]
        for key, value in (
            ("s", self.skip_conn),
            ("f", self.from_legacy),
            ("g", self.group_legacy),
        ):
            if value:
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
        return cls(
            origin=values.get("o", ""),
            text=text,
            skip_conn=values.get("s", ""),
            from_legacy=values.get("f", ""),
            group_legacy=values.get("g", ""),
        )
