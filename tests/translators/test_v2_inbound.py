"""V2 frame -> V3 fields: one row per rule of docs/v2-dialect.md section 1."""

from __future__ import annotations

import json
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from translators import V2Frame, V3Frame, parse_v2_frame, v2_inbound, v3_json
from v3_core.errors import MessageRejected

GROUP: Final = "group"

RULES = [
    # plain text, JSON strings and other non-objects
    ("hi", V2Frame("msg", GROUP, msg="hi")),
    ("hello world", V2Frame("msg", GROUP, msg="hello world")),
    ('"hi"', V2Frame("msg", GROUP, msg="hi")),
    ('"ping"', V2Frame("msg", GROUP, msg="ping")),
    ("42", V2Frame("msg", GROUP, payload={"data": 42})),
    ("[1, 2]", V2Frame("msg", GROUP, payload={"data": [1, 2]})),
    ("true", V2Frame("msg", GROUP, payload={"data": True})),
    ("null", V2Frame("msg", GROUP, payload={"data": None})),
    ("NaN", V2Frame("msg", GROUP, msg="NaN")),
    ('"hi', V2Frame("msg", GROUP, msg='"hi')),
    ("", V2Frame("msg", GROUP, msg="")),
    # msg and cmd
    ('{"msg": "hi"}', V2Frame("msg", GROUP, msg="hi")),
    (
        '{"cmd": "RELOAD", "data": {"force": true}}',
        V2Frame("cmd", GROUP, cmd="RELOAD", payload={"force": True}),
    ),
    ('{"cmd": "RELOAD", "msg": "now"}', V2Frame("cmd", GROUP, msg="now", cmd="RELOAD")),
    ('{"msg": null}', V2Frame("msg", GROUP)),
    ("{}", V2Frame("msg", GROUP)),
    # direct
    ('{"msg": "hi", "to": 42}', V2Frame("msg", "direct", msg="hi", to_id="42")),
    ('{"msg": "hi", "to": "42"}', V2Frame("msg", "direct", msg="hi", to_id="42")),
    ('{"msg": "hi", "to_id": 7}', V2Frame("msg", "direct", msg="hi", to_id="7")),
    ('{"msg": "hi", "client_id": "dev_x1"}', V2Frame("msg", "direct", msg="hi", to_id="dev_x1")),
    ('{"msg": "hi", "to": "dev-x1"}', V2Frame("msg", "direct", msg="hi", to_id="dev-x1")),
    # broadcast and echo
    ('{"msg": "hi", "broadcast": true}', V2Frame("msg", "broadcast", msg="hi")),
    ('{"msg": "hi", "echo": true}', V2Frame("msg", "echo", msg="hi")),
    ('{"msg": "hi", "broadcast": false}', V2Frame("msg", GROUP, msg="hi")),
    ('{"msg": "hi", "echo": null}', V2Frame("msg", GROUP, msg="hi")),
    # heartbeats
    ("ping", V2Frame("heartbeat", "echo")),
    (" ping\n", V2Frame("heartbeat", "echo")),
    ('{"type": "ping"}', V2Frame("heartbeat", "echo")),
    ('{"type": "heartbeat"}', V2Frame("heartbeat", "echo")),
    ('{"type": "heartbeat", "to": 5, "data": 1}', V2Frame("heartbeat", "echo")),
    # data
    ('{"data": {"a": 1}}', V2Frame("msg", GROUP, payload={"a": 1})),
    ('{"data": {}}', V2Frame("msg", GROUP, payload={})),
    ('{"data": 5}', V2Frame("msg", GROUP, payload={"data": 5})),
    ('{"data": [1, "x"]}', V2Frame("msg", GROUP, payload={"data": [1, "x"]})),
    ('{"data": null}', V2Frame("msg", GROUP, payload={"data": None})),
    # other keys are kept in payload under their own names
    ('{"msg": "hi", "color": "red"}', V2Frame("msg", GROUP, msg="hi", payload={"color": "red"})),
    ('{"data": {"a": 1}, "b": 2}', V2Frame("msg", GROUP, payload={"a": 1, "b": 2})),
    ('{"data": 5, "b": 2}', V2Frame("msg", GROUP, payload={"data": 5, "b": 2})),
    ('{"type": "chat", "msg": "hi"}', V2Frame("msg", GROUP, msg="hi", payload={"type": "chat"})),
    (
        '{"msg_type": "msg", "msg": "x"}',
        V2Frame("msg", GROUP, msg="x", payload={"msg_type": "msg"}),
    ),
    # a top-level key that `data` also has: data wins, the other goes under v2_extra
    ('{"data": {"a": 1}, "a": 2}', V2Frame("msg", GROUP, payload={"a": 1, "v2_extra": {"a": 2}})),
]

