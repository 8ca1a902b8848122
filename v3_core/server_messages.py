"""What the gateway sends a V3 client, one pydantic model per frame shape.

``MessageV3`` is what a client may send (and the envelope every frame shares); these models
pin down what comes back: stream messages by ``target``, the echoes, presence events and the
member list, ``resync`` notices and ``error`` replies. ``ServerMessage`` is their union, told
apart by ``msg_type``, ``target`` and, for ``resync``, the missing ``from_id``. The server's
builders (``presence.py``) construct these models, ``aether_client`` validates every frame it
receives with them, and ``schema.py`` publishes them in docs/ws-message-v3.schema.json, where
the TypeScript client's types are generated from: one source for all four.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
)
from pydantic.json_schema import SkipJsonSchema

from .errors import ErrorCode
from .messages import VisionIdField

Stream = Literal["group", "client", "broadcast"]
ResyncReason = Literal["broker-reconnected", "broker-restarted", "history-gap"]

Offset = Annotated[int, Field(ge=1, description="position in its stream, from 1")]
Epoch = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the stream's history generation"),
]


def _no_null_default(schema: dict[str, Any]) -> None:
    """An optional field is absent or a value, never null: no ``"default": null`` either."""
    for field in schema.get("properties", {}).values():
        if field.get("default", 0) is None:
            del field["default"]


_CLOSED = ConfigDict(
    extra="forbid", strict=True, allow_inf_nan=False, json_schema_extra=_no_null_default
)


class _Frame(BaseModel):
    """Strict and closed like ``MessageV3``. Fields are declared in ``MessageV3``'s order."""

    model_config = _CLOSED


# Optional fields are absent or a value on the wire, never null (the server omits empty
# fields), so the schema does not offer null.
Id = VisionIdField | SkipJsonSchema[None]
Text = str | SkipJsonSchema[None]
Payload = dict[str, Any] | SkipJsonSchema[None]
OffsetOrNone = Offset | SkipJsonSchema[None]
EpochOrNone = Epoch | SkipJsonSchema[None]
MsgOrCmd = Literal["msg", "cmd"]


class _StreamMessage(_Frame):
    """What the three stream messages share; each names its target and the ID it requires."""

    version: Literal["3"]
    msg_type: MsgOrCmd
    target: str
    from_id: Id = None
    to_id: Id = None
    group_id: Id = None
    cmd: Text = None
    msg: Text = None
    payload: Payload = None
    sent_at: AwareDatetime
    offset: OffsetOrNone = None
    epoch: EpochOrNone = None


class GroupMessage(_StreamMessage):
    """A message of the group stream, from a member (``from_id``) or the platform (none)."""

    target: Literal["group"]
    group_id: VisionIdField


class DirectMessage(_StreamMessage):
    """A message of the recipient's client stream; ``group_id`` is the sender's group."""

    target: Literal["direct"]
    to_id: VisionIdField


class BroadcastMessage(_StreamMessage):
    """A message of the broadcast stream, to every connection on the platform."""

    target: Literal["broadcast"]


class EchoMessage(_Frame):
    """A ``msg``/``cmd`` the connection sent itself with target ``echo``, stamped."""

    version: Literal["3"]
    msg_type: MsgOrCmd
    target: Literal["echo"]
    from_id: VisionIdField
    to_id: Id = None
    group_id: VisionIdField
    cmd: Text = None
    msg: Text = None
    payload: Payload = None
    sent_at: AwareDatetime


class HeartbeatMessage(_Frame):
    """The echo of a heartbeat."""

    version: Literal["3"]
    msg_type: Literal["heartbeat"]
    target: Literal["echo"]
    from_id: VisionIdField
    group_id: VisionIdField
    sent_at: AwareDatetime


class PresenceListPayload(BaseModel):
    """`payload` of the member list."""

    model_config = _CLOSED

    clients: list[VisionIdField] = Field(description="the group's members online, sorted")


