"""WS_Message_V3 validation, stamping and encoding, without a socket."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from v3_core.errors import MessageRejected
from v3_core.messages import (
    MessageV3,
    encode,
    error_reply,
    parse_client_message,
    parse_server_message,
    validate,
)
from v3_core.schema import schema_text

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "ws-message-v3.schema.json"


def parse(frame: dict[str, Any] | str, **kwargs: Any) -> MessageV3:
    text = frame if isinstance(frame, str) else json.dumps(frame)
    return parse_client_message(text, group_id="g1", client_id="alice", **kwargs)


def test_server_stamps_identity_and_time():
    message = parse({"msg_type": "msg", "target": "group", "msg": "hi"})
    assert (message.from_id, message.group_id, message.version) == ("alice", "g1", "3")
    assert message.sent_at is not None and message.sent_at.utcoffset() == timedelta(0)


def test_own_ids_may_be_repeated():
    message = parse({"msg_type": "msg", "target": "group", "from_id": "alice", "group_id": "g1"})
    assert message.from_id == "alice"


def test_client_sent_at_is_replaced_by_the_server_time():
    message = parse({"msg_type": "msg", "target": "group", "sent_at": "2000-01-01T00:00:00Z"})
    assert message.sent_at is not None and message.sent_at.year > 2000


def test_encode_omits_null_fields_and_ends_sent_at_with_z():
    frame = json.loads(encode(parse({"msg_type": "cmd", "target": "group", "cmd": "GO"})))
    assert set(frame) == {"version", "msg_type", "target", "from_id", "group_id", "cmd", "sent_at"}
    assert frame["sent_at"].endswith("Z")


def test_payload_round_trips_unchanged():
    payload = {"a": [1, 2.5, None, True], "b": {"c": "d"}, "big": 10**30}
    frame = json.loads(encode(parse({"msg_type": "msg", "target": "group", "payload": payload})))
    assert frame["payload"] == payload


def test_error_reply_shape():
    assert json.loads(error_reply("invalid-json", "bad")) == {
        "version": "3",
        "msg_type": "error",
        "target": "echo",
        "msg": "bad",
        "payload": {"code": "invalid-json"},
    }


def test_broadcast_refused_when_clients_may_not_broadcast():
    with pytest.raises(MessageRejected) as rejected:
        parse({"msg_type": "msg", "target": "broadcast"}, allow_broadcast=False)
    assert rejected.value.code == "broadcast-forbidden"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"msg_type": "msg", "target": "echo"}, "invalid-target"),
        ({"msg_type": "heartbeat", "target": "group", "group_id": "g"}, "invalid-field"),
        ({"msg_type": "msg", "target": "group"}, "missing-field"),
        ({"msg_type": "msg", "target": "group", "group_id": "1"}, "invalid-id"),
        ({"msg_type": "msg", "target": "group", "group_id": "g", "x": 1}, "unknown-field"),
    ],
)
def test_server_message_rejections(frame, code):
    with pytest.raises(MessageRejected) as rejected:
        parse_server_message(json.dumps(frame))
    assert rejected.value.code == code


def test_server_message_may_omit_from_id():
    message = parse_server_message(b'{"msg_type":"msg","target":"broadcast","msg":"hi"}')
    assert message.from_id is None and message.sent_at is not None


def test_json_schema_in_docs_is_generated_from_the_model():
    """docs/ws-message-v3.schema.json is regenerated with scripts/schema; this keeps it honest."""
    assert SCHEMA.read_text() == schema_text()
    document = json.loads(SCHEMA.read_text())
    assert {k: v for k, v in document.items() if k not in ("$schema", "$defs")} == (
        MessageV3.model_json_schema()
    )
    jsonschema.Draft202012Validator.check_schema(document)


def test_json_schema_requires_to_id_pattern_and_forbids_extras():
    schema = MessageV3.model_json_schema()
    assert schema["title"] == "WS_Message_V3"
    assert schema["additionalProperties"] is False
    assert (
        schema["properties"]["to_id"]["anyOf"][0]["pattern"] == r"^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$"
    )


def test_large_finite_exponents_still_pass():
    message = parse('{"msg_type": "msg", "target": "group", "payload": {"x": 1e300, "y": "1e999"}}')
    assert message.payload == {"x": 1e300, "y": "1e999"}


@pytest.mark.parametrize(
    "number",
    [
        "1" + "0" * 400 + ".0",
        "1" + "0" * 300 + "e99",
        "-1" + "0" * 210 + "E+99",
        "1" + "0" * 308 + "9",
        "0.5e309",
    ],
)
def test_a_number_beyond_a_double_is_invalid_json_not_null(number):
    """Issue 15 #6: pydantic read the fractions and exponents as infinity, delivered as null
    (and kept an integer past a double, which a JavaScript client reads as Infinity)."""
    with pytest.raises(MessageRejected) as rejected:
        validate('{"msg_type": "msg", "target": "echo", "payload": {"x": ' + number + "}}")
    assert rejected.value.code == "invalid-json"


@pytest.mark.parametrize(
    "number", ["1" + "0" * 209 + "e98", "1" + "0" * 300, "0." + "0" * 400 + "1"]
)
def test_a_long_number_within_a_double_is_kept(number):
    message = validate('{"msg_type": "msg", "target": "echo", "payload": {"x": ' + number + "}}")
    assert message.payload is not None
    assert message.payload["x"] == json.loads(number)
