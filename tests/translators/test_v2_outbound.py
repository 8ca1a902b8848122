"""V3 message -> V2 frame: one row per rule of docs/v2-dialect.md section 2."""

from __future__ import annotations

import json
from typing import Any

import pytest

from translators import legacy_tags, render_v2, render_v2_error
from v3_core.routing import NO_TAGS, Tags

AT = "2030-01-02T03:04:05.000006Z"


def v3(**fields: Any) -> str:
    return json.dumps({"version": "3", **fields, "sent_at": AT})


OUTBOUND = [
    (
        "group-msg",
        v3(msg_type="msg", target="group", from_id="cliA", group_id="grpA", msg="hi"),
        legacy_tags(group="3", client="7"),
        {"type": "msg", "target": "group", "msg": "hi", "from": 7, "group": 3, "sent_at": AT},
    ),
    (
        "cmd-with-payload",
        v3(msg_type="cmd", target="group", from_id="cliA", group_id="grpA", cmd="RELOAD",
           payload={"force": True}),
        legacy_tags(group="3", client="7"),
        {"type": "cmd", "target": "group", "cmd": "RELOAD", "data": {"force": True}, "from": 7,
         "group": 3, "sent_at": AT},
    ),
    (
        "vision-ids-without-integers",
        v3(msg_type="msg", target="direct", from_id="cliA", group_id="grpA", to_id="cliB", msg="x"),
        NO_TAGS,
        {"type": "msg", "target": "direct", "msg": "x", "from": "cliA", "group": "grpA",
         "sent_at": AT},
    ),
    (
        "broadcast-from-the-platform",
        v3(msg_type="cmd", target="broadcast", cmd="MAINTENANCE"),
        NO_TAGS,
        {"type": "cmd", "target": "broadcast", "cmd": "MAINTENANCE", "from": None, "group": None,
         "sent_at": AT},
    ),
    (
        "heartbeat-echo",
        v3(msg_type="heartbeat", target="echo", from_id="cliA", group_id="grpA"),
        legacy_tags(group="3", client="7"),
        {"type": "heartbeat", "target": "echo", "from": 7, "group": 3, "sent_at": AT},
    ),
    (
        "presence-event",
        v3(msg_type="presence", target="group", group_id="grpA",
           payload={"event": "join", "client_id": "cliB"}),
        legacy_tags(group="3"),
        {"type": "presence", "target": "group", "data": {"event": "join", "client_id": "cliB"},
         "from": None, "group": 3, "sent_at": AT},
    ),
    (
        "empty-payload",
        v3(msg_type="msg", target="group", group_id="grpA", payload={}),
        NO_TAGS,
        {"type": "msg", "target": "group", "data": {}, "from": None, "group": "grpA",
         "sent_at": AT},
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "tags", "expected"),
    [row[1:] for row in OUTBOUND],
    ids=[row[0] for row in OUTBOUND],
)
def test_render_v2_follows_the_table(text: str, tags: Tags, expected: dict[str, Any]) -> None:
    assert json.loads(render_v2(text, tags)) == expected


@pytest.mark.parametrize(
    ("text", "tags"), [row[1:3] for row in OUTBOUND], ids=[row[0] for row in OUTBOUND]
)
def test_every_frame_has_the_keys_legacy_frontends_read(text: str, tags: Tags) -> None:
    """``type``, ``target``, ``from``, ``group`` and ``sent_at``, even where they are null."""
    assert {"type", "target", "from", "group", "sent_at"} <= json.loads(
        render_v2(text, tags)
    ).keys()


def test_a_message_without_values_renders_them_as_null() -> None:
    assert render_v2('{"msg_type": "msg"}') == (
        '{"type":"msg","target":null,"from":null,"group":null,"sent_at":null}'
    )


def test_a_presence_event_has_a_null_from() -> None:
    """Server-made: no client sent it, so ``from`` is null rather than missing."""
    text = v3(msg_type="presence", target="group", group_id="grpA",
              payload={"event": "leave", "client_id": "cliB"})  # fmt: skip
    assert render_v2(text, legacy_tags(group="3")) == (
        '{"type":"presence","target":"group","data":{"event":"leave","client_id":"cliB"},'
        f'"from":null,"group":3,"sent_at":"{AT}"}}'
    )


def test_render_v2_keys_come_in_v2_order() -> None:
    text = v3(msg_type="cmd", target="group", from_id="a", group_id="b", cmd="c", msg="m",
              payload={"k": 1})  # fmt: skip
    rendered = render_v2(text, legacy_tags(group="2", client="1"))
    assert rendered == (
        '{"type":"cmd","target":"group","msg":"m","cmd":"c","data":{"k":1},"from":1,"group":2,'
        f'"sent_at":"{AT}"}}'
    )


def test_render_v2_asks_the_lookup_when_the_tags_have_no_integers() -> None:
    known = {("client", "cliA"): "7", ("group", "grpA"): "3"}
    text = v3(msg_type="msg", target="group", from_id="cliA", group_id="grpA")
    rendered = json.loads(render_v2(text, legacy_of=lambda ns, vid: known.get((ns, vid))))
    assert (rendered["from"], rendered["group"]) == (7, 3)


def test_render_v2_prefers_the_tags_to_the_lookup() -> None:
    text = v3(msg_type="msg", target="group", from_id="cliA", group_id="grpA")
    rendered = json.loads(render_v2(text, legacy_tags(client="8"), legacy_of=lambda ns, vid: "99"))
    assert (rendered["from"], rendered["group"]) == (8, 99)


def test_render_v2_keeps_the_vision_id_when_the_lookup_knows_nothing() -> None:
    text = v3(msg_type="msg", target="group", from_id="cliA", group_id="grpA")
    rendered = json.loads(render_v2(text, legacy_of=lambda ns, vid: None))
    assert (rendered["from"], rendered["group"]) == ("cliA", "grpA")


def test_render_v2_error_has_the_legacy_shape() -> None:
    assert render_v2_error("invalid-json", "not JSON") == (
        '{"type":"error","target":"echo","msg":"not JSON","data":{"code":"invalid-json"},'
        '"from":null,"group":null,"sent_at":null}'
    )


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"text"', ""])
def test_render_v2_passes_through_what_is_not_a_json_object(text: str) -> None:
    """The core never sends such text; a renderer that raised would stop the fan-out."""
    assert render_v2(text) == text


def test_render_v2_integers_beyond_a_double_survive_exactly() -> None:
    """orjson gives up on them; the stdlib fallback keeps every digit."""
    huge = int("1" * 400)
    rendered = render_v2(json.dumps({"msg_type": "msg", "payload": {"n": huge}}))
    assert json.loads(rendered)["data"] == {"n": huge}


def test_render_v2_nesting_beyond_orjson_limits_survives() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    rendered = render_v2(json.dumps({"msg_type": "msg", "payload": {"deep": deep}}))
    assert json.loads(rendered)["data"] == {"deep": deep}


def test_render_v2_passes_through_what_cannot_be_decoded() -> None:
    text = '{"payload": ' + "[" * 5000 + "1" + "]" * 5000 + "}"
    assert render_v2(text) == text


def test_render_v2_passes_through_what_cannot_be_re_encoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Belt and braces: even when neither encoder copes, the fan-out gets a string."""

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise RecursionError

    text = json.dumps({"msg_type": "msg", "payload": {"n": int("1" * 400)}})
    monkeypatch.setattr("translators.v2_outbound.json.dumps", refuse)
    assert render_v2(text) == text
