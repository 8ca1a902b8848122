"""Properties: V2 -> V3 -> V2 keeps msg, cmd, data keys and integer IDs; no frame crashes."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from translators import V2Frame, V3Frame, legacy_tags, parse_v2_frame, render_v2, v3_json
from v3_core.errors import MessageRejected
from v3_core.ids import is_legacy_int
from v3_core.messages import MessageV3, encode, parse_client_message

GROUP, CLIENT = ("grpVision", "3"), ("cliVision", "17")
RESERVED = {"msg", "cmd", "data", "to", "to_id", "client_id", "echo", "broadcast", "type"}
RESERVED |= {"msg_type", "target", "v2_extra"}

texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
extra_keys = texts.filter(lambda key: key not in RESERVED)
legacy_ints = st.integers(min_value=0, max_value=10**18)
vision_ids = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,20}", fullmatch=True)
addressing = st.one_of(
    st.just({}),
    st.builds(lambda n: {"to": n}, legacy_ints),
    st.builds(lambda n: {"to_id": str(n)}, legacy_ints),
    st.builds(lambda v: {"client_id": v}, vision_ids),
    st.just({"echo": True}),
    st.just({"broadcast": True}),
)


@st.composite
def v2_objects(draw: st.DrawFn) -> dict[str, Any]:
    frame: dict[str, Any] = draw(st.dictionaries(extra_keys, json_values, max_size=3))
    frame.update(draw(addressing))
    if draw(st.booleans()):
        frame["msg"] = draw(texts)
    if draw(st.booleans()):
        frame["cmd"] = draw(texts)
    if draw(st.booleans()):
        frame["data"] = draw(st.dictionaries(texts, json_values, max_size=4))
    return frame


def to_v3(text: str) -> MessageV3:
    """What V2Dialect.parse does, with a fixed legacy -> Vision mapping instead of a store."""
    frame = parse_v2_frame(text)
    legacy_to = frame.legacy_to_id
    to_id = f"mapped{legacy_to}" if legacy_to is not None else None
    fields = frame.mapped(to_id, client=CLIENT, group=GROUP)
    return parse_client_message(v3_json(fields), group_id=GROUP[0], client_id=CLIENT[0])


def round_trip(frame: dict[str, Any]) -> dict[str, Any]:
    message = to_v3(orjson.dumps(frame).decode())
    rendered = render_v2(encode(message), legacy_tags(group=GROUP[1], client=CLIENT[1]))
    result: dict[str, Any] = json.loads(rendered)
    return result


@given(v2_objects())
def test_round_trip_keeps_msg_and_cmd(frame: dict[str, Any]) -> None:
    back = round_trip(frame)
    assert (back.get("msg"), back.get("cmd")) == (frame.get("msg"), frame.get("cmd"))


@given(v2_objects())
def test_round_trip_keeps_data_keys(frame: dict[str, Any]) -> None:
    back = round_trip(frame)
    for key, value in frame.get("data", {}).items():
        assert back["data"][key] == value


@given(v2_objects())
@example({"data": {"a": 1}, "a": 2, "b": 3})
def test_round_trip_keeps_every_other_key(frame: dict[str, Any]) -> None:
    """Nothing is dropped: a key beside `data` is in data, or in data.v2_extra on a clash."""
    back = round_trip(frame)
    data = frame.get("data", {})
    for key, value in frame.items():
        if key in RESERVED or key in {"msg", "cmd", "data"}:
            continue
        assert (back["data"]["v2_extra"] if key in data else back["data"])[key] == value


@given(v2_objects())
def test_round_trip_keeps_integer_ids(frame: dict[str, Any]) -> None:
    back = round_trip(frame)
    assert (back["from"], back["group"]) == (17, 3)


@given(v2_objects())
def test_round_trip_maps_an_integer_to_id(frame: dict[str, Any]) -> None:
    message = to_v3(orjson.dumps(frame).decode())
    raw = next((str(frame[k]) for k in ("to", "to_id", "client_id") if k in frame), None)
    expected = f"mapped{int(raw)}" if raw is not None and is_legacy_int(raw) else raw
    assert message.to_id == expected


@settings(max_examples=300)
@given(st.text() | st.builds(lambda v: json.dumps(v), json_values))
def test_any_text_is_a_message_or_a_rejection(text: str) -> None:
    """Whatever a legacy client sends, the answer is a V3 message or a MessageRejected."""
    try:
        message = to_v3(text)
    except MessageRejected:
        return
    assert isinstance(message, MessageV3)


@given(st.dictionaries(texts, json_values, max_size=6))
def test_any_json_object_is_a_frame_or_a_rejection(obj: dict[str, Any]) -> None:
    try:
        frame = parse_v2_frame(json.dumps(obj))
    except MessageRejected:
        return
    assert isinstance(frame, V2Frame | V3Frame)
