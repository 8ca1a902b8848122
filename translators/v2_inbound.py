"""V2 frame text -> the WS_Message_V3 fields it stands for (docs/v2-dialect.md §1). Pure: no I/O.

Each rule of the table in docs/v2-dialect.md is one branch here. IDs stay raw (a database
integer or a Vision ID): mapping them needs the ID store, which is the dialect's job.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import orjson

from v3_core.errors import ErrorCode, MessageRejected
from v3_core.ids import is_legacy_int, is_vision_id
from v3_core.messages import MsgType, Target

ADDRESS_KEYS: Final = ("to", "to_id", "client_id")
HEARTBEAT_TYPES: Final = frozenset({"ping", "heartbeat"})
# Where top-level keys go when `data` already has a key of the same name (nothing is dropped).
SHADOWED_KEY: Final = "v2_extra"
_CONSUMED: Final = frozenset({"msg", "cmd", "data", "echo", "broadcast", *ADDRESS_KEYS})
_V3_ID_KEYS: Final = ("to_id", "from_id", "group_id")
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1

OwnIds = tuple[str, str]  # (Vision ID, database integer or "") of the connection


@dataclass(frozen=True, slots=True)
class V2Frame:
    """A legacy frame read by the table; ``to_id`` is still the raw ID the client sent."""

    msg_type: MsgType
    target: Target
    msg: str | None = None
    cmd: str | None = None
    payload: dict[str, Any] | None = None
    to_id: str | None = None

    @property
    def legacy_to_id(self) -> str | None:
        """The database integer to map to a client Vision ID, if ``to_id`` is one."""
        return self.to_id if self.to_id is not None and is_legacy_int(self.to_id) else None

    def mapped(self, to_id: str | None, *, client: OwnIds, group: OwnIds) -> dict[str, Any]:
        """The V3 fields, ``to_id`` replaced by its Vision ID; identity is stamped later."""
        fields = {
            "msg_type": self.msg_type,
            "target": self.target,
            "to_id": to_id if to_id is not None else self.to_id,
            "cmd": self.cmd,
            "msg": self.msg,
            "payload": self.payload,
        }
        return {key: value for key, value in fields.items() if value is not None}


@dataclass(frozen=True, slots=True)
class V3Frame:
    """A frame that already speaks V3 (it has ``msg_type`` and ``target``): fields as sent.

    ID fields sent as JSON numbers are digit strings here; V3 validation judges the rest.
    """

    fields: dict[str, Any]

    @property
    def legacy_to_id(self) -> str | None:
        to_id = self.fields.get("to_id")
        return to_id if isinstance(to_id, str) and is_legacy_int(to_id) else None

    def mapped(self, to_id: str | None, *, client: OwnIds, group: OwnIds) -> dict[str, Any]:
        """The fields with IDs mapped; a database integer other than your own is spoofing."""
        fields = dict(self.fields)
        if to_id is not None:
            fields["to_id"] = to_id
        _own_id(fields, "from_id", client)
        _own_id(fields, "group_id", group)
        return fields


def parse_v2_frame(text: str) -> V2Frame | V3Frame:
    """Read one legacy frame. Raises MessageRejected for frames no rule can carry."""
    stripped = text.strip()
    if stripped == "ping":
        return V2Frame("heartbeat", "echo")
    try:
        value = _loads(text)
    except _NotJson:
        if stripped[:1] in ("{", "["):
            raise MessageRejected("invalid-json", "the frame looks like JSON but is not") from None
        return V2Frame("msg", "group", msg=text)
    if isinstance(value, str):
        return V2Frame("msg", "group", msg=value)
    if not isinstance(value, dict):
        return V2Frame("msg", "group", payload={"data": value})
    if "msg_type" in value and "target" in value:
        return _v3_frame(value)
    return _v2_object(value)


def v3_json(fields: dict[str, Any]) -> bytes:
    """The V3 text for validation. Raises MessageRejected for what JSON cannot carry."""
    try:
        return orjson.dumps(fields)
    except orjson.JSONEncodeError as exc:
        raise MessageRejected("untranslatable", f"the frame cannot be carried: {exc}") from None


# -- JSON ------------------------------------------------------------------------------------


class _NotJson(Exception):
    """Not JSON: a syntax error, or NaN/Infinity, which JSON does not have."""


def _loads(text: str) -> Any:
    # orjson reads what both accept alike (integers past 64 bits become floats in both) at a
    # third of the cost; what it refuses goes to the stdlib, whose failures can be told apart
    # (syntax, depth, numeric range) and which also takes control characters in strings.
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _loads_stdlib(text)


def _loads_stdlib(text: str) -> Any:
    try:
        return json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_int_or_float,
            strict=False,
        )
    except json.JSONDecodeError as exc:
        raise _NotJson from exc
    except RecursionError:
        _untranslatable("the frame is nested too deeply")
    except ValueError:
        _untranslatable("a number in the frame is out of range")


def _refuse_constant(name: str) -> NoReturn:
    raise _NotJson(name)


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise ValueError(literal[:20])
    return number


def _int_or_float(literal: str) -> int | float:
    # Beyond 64 bits a JavaScript client meant a double, and orjson carries only 64-bit ints.
    if len(literal) <= 20:
        number = int(literal)
        if _INT_MIN <= number <= _INT_MAX:
            return number
    return _finite_float(literal)


def _untranslatable(detail: str) -> NoReturn:
    raise MessageRejected("untranslatable", detail) from None


# -- the table -------------------------------------------------------------------------------


def _v2_object(obj: dict[str, Any]) -> V2Frame:
    kind = obj.get("type")
    if isinstance(kind, str) and kind in HEARTBEAT_TYPES:
        return V2Frame("heartbeat", "echo")
    target, to_id = _address(obj)
    cmd = _text(obj, "cmd")
    return V2Frame(
        "cmd" if cmd is not None else "msg",
        target,
        msg=_text(obj, "msg"),
        cmd=cmd,
        payload=_payload(obj),
        to_id=to_id,
    )


def _address(obj: dict[str, Any]) -> tuple[Target, str | None]:
    """The first addressing key that applies: to/to_id/client_id, then echo, then broadcast."""
    for key in ADDRESS_KEYS:
        raw = obj.get(key)
        if raw is not None:
            return "direct", _raw_id(key, raw)
    if _flag(obj, "echo"):
        return "echo", None
    if _flag(obj, "broadcast"):
        return "broadcast", None
    return "group", None


def _raw_id(key: str, raw: object) -> str:
    if _is_id_number(raw):
        return str(raw)
    if isinstance(raw, str) and (is_legacy_int(raw) or is_vision_id(raw)):
        return raw
    raise MessageRejected("invalid-id", f"{key!r} must be a database integer or a Vision ID")


def _is_id_number(value: object) -> bool:
    # A JSON number is a database integer or nothing: str(-5) would pass as a Vision ID.
    return isinstance(value, int) and not isinstance(value, bool) and is_legacy_int(str(value))


def _flag(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value is True
    raise MessageRejected("invalid-field", f"{key!r} must be true or false")


def _text(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MessageRejected("invalid-field", f"{key!r} must be a string")


def _payload(obj: dict[str, Any]) -> dict[str, Any] | None:
    """``data`` (an object, else ``{"data": value}``) plus every key no rule consumed."""
    extras = {key: value for key, value in obj.items() if key not in _CONSUMED}
    if "data" not in obj:
        return extras or None
    data = obj["data"]
    payload = dict(data) if isinstance(data, dict) else {"data": data}
    shadowed = {key: value for key, value in extras.items() if key in payload}
    payload.update((key, value) for key, value in extras.items() if key not in shadowed)
    if shadowed:
        if SHADOWED_KEY in payload:
            _untranslatable(f"keys {sorted(shadowed)} are both in 'data' and beside it")
        payload[SHADOWED_KEY] = shadowed
    return payload


def _v3_frame(obj: dict[str, Any]) -> V3Frame:
    fields = dict(obj)
    for key in _V3_ID_KEYS:
        value = fields.get(key)
        if _is_id_number(value):
            fields[key] = str(value)
    return V3Frame(fields)


def _own_id(fields: dict[str, Any], key: str, own: OwnIds) -> None:
    value = fields.get(key)
    if not (isinstance(value, str) and is_legacy_int(value)):
        return
    vision_id, legacy = own
    if not legacy or int(value) != int(legacy):
        code: ErrorCode = "spoofed-from-id" if key == "from_id" else "spoofed-group-id"
        raise MessageRejected(code, f"{key} must be your own ID or omitted")
    fields[key] = vision_id