IDENTITY_KEYS = {
    "from": 7,
    "group": 3,
    "from_id": "someone",
    "group_id": "elsewhere",
    "sent_at": "2020-01-01T00:00:00Z",
    "version": "2",
}

PRECEDENCE = [
    ('{"to": 1, "to_id": 2, "client_id": 3}', "direct", "1"),
    ('{"to_id": 2, "client_id": 3}', "direct", "2"),
    ('{"to": null, "client_id": 3}', "direct", "3"),
    ('{"to": 1, "echo": true, "broadcast": true}', "direct", "1"),
    ('{"echo": true, "broadcast": true}', "echo", None),
    ('{"echo": false, "broadcast": true}', "broadcast", None),
    ('{"to": null, "msg": "x"}', GROUP, None),
]

REJECTED = [
    ('{"msg": "hi"', "invalid-json"),
    ("[1, 2", "invalid-json"),
    ('{"a": NaN}', "invalid-json"),
    ("[Infinity]", "invalid-json"),
    ('{"a": -Infinity}', "invalid-json"),
    ('{"msg": 5}', "invalid-field"),
    ('{"cmd": ["x"]}', "invalid-field"),
    ('{"broadcast": "yes"}', "invalid-field"),
    ('{"echo": 1}', "invalid-field"),
    ('{"to": "not valid!"}', "invalid-id"),
    ('{"to": -5}', "invalid-id"),
    ('{"to": true}', "invalid-id"),
    ('{"to": 1.5}', "invalid-id"),
    ('{"to": {"id": 1}}', "invalid-id"),
    ('{"to": "12345678901234567890"}', "invalid-id"),
    ('{"data": {"a": 1, "v2_extra": 0}, "a": 2}', "untranslatable"),
]


@pytest.mark.parametrize(("text", "expected"), RULES, ids=[text for text, _ in RULES])
def test_parse_v2_frame_follows_the_table(text: str, expected: V2Frame) -> None:
    assert parse_v2_frame(text) == expected


@pytest.mark.parametrize(("text", "target", "to_id"), PRECEDENCE, ids=[t for t, *_ in PRECEDENCE])
def test_parse_v2_frame_addressing_precedence(text: str, target: str, to_id: str | None) -> None:
    """to/to_id/client_id, then echo, then broadcast, else group."""
    frame = parse_v2_frame(text)
    assert isinstance(frame, V2Frame)
    assert (frame.target, frame.to_id) == (target, to_id)


def test_parse_v2_frame_keeps_identity_keys_in_payload() -> None:
    """A legacy client's from/group/... never set identity; they travel as data."""
    text = '{"msg": "hi", "from": 7, "group": 3, "from_id": "someone", "group_id": "elsewhere",'
    text += ' "sent_at": "2020-01-01T00:00:00Z", "version": "2"}'
    assert parse_v2_frame(text) == V2Frame("msg", GROUP, msg="hi", payload=IDENTITY_KEYS)


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (
            '{"msg_type": "msg", "target": "direct", "to_id": 42, "msg": "x", "payload": {"a": 1}}',
            {"msg_type": "msg", "target": "direct", "to_id": "42", "msg": "x", "payload": {"a": 1}},
        ),
        ('{"msg_type": "msg", "target": "group"}', {"msg_type": "msg", "target": "group"}),
        (
            '{"msg_type": "cmd", "target": "group", "from_id": 7, "group_id": 3, "extra": 1}',
            {"msg_type": "cmd", "target": "group", "from_id": "7", "group_id": "3", "extra": 1},
        ),
        ('{"msg_type": 5, "target": true}', {"msg_type": 5, "target": True}),
        (
            '{"msg_type": "msg", "target": "direct", "to_id": -5}',
            {"msg_type": "msg", "target": "direct", "to_id": -5},
        ),
    ],
)
def test_parse_v2_frame_takes_v3_frames_as_sent(text: str, fields: dict[str, object]) -> None:
    """Only JSON-number IDs change (to digit strings); V3 validation judges the rest."""
    assert parse_v2_frame(text) == V3Frame(fields)


@pytest.mark.parametrize(("text", "code"), REJECTED, ids=[text for text, _ in REJECTED])
def test_parse_v2_frame_rejects(text: str, code: str) -> None:
    with pytest.raises(MessageRejected) as caught:
        parse_v2_frame(text)
    assert caught.value.code == code


