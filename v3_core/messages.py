"""WS_Message_V3, the one message model every client, node and translator speaks.

Validation happens once, here, at the edge: `parse_client_message` turns text from a socket
into a stamped `MessageV3` or raises `MessageRejected`; `encode` turns a message into the
one string a node hands to every local recipient.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import ErrorCode, MessageRejected

MsgType = Literal["msg", "cmd", "heartbeat", "presence"]
Target = Literal["direct", "group", "broadcast", "echo"]

_JSON_SCHEMA_VISION_ID = r"^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$"


def _not_all_digits(value: str) -> str:
    if value.isdigit():
        raise PydanticCustomError(
            "legacy_integer_id",
            "database integers are not Vision IDs on V3; see docs/migration-guide.md",
        )
    if value[0] == "-" and value[1:].isdigit():
        raise PydanticCustomError(
            "negative_integer_id", "a negative number is not an ID (database IDs are positive)"
        )
    return value


VisionIdField = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    AfterValidator(_not_all_digits),
    Field(json_schema_extra={"pattern": _JSON_SCHEMA_VISION_ID}),
]


class MessageV3(BaseModel):
    """One V3 message. Unknown fields, wrong types and foreign versions are rejected."""

    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, title="WS_Message_V3"
    )

    version: Literal["3"] = "3"
    msg_type: MsgType
    target: Target
    from_id: VisionIdField | None = None
    to_id: VisionIdField | None = None
    group_id: VisionIdField | None = None
    cmd: str | None = None
    msg: str | None = None
    payload: dict[str, Any] | None = None
    sent_at: AwareDatetime | None = None
    # Server-filled on messages of a stream (docs/design.md section 9); a client never sends them.
    offset: int | None = Field(None, ge=1, description="position in its stream (server-filled)")
    epoch: str | None = Field(None, description="the stream's history generation (server-filled)")

    @model_validator(mode="after")
    def _direct_needs_to_id(self) -> MessageV3:
        if self.target == "direct" and self.to_id is None:
            raise PydanticCustomError("missing_to_id", "target 'direct' requires 'to_id'")
        return self


def utc_now() -> datetime:
    return datetime.now(UTC)


def encode(message: MessageV3) -> str:
    """The wire form: JSON without null fields, ``sent_at`` as ISO 8601 ending in ``Z``."""
    return message.model_dump_json(exclude_none=True)


def error_reply(code: ErrorCode, detail: str, **extra: Any) -> str:
    """The server-only ``error`` reply a rejected sender receives (docs/v3-frontend-guide.md §5)."""
    reply = {
        "version": "3",
        "msg_type": "error",
        "target": "echo",
        "msg": detail,
        "payload": {"code": code, **extra},
    }
    return orjson.dumps(reply).decode()


def parse_client_message(
    text: str | bytes, *, group_id: str, client_id: str, allow_broadcast: bool = True
) -> MessageV3:
    """Validate a client's frame and stamp it with the connection's identity and the time."""
    message = validate(text)
    return stamp(message, group_id=group_id, client_id=client_id, allow_broadcast=allow_broadcast)


def parse_server_message(text: str | bytes) -> MessageV3:
    """Validate a message the platform publishes over HTTP: no connection, so no echo."""
    message = validate(text)
    if message.msg_type not in ("msg", "cmd"):
        raise MessageRejected(
            "invalid-field", f"msg_type {message.msg_type!r} concerns a connection; use msg or cmd"
        )
    if message.target == "echo":
        raise MessageRejected("invalid-target", "target 'echo' needs a connection")
    if message.target == "group" and message.group_id is None:
        raise MessageRejected("missing-field", "group_id: required for target 'group'")
    _refuse_position(message)
    message.sent_at = utc_now()
    return message


def _refuse_position(message: MessageV3) -> None:
    if message.offset is not None or message.epoch is not None:
        field = "offset" if message.offset is not None else "epoch"
        raise MessageRejected("invalid-field", f"{field}: set by the server, never by a client")


def validate(text: str | bytes) -> MessageV3:
    """The one place a pydantic ValidationError becomes a MessageRejected."""
    if _may_hold_non_finite(text):
        # pydantic's JSON parser reads NaN, Infinity and 1e400 as floats that then serialise as
        # null: data would change silently. orjson refuses them; let it judge.
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise MessageRejected("invalid-json", f"Invalid JSON: {exc}") from None
    try:
        return MessageV3.model_validate_json(text)
    except ValidationError as exc:
        raise _rejection(exc) from None


# A double overflows past 1.8e308: with an exponent of two digits at most (<= 99), only if the
# number has at least 210 digits before its point. So a three-digit exponent or a run of 200
# digits sends the text to orjson, which refuses what overflows (1e400, 1 and 400 zeros).
# One branch per leading digit: as cheap as the exponent check alone on ordinary frames.
_NON_FINITE = re.compile(r"NaN|Infinity|[0-9](?:[eE][+]?[0-9]{3}|[0-9]{199})")
_NON_FINITE_BYTES = re.compile(rb"NaN|Infinity|[0-9](?:[eE][+]?[0-9]{3}|[0-9]{199})")


def _may_hold_non_finite(text: str | bytes) -> bool:
    """NaN, Infinity, or a number that may overflow a double (1e400, 1 and 400 zeros)."""
    if isinstance(text, str):
        return _NON_FINITE.search(text) is not None
    return _NON_FINITE_BYTES.search(text) is not None


def stamp(
    message: MessageV3, *, group_id: str, client_id: str, allow_broadcast: bool = True
) -> MessageV3:
    """Fill ``from_id``, ``group_id`` and ``sent_at`` from the connection; refuse spoofing."""
    if message.from_id is not None and message.from_id != client_id:
        raise MessageRejected("spoofed-from-id", "from_id must be your own client ID or omitted")
    if message.group_id is not None and message.group_id != group_id:
        raise MessageRejected(
            "spoofed-group-id",
            "group_id must be your own group or omitted; "
            "use target 'direct' to reach another group",
        )
    if message.msg_type in ("heartbeat", "presence") and message.target != "echo":
        raise MessageRejected(
            "invalid-target", f"a client's {message.msg_type} message must use target 'echo'"
        )
    if message.target == "broadcast" and not allow_broadcast:
        raise MessageRejected(
            "broadcast-forbidden", "clients may not broadcast here; use POST /v3/messages"
        )
    _refuse_position(message)
    message.from_id = client_id
    message.group_id = group_id
    message.sent_at = utc_now()
    return message


def _rejection(exc: ValidationError) -> MessageRejected:
    error = exc.errors(include_url=False)[0]
    kind, loc = error["type"], error["loc"]
    field = ".".join(str(part) for part in loc)
    where = f"{field}: " if field else ""
    detail = f"{where}{error['msg']}"
    code: ErrorCode
    if kind == "json_invalid":
        code = "invalid-json"
    elif not loc and kind in ("model_type", "model_attributes_type", "dict_type"):
        code, detail = "not-an-object", "a V3 message must be a JSON object"
    elif kind == "extra_forbidden":
        code, detail = "unknown-field", f"unknown field {field!r}"
    elif kind == "missing":
        code = "missing-field"
    elif kind == "missing_to_id":
        code = "missing-to-id"
    elif loc == ("version",):
        code, detail = "invalid-version", 'version must be "3" (or omitted)'
    elif loc == ("msg_type",) and error.get("input") == "error":
        code, detail = "server-only-type", "msg_type 'error' is sent by the server only"
    elif loc and loc[0] in ("from_id", "to_id", "group_id") and kind != "string_type":
        code = "invalid-id"
    else:
        code = "invalid-field"
    return MessageRejected(code, detail)