class PresenceListMessage(_Frame):
    """The answer to ``{"msg_type": "presence", "target": "echo"}``: who is online."""

    version: Literal["3"]
    msg_type: Literal["presence"]
    target: Literal["echo"]
    from_id: VisionIdField
    group_id: VisionIdField
    payload: PresenceListPayload
    sent_at: AwareDatetime


class PresenceEventPayload(BaseModel):
    """`payload` of a presence event: who came or went."""

    model_config = _CLOSED

    event: Literal["join", "leave"]
    client_id: VisionIdField


class PresenceEventMessage(_Frame):
    """A member came online (its first connection) or went offline (its last); group stream."""

    version: Literal["3"]
    msg_type: Literal["presence"]
    target: Literal["group"]
    group_id: VisionIdField
    payload: PresenceEventPayload
    sent_at: AwareDatetime
    offset: OffsetOrNone = None
    epoch: EpochOrNone = None


class ResyncPayload(BaseModel):
    """`payload` of a resync notice: why, and which stream (absent: all)."""

    model_config = _CLOSED

    reason: ResyncReason
    stream: Stream | SkipJsonSchema[None] = Field(
        None, description="the one stream that may have lost messages; absent: all of them"
    )


class ResyncMessage(_Frame):
    """Messages may have been lost: refetch. No ``from_id``, unlike an echoed ``resync``."""

    version: Literal["3"]
    msg_type: Literal["cmd"]
    target: Literal["echo"]
    cmd: Literal["resync"]
    payload: ResyncPayload
    sent_at: AwareDatetime


class ErrorPayload(BaseModel):
    """`payload` of an error reply: the stable code, and detail for some codes."""

    model_config = _CLOSED

    code: ErrorCode
    retry_after: Annotated[float, Field(gt=0)] | SkipJsonSchema[None] = Field(
        None, description="with rate-limited: seconds until a message is accepted again"
    )


class ErrorMessage(_Frame):
    """The one reply to a rejected frame (delivered to no one); the socket stays open."""

    version: Literal["3"]
    msg_type: Literal["error"]
    target: Literal["echo"]
    msg: str = Field(description="for people; program against payload.code")
    payload: ErrorPayload


def _field(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else getattr(value, key, None)


def _shape(value: Any) -> str | None:
    """Which member of ``ServerMessage`` a frame (dict or model) must be."""
    msg_type, target = _field(value, "msg_type"), _field(value, "target")
    if msg_type == "error":
        return "error"
    if msg_type == "heartbeat":
        return "heartbeat"
    if msg_type == "presence":
        return "members" if target == "echo" else "presence"
    if msg_type == "cmd" and target == "echo" and _field(value, "from_id") is None:
        return "resync"
    if msg_type in ("msg", "cmd") and target in ("group", "direct", "broadcast", "echo"):
        return str(target)
    return None


ServerMessage: TypeAlias = Annotated[
    Annotated[GroupMessage, Tag("group")]
    | Annotated[DirectMessage, Tag("direct")]
    | Annotated[BroadcastMessage, Tag("broadcast")]
    | Annotated[EchoMessage, Tag("echo")]
    | Annotated[HeartbeatMessage, Tag("heartbeat")]
    | Annotated[PresenceListMessage, Tag("members")]
    | Annotated[PresenceEventMessage, Tag("presence")]
    | Annotated[ResyncMessage, Tag("resync")]
    | Annotated[ErrorMessage, Tag("error")],
    Discriminator(
        _shape,
        custom_error_type="unknown_frame",
        custom_error_message="not a frame the gateway sends (msg_type and target)",
    ),
]
"""Any frame the gateway sends on a V3 socket."""

SERVER_MESSAGE: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


def parse_server_frame(text: str | bytes) -> ServerMessage:
    """Validate one frame a V3 client received; raises ``pydantic.ValidationError``."""
    return SERVER_MESSAGE.validate_json(text)
