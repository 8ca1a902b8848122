"""Reading one frame from the gateway, with the gateway's own models of what it sends.

Every frame is validated against ``v3_core.server_messages.ServerMessage`` (the models the
server builds its frames with, published as ``$defs`` of docs/ws-message-v3.schema.json). A
frame outside them (a newer gateway's error code or field, say) is still read leniently, so
an app never misses an error reply or a resync because of it, and is counted as off-schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import orjson
from pydantic import ValidationError

from v3_core.messages import MessageV3
from v3_core.server_messages import (
    ErrorMessage,
    HeartbeatMessage,
    PresenceListMessage,
    ResyncMessage,
    parse_server_frame,
)

from .items import STREAMS, Resync, ServerError, UnknownFrame


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    """The echo of a heartbeat (consumed by the client, not yielded)."""

    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class MemberList:
    """The answer to a presence echo (consumed by ``members()``, not yielded)."""

    clients: list[str]


Read: TypeAlias = MessageV3 | ServerError | Resync | UnknownFrame | HeartbeatAck | MemberList


def read_frame(frame: str | bytes) -> tuple[Read, bool]:
    """What ``frame`` is, and whether it matched the server's models (False: read leniently)."""
    try:
        message = parse_server_frame(frame)
    except ValidationError as exc:
        return _lenient(frame, exc), False
    match message:
        case HeartbeatMessage():
            return HeartbeatAck(message.sent_at), True
        case PresenceListMessage():
            return MemberList(list(message.payload.clients)), True
        case ResyncMessage():
            payload = message.payload
            return Resync(payload.reason, payload.stream, sent_at=message.sent_at), True
        case ErrorMessage():
            details = message.payload.model_dump(exclude_none=True)
            return ServerError(message.payload.code, message.msg, details), True
        case _:
            # Stream and echo messages, presence events: all of them are MessageV3, the model
            # apps program against; the shape was checked above, so nothing is validated twice.
            return MessageV3.model_construct(**message.model_dump(exclude_none=True)), True


def _lenient(frame: str | bytes, exc: ValidationError) -> Read:
    """Read a frame outside the models by its shape alone, as far as it is a V3 message."""
    text = frame if isinstance(frame, str) else frame.decode(errors="replace")
    try:
        message = MessageV3.model_validate_json(frame)
    except ValidationError:
        pass
    else:
        payload = message.payload or {}
        if message.target == "echo" and message.from_id is None and message.cmd == "resync":
            stream = payload.get("stream")
            reason = str(payload.get("reason", ""))
            known = stream if stream in STREAMS else None
            return Resync(reason, known, sent_at=message.sent_at)
        if message.target == "echo" and message.msg_type == "heartbeat":
            return HeartbeatAck(message.sent_at)
        if message.target == "echo" and message.msg_type == "presence":
            return MemberList(sorted(str(c) for c in payload.get("clients") or ()))
        return message
    try:
        raw = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return UnknownFrame(text, "not JSON")
    if isinstance(raw, dict) and raw.get("msg_type") == "error":
        found = raw.get("payload")
        details: dict[str, Any] = found if isinstance(found, dict) else {}
        return ServerError(str(details.get("code", "")), str(raw.get("msg", "")), details)
    return UnknownFrame(text, str(exc))