def test_parse_v2_frame_bool_id_is_not_an_integer() -> None:
    with pytest.raises(MessageRejected, match="'to_id' must be a database integer or a Vision ID"):
        parse_v2_frame('{"to_id": false}')


HOSTILE = [
    ("deep-array", "[" * 10_000 + "]" * 10_000),
    ("deep-object", '{"a":' * 10_000 + "1" + "}" * 10_000),
    ("deep-unclosed", "[" * 10_000),
    ("huge-int", "1" * 5_000),
    ("huge-int-in-data", '{"data": ' + "9" * 5_000 + "}"),
    ("huge-int-id", '{"to": ' + "9" * 5_000 + "}"),
    ("float-overflow", '{"data": 1e400}'),
    ("bare-float-overflow", "-1e999"),
]


@pytest.mark.parametrize("text", [text for _, text in HOSTILE], ids=[name for name, _ in HOSTILE])
def test_parse_v2_frame_hostile_input_is_rejected(text: str) -> None:
    """Deep nesting and out-of-range numbers are a rejection, never a traceback."""
    with pytest.raises(MessageRejected) as caught:
        parse_v2_frame(text)
    assert caught.value.code == "untranslatable"


def test_parse_v2_frame_integers_beyond_64_bits_become_doubles() -> None:
    """What a JavaScript client meant by them, and what orjson can carry."""
    frame = parse_v2_frame(f'{{"data": {{"big": {2**64}, "max": {2**64 - 1}}}}}')
    assert frame == V2Frame("msg", GROUP, payload={"big": float(2**64), "max": 2**64 - 1})


def test_parse_v2_frame_accepts_control_characters_in_strings() -> None:
    """Lenient like the legacy server: a raw tab inside a string is kept."""
    assert parse_v2_frame('{"msg": "a\tb"}') == V2Frame("msg", GROUP, msg="a\tb")


def test_v3_json_rejects_lone_surrogates() -> None:
    frame = parse_v2_frame('{"msg": "\\ud800"}')
    assert isinstance(frame, V2Frame)
    with pytest.raises(MessageRejected) as caught:
        v3_json(frame.mapped(None, client=("c", ""), group=("g", "")))
    assert caught.value.code == "untranslatable"


def test_v2_frame_mapped_replaces_a_legacy_to_id() -> None:
    frame = V2Frame("msg", "direct", msg="hi", to_id="42")
    fields = frame.mapped("cliB", client=("cliA", "1"), group=("grp", "2"))
    assert fields == {"msg_type": "msg", "target": "direct", "to_id": "cliB", "msg": "hi"}


def test_v2_frame_legacy_to_id_is_none_for_vision_ids() -> None:
    assert V2Frame("msg", "direct", to_id="dev_x1").legacy_to_id is None


def test_v3_frame_mapped_turns_your_own_integers_into_your_vision_ids() -> None:
    frame = V3Frame({"msg_type": "msg", "target": "group", "from_id": "007", "group_id": "3"})
    fields = frame.mapped(None, client=("cliA", "7"), group=("grpA", "3"))
    assert fields == {"msg_type": "msg", "target": "group", "from_id": "cliA", "group_id": "grpA"}


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"from_id": "8"}, "spoofed-from-id"),
        ({"group_id": "4"}, "spoofed-group-id"),
    ],
)
def test_v3_frame_mapped_refuses_someone_elses_integer(fields: dict[str, str], code: str) -> None:
    frame = V3Frame({"msg_type": "msg", "target": "group", **fields})
    with pytest.raises(MessageRejected) as caught:
        frame.mapped(None, client=("cliA", "7"), group=("grpA", "3"))
    assert caught.value.code == code


def test_v3_frame_mapped_refuses_an_integer_from_a_vision_id_connection() -> None:
    """A connection made with Vision IDs has no integer of its own to claim."""
    frame = V3Frame({"msg_type": "msg", "target": "group", "from_id": "7"})
    with pytest.raises(MessageRejected) as caught:
        frame.mapped(None, client=("cliA", ""), group=("grpA", ""))
    assert caught.value.code == "spoofed-from-id"


# Integers on both sides of the 64-bit edges, where the two readers must agree on int or float.
_EDGE_INTS = st.sampled_from([2**63 - 1, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**30])
_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | _EDGE_INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON_VALUES, ascii_only=st.booleans())
def test_the_orjson_reading_agrees_with_the_stdlib_reading(value: object, ascii_only: bool) -> None:
    """The fast path may only change the cost: same values, same int-or-float, for any JSON."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    fast, reference = v2_inbound._loads(text), v2_inbound._loads_stdlib(text)
    assert json.dumps(fast) == json.dumps(reference)  # 1 and 1.0 differ here, not under ==
