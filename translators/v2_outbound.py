"""Encoded WS_Message_V3 -> the V2 frame a legacy client receives (docs/v2-dialect.md §2). Pure.

Called once per message per node, never per connection, and never does I/O: the integer IDs
come from the sender's tags or from a lookup the caller passes in (an in-memory cache).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from v3_core.ids import is_legacy_int
from v3_core.routing import NO_TAGS, Tags

from .tags import client_legacy, group_legacy

LegacyLookup = Callable[[str, str], str | None]
"""``(namespace, vision_id) -> database integer or None``; must not do I/O."""

# V2 key <- V3 field, for the keys a frame has only when the message has a value
_OPTIONAL = (("msg", "msg"), ("cmd", "cmd"), ("data", "payload"))


def render_v2(text: str, tags: Tags = NO_TAGS, *, legacy_of: LegacyLookup | None = None) -> str:
    """The V2 form of an encoded V3 message, sent with ``tags`` (its sender's, `legacy_tags`).

    ``type``, ``target``, ``from``, ``group`` and ``sent_at`` are always there, null when the
    message has no value (legacy frontends read that fixed set); ``msg``, ``cmd`` and ``data``
    only when it has one. ``from``/``group`` are the database integers (JSON numbers) when
    known, else the Vision IDs. Text that is not a JSON object, or cannot be re-encoded (the
    core never sends such text), passes through unchanged: a renderer that raised would stop
    the node's fan-out.
    """
    message = _loads(text)
    if not isinstance(message, dict):
        return text
    frame: dict[str, Any] = {"type": message.get("msg_type"), "target": message.get("target")}
    for key, field in _OPTIONAL:
        value = message.get(field)
        if value is not None:
            frame[key] = value
    frame["from"] = _id(message.get("from_id"), client_legacy(tags), "client", legacy_of)
    frame["group"] = _id(message.get("group_id"), group_legacy(tags), "group", legacy_of)
    frame["sent_at"] = message.get("sent_at")
    return _dumps(frame) or text


def render_v2_error(code: str, detail: str, **extra: float | str) -> str:
    """The reply to a rejected legacy frame: ``{"type": "error", "msg", "data": {"code", ...}}``,
    with the keys every V2 frame has (``from``, ``group`` and ``sent_at`` null)."""
    data = {"code": code, **extra}
    frame = {
        "type": "error",
        "target": "echo",
        "msg": detail,
        "data": data,
        "from": None,
        "group": None,
        "sent_at": None,
    }
    return orjson.dumps(frame).decode()


def _id(vision_id: Any, legacy: str, namespace: str, legacy_of: LegacyLookup | None) -> Any:
    if not isinstance(vision_id, str):
        return vision_id
    if not legacy and legacy_of is not None:
        legacy = legacy_of(namespace, vision_id) or ""
    return int(legacy) if is_legacy_int(legacy) else vision_id


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # orjson stops at 1024 levels and at numbers beyond a double; the stdlib does not.
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return None


def _dumps(frame: dict[str, Any]) -> str | None:
    try:
        return orjson.dumps(frame).decode()
    except orjson.JSONEncodeError:
        pass
    # Integers beyond 64 bits or nesting past 255 levels: rare, so the slow path is fine.
    try:
        return json.dumps(frame, separators=(",", ":"))
    except (ValueError, RecursionError):
        return None
