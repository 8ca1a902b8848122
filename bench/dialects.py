"""Wire dialects the load generator speaks: how to send a bench message, how to find one.

Every dialect carries the same bench payload ``{"t": send_ns, "s": sender, "k": step}``; ``t`` is
CLOCK_MONOTONIC, which every process on the machine shares, so latency is receive minus ``t``.
Frames that carry no bench payload (presence, heartbeats, errors) return ``None`` and are not
counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson

BODY = "the quick brown fox jumps over the lazy dog"


class Received(NamedTuple):
    """A bench payload, and when the server stamped it (``sent_at``, CLOCK_REALTIME ns; 0 if
    the message carries no stamp): the stamp splits the latency into its two hops."""

    payload: dict[str, Any]
    stamped_ns: int


_stamps: dict[str, int] = {}


def stamp_ns(sent_at: object) -> int:
    """``sent_at`` (ISO 8601, as every system under test writes it) in ns, or 0.

    Every recipient of a message gets the same stamp, so parsing is memoised: the client's
    CPU is shared with the servers under test.
    """
    if not isinstance(sent_at, str):
        return 0
    found = _stamps.get(sent_at)
    if found is None:
        try:
            found = round(datetime.fromisoformat(sent_at).timestamp() * 1e6) * 1000
        except ValueError:
            found = 0
        if len(_stamps) >= 4096:
            _stamps.clear()
        _stamps[sent_at] = found
    return found


@dataclass(frozen=True)
class Dialect:
    """``path`` has ``{group}``/``{client}`` slots; ``prefix``/``suffix`` wrap the payload JSON."""

    name: str
    path: str
    prefix: bytes
    suffix: bytes
    envelope: str
    payload_key: str
    socketio: bool = False

    def frame(self, sender: int, step: int, sent_ns: int) -> bytes:
        """The text frame a client sends for one bench message."""
        payload = orjson.dumps({"t": sent_ns, "s": sender, "k": step, "body": BODY})
        return self.prefix + payload + self.suffix

    def bench_payload(self, data: bytes) -> Received | None:
        """The bench payload inside a received frame, or ``None`` if it carries none."""
        if b'"t":' not in data:  # presence, heartbeats, Engine.IO control: skip the parse
            return None
        try:
            if self.socketio:
                event = orjson.loads(data[2:]) if data.startswith(b"42") else None
                message = event[1] if event and len(event) > 1 and event[0] == "msg" else None
            else:
                message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(message, dict):
            return None
        inner = message.get(self.payload_key)
        if isinstance(inner, dict) and "t" in inner and message.get(self.envelope) == "msg":
            return Received(inner, stamp_ns(message.get("sent_at")))
        return None


V3 = Dialect(
    "v3",
    "/v3/ws/group/{group}/client/{client}",
    b'{"msg_type":"msg","target":"group","payload":',
    b"}",
    "msg_type",
    "payload",
)
V2 = Dialect(
    "v2", "/ws/group/{group}/client/{client}", b'{"msg":"bench","data":', b"}", "type", "data"
)
SOCKETIO = Dialect(
    "socketio",
    "/socket.io/?EIO=4&transport=websocket",
    b'42["msg",',
    b"]",
    "msg_type",
    "payload",
    socketio=True,
)

DIALECTS = {d.name: d for d in (V3, V2, SOCKETIO)}
