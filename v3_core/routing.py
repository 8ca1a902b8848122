"""Channel names and the envelope nodes exchange over the broker. Pure: no I/O.

Only this module knows how channels are spelled. A node subscribes to one channel per local
group, one per local client, the broadcast channel and its own node channel (liveness probe).
"""

from __future__ import annotations

from dataclasses import dataclass

from .messages import MessageV3
from .streams import StreamName

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


@dataclass(frozen=True, slots=True)
class Envelope:
    """What travels between nodes: the encoded V3 text plus routing facts it does not carry.

    ``skip_conn`` is the sending connection for ``direct`` (the sender gets no copy even when
    it messages its own client ID); ``from_legacy``/``group_legacy`` are the integer IDs the
    V2 outbound translator shows legacy clients, so receivers never look them up.
    """

    origin: str
    text: str
    skip_conn: str = ""
    from_legacy: str = ""
    group_legacy: str = ""

    def pack(self) -> bytes:
        fields = (self.origin, self.skip_conn, self.from_legacy, self.group_legacy)
        header = " ".join(field or "-" for field in fields)
        return f"{header}\n{self.text}".encode()

    @classmethod
    def unpack(cls, data: bytes) -> Envelope:
        """Inverse of pack(); raises ValueError on anything else."""
        header, _, body = data.partition(b"\n")
        origin, skip, from_legacy, group_legacy = header.decode().split(" ")
        return cls(
            origin=origin,
            text=body.decode(),
            skip_conn="" if skip == "-" else skip,
            from_legacy="" if from_legacy == "-" else from_legacy,
            group_legacy="" if group_legacy == "-" else group_legacy,
        )
