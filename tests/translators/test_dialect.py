"""V2Dialect: legacy frames in, V2 frames out, and legacy and V3 clients in one group."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import respx

from tests.helpers import eventually
from translators import IdMapper, MemoryIdStore, UpstreamIdLookup, V2Dialect, legacy_tags
from v3_core.backends import open_backends
from v3_core.connection import Dialect
from v3_core.errors import MessageRejected
from v3_core.manager import ConnectionManager
from v3_core.routing import Channels, Envelope

from ..support.senders import RecordingSender
from .support import make_connection

BASE = "http://ids.test"
LEGACY_CONN: dict[str, Any] = {"tags": legacy_tags(group="3", client="17")}
HEARTBEAT_V3 = '{"msg_type": "heartbeat", "target": "echo"}'


@pytest.fixture
async def mapper() -> IdMapper:
    store = MemoryIdStore()
    await store.put_if_absent("client", "42", "cliB")
    return IdMapper(store)


@pytest.fixture
def dialect(mapper: IdMapper) -> V2Dialect:
    return V2Dialect(mapper)


async def rejection(dialect: V2Dialect, text: str, **conn: Any) -> MessageRejected:
    with pytest.raises(MessageRejected) as caught:
        await dialect.parse(text, make_connection(**conn))
    return caught.value


def test_v2_dialect_is_a_dialect(dialect: V2Dialect) -> None:
    checked: Dialect = dialect
    assert checked.name == "v2"


async def test_parse_stamps_the_connection_identity(dialect: V2Dialect) -> None:
    message = await dialect.parse("hi", make_connection())
    assert (message.msg_type, message.target, message.msg) == ("msg", "group", "hi")
    assert (message.from_id, message.group_id, message.version) == ("cliVision", "grpVision", "3")


async def test_parse_sets_sent_at(dialect: V2Dialect) -> None:
    message = await dialect.parse("hi", make_connection())
    assert message.sent_at is not None and message.sent_at.utcoffset() is not None


async def test_parse_maps_an_integer_to(dialect: V2Dialect) -> None:
    message = await dialect.parse('{"msg": "hi", "to": 42}', make_connection())
    assert (message.target, message.to_id) == ("direct", "cliB")


async def test_parse_keeps_a_vision_id_to(dialect: V2Dialect) -> None:
    message = await dialect.parse('{"msg": "hi", "to_id": "dev_x1"}', make_connection())
    assert message.to_id == "dev_x1"


async def test_parse_identity_keys_stay_data(dialect: V2Dialect) -> None:
    """A legacy `from`/`group_id` is kept as data and never overrides the identity."""
    text = '{"msg": "hi", "from": 99, "group_id": "elsewhere"}'
    message = await dialect.parse(text, make_connection(**LEGACY_CONN))
    assert (message.from_id, message.group_id) == ("cliVision", "grpVision")
    assert message.payload == {"from": 99, "group_id": "elsewhere"}


async def test_parse_heartbeat(dialect: V2Dialect) -> None:
    message = await dialect.parse('{"type": "ping"}', make_connection())
    assert (message.msg_type, message.target) == ("heartbeat", "echo")


async def test_parse_v3_frame_with_your_own_integers(dialect: V2Dialect) -> None:
    text = '{"msg_type": "msg", "target": "group", "from_id": 17, "group_id": "3", "msg": "x"}'
    message = await dialect.parse(text, make_connection(**LEGACY_CONN))
    assert (message.from_id, message.group_id) == ("cliVision", "grpVision")


async def test_parse_v3_frame_maps_an_integer_to_id(dialect: V2Dialect) -> None:
    text = '{"msg_type": "msg", "target": "direct", "to_id": 42}'
    assert (await dialect.parse(text, make_connection())).to_id == "cliB"


@pytest.mark.parametrize(
    ("text", "code", "detail"),
    [
        (
            '{"msg_type": "msg", "target": "group", "from_id": 18}',
            "spoofed-from-id",
            "from_id must be your own ID or omitted",
        ),
        (
            '{"msg_type": "msg", "target": "group", "group_id": "grpOther"}',
            "spoofed-group-id",
            "group_id must be your own group or omitted;"
            " use target 'direct' to reach another group",
        ),
        ('{"msg_type": "msg", "target": "group", "to": 1}', "unknown-field", "unknown field 'to'"),
        (
            '{"msg_type": "heartbeat", "target": "group"}',
            "invalid-target",
            "a client's heartbeat message must use target 'echo'",
        ),
        (
            '{"msg_type": "msg", "target": "direct"}',
            "missing-to-id",
            "target 'direct' requires 'to_id'",
        ),
    ],
    ids=["spoofed-from", "spoofed-group", "unknown-field", "heartbeat-target", "no-to-id"],
)
async def test_parse_v3_frames_are_strict(
    dialect: V2Dialect, text: str, code: str, detail: str
) -> None:
    rejected = await rejection(dialect, text, **LEGACY_CONN)
    assert (rejected.code, rejected.detail) == (code, detail)


async def test_parse_broadcast_can_be_forbidden(mapper: IdMapper) -> None:
    rejected = await rejection(V2Dialect(mapper, allow_broadcast=False), '{"broadcast": true}')
    assert rejected.code == "broadcast-forbidden"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("[" * 10_000 + "]" * 10_000, "untranslatable"),
        ('{"data": ' + "[" * 300 + "]" * 300 + "}", "untranslatable"),
        ('{"data": ' + "[" * 220 + "]" * 220 + "}", "invalid-json"),
        ("7" * 5_000, "untranslatable"),
        ('{"n": NaN}', "invalid-json"),
        ('{"msg": "\\udc00"}', "untranslatable"),
    ],
    ids=["depth-10000", "depth-300", "depth-220", "5000-digits", "nan", "lone-surrogate"],
)
async def test_parse_hostile_input_is_a_rejection(dialect: V2Dialect, text: str, code: str) -> None:
    assert (await rejection(dialect, text)).code == code


async def test_parse_unknown_integer_to_is_invalid_id() -> None:
    with respx.mock(base_url=BASE) as api:
        api.get("/clients/5").respond(404)
        upstream = UpstreamIdLookup(BASE, timeout=0.2)
        rejected = await rejection(
            V2Dialect(IdMapper(MemoryIdStore(), upstream=upstream)), '{"to": 5}'
        )
        await upstream.aclose()
    assert (rejected.code, rejected.detail) == (
        "invalid-id",
        "to_id: unknown legacy client ID 5; see docs/migration-guide.md",
    )


async def test_parse_to_while_the_lookup_is_down_is_publish_failed() -> None:
    with respx.mock(base_url=BASE) as api:
        api.get("/clients/5").respond(503)
        upstream = UpstreamIdLookup(BASE, timeout=0.2)
        rejected = await rejection(
            V2Dialect(IdMapper(MemoryIdStore(), upstream=upstream)), '{"to": 5}'
        )
        await upstream.aclose()
    assert (rejected.code, rejected.detail) == (
        "publish-failed",
        "to_id: legacy ID lookup unavailable; retry with backoff",
    )


def test_render_uses_the_integers_the_envelope_carries(dialect: V2Dialect) -> None:
    text = (
        '{"version":"3","msg_type":"msg","target":"group","from_id":"a","group_id":"b","msg":"x"}'
    )
    envelope = Envelope(origin="n1", text=text, tags=legacy_tags(group="3", client="17"))
    assert dialect.render(envelope) == (
        '{"type":"msg","target":"group","msg":"x","from":17,"group":3,"sent_at":null}'
    )


async def test_render_uses_integers_this_node_resolved(
    dialect: V2Dialect, mapper: IdMapper
) -> None:
    """A heartbeat echo carries no integers in its envelope; the node's cache has them."""
    group_id = await mapper.to_vision("group", "3")
    await mapper.to_vision("client", "42")  # "cliB" in the store
    text = json.dumps(
        {"msg_type": "heartbeat", "target": "echo", "from_id": "cliB", "group_id": group_id}
    )
    rendered = json.loads(dialect.render(Envelope(origin="n1", text=text)))
    assert rendered == {
        "type": "heartbeat",
        "target": "echo",
        "from": 42,
        "group": 3,
        "sent_at": None,
    }


def test_render_error(dialect: V2Dialect) -> None:
    rendered = dialect.render_error(
        MessageRejected("invalid-json", "the frame looks like JSON but is not")
    )
    assert json.loads(rendered) == {
        "type": "error",
        "target": "echo",
        "msg": "the frame looks like JSON but is not",
        "data": {"code": "invalid-json"},
        "from": None,
        "group": None,
        "sent_at": None,
    }


# -- legacy and V3 clients in one group, through a real ConnectionManager ------------------


@pytest.fixture
async def manager() -> AsyncIterator[ConnectionManager]:
    async with open_backends(None, prefix="t:", node_channel="t:n:1", presence_ttl=30) as backends:
        async with ConnectionManager(
            backends, node_id="n1", channels=Channels("t:"), presence_ttl=30
        ) as running:
            yield running


def frames(sender: RecordingSender) -> list[dict[str, Any]]:
    """What a client received, presence events left out."""
    received = [json.loads(text) for text in sender.sent]
    return [f for f in received if f.get("type", f.get("msg_type")) != "presence"]


async def test_legacy_and_v3_clients_see_each_other(
    manager: ConnectionManager, dialect: V2Dialect, mapper: IdMapper
) -> None:
    group = await mapper.resolve("group", "3")
    legacy_client = await mapper.resolve("client", "17")
    legacy_out, v3_out = RecordingSender(), RecordingSender()
    async with (
        manager.connect(
            group.vision_id,
            legacy_client.vision_id,
            legacy_out,
            dialect=dialect,
            tags=legacy_tags(group=group.legacy, client=legacy_client.legacy),
        ) as legacy,
        manager.connect(group.vision_id, "cliV3", v3_out) as modern,
    ):
        legacy.start_writer()
        modern.start_writer()
        await manager.receive(legacy, '{"msg": "from v2", "data": {"a": 1}}')
        await manager.receive(modern, '{"msg_type": "cmd", "target": "group", "cmd": "RELOAD"}')
        await eventually(lambda: len(frames(legacy_out)) == 2 and len(frames(v3_out)) == 2)
    v3_seen = frames(v3_out)[0]
    assert (v3_seen["msg"], v3_seen["payload"], v3_seen["from_id"]) == (
        "from v2",
        {"a": 1},
        legacy_client.vision_id,
    )
    legacy_seen = frames(legacy_out)[1]
    del legacy_seen["sent_at"]
    assert legacy_seen == {
        "type": "cmd",
        "target": "group",
        "cmd": "RELOAD",
        "from": "cliV3",
        "group": 3,
    }


async def test_legacy_ping_gets_a_v2_heartbeat_echo(
    manager: ConnectionManager, dialect: V2Dialect, mapper: IdMapper
) -> None:
    group = await mapper.resolve("group", "3")
    client = await mapper.resolve("client", "17")
    out = RecordingSender()
    async with manager.connect(
        group.vision_id,
        client.vision_id,
        out,
        dialect=dialect,
        tags=legacy_tags(group=group.legacy, client=client.legacy),
    ) as conn:
        conn.start_writer()
        await manager.receive(conn, "ping")
        await eventually(lambda: len(frames(out)) == 1)
    reply = frames(out)[0]
    del reply["sent_at"]
    assert reply == {"type": "heartbeat", "target": "echo", "from": 17, "group": 3}


async def test_legacy_rejected_frame_gets_a_v2_error(
    manager: ConnectionManager, dialect: V2Dialect
) -> None:
    out = RecordingSender()
    async with manager.connect("grpA", "cliA", out, dialect=dialect) as conn:
        conn.start_writer()
        await manager.receive(conn, '{"msg": 5}')
        await eventually(lambda: len(frames(out)) == 1)
    assert frames(out) == [
        {
            "type": "error",
            "target": "echo",
            "msg": "'msg' must be a string",
            "data": {"code": "invalid-field"},
            "from": None,
            "group": None,
            "sent_at": None,
        }
    ]


async def test_legacy_client_sees_its_own_join_and_can_list_members(
    manager: ConnectionManager, dialect: V2Dialect, mapper: IdMapper
) -> None:
    """How a legacy frontend finds its Vision IDs (docs/migration-guide.md, step 1)."""
    group = await mapper.resolve("group", "3")
    client = await mapper.resolve("client", "17")
    out = RecordingSender()
    async with manager.connect(
        group.vision_id,
        client.vision_id,
        out,
        dialect=dialect,
        tags=legacy_tags(group=group.legacy, client=client.legacy),
    ) as conn:
        conn.start_writer()
        await manager.receive(conn, '{"msg_type": "presence", "target": "echo"}')
        await eventually(lambda: len(out.sent) == 2)
    received = [json.loads(text) for text in out.sent]
    for frame in received:
        del frame["sent_at"]
    # The join travels through the broker, the member list does not: either may come first.
    assert sorted(received, key=lambda frame: frame["target"]) == [
        {
            "type": "presence",
            "target": "echo",
            "data": {"clients": [client.vision_id]},
            "from": 17,
            "group": 3,
        },
        {
            "type": "presence",
            "target": "group",
            "data": {"event": "join", "client_id": client.vision_id},
            "from": None,  # a legacy frontend reads it on every frame
            "group": 3,
        },
    ]


# -- heartbeat(): what a frame over the rate limit may be, without I/O (issue 15 #9) -------


class NoIoStore(MemoryIdStore):
    """An ID store that fails the test if anything reads or writes it."""

    async def get(self, namespace: Any, legacy: str) -> str | None:
        raise AssertionError("heartbeat() read the ID store")

    async def put_if_absent(self, namespace: Any, legacy: str, vision_id: str) -> str:
        raise AssertionError("heartbeat() wrote the ID store")


@pytest.mark.parametrize(
    "text",
    ["ping", ' {"type": "ping", "to": 5} ', '{"type": "heartbeat"}', HEARTBEAT_V3],
    ids=["text-ping", "type-ping-with-to", "type-heartbeat", "v3-heartbeat"],
)
def test_heartbeat_recognises_every_heartbeat_form(text: str) -> None:
    message = V2Dialect(IdMapper(NoIoStore())).heartbeat(text, make_connection(**LEGACY_CONN))
    assert message is not None
    assert (message.msg_type, message.target, message.from_id) == ("heartbeat", "echo", "cliVision")


@pytest.mark.parametrize(
    "text", ['{"msg": "ping", "to": 5}', '{"msg_type": "msg", "target": "direct", "to_id": 5}']
)
def test_heartbeat_is_none_for_anything_else_and_looks_nothing_up(text: str) -> None:
    assert V2Dialect(IdMapper(NoIoStore())).heartbeat(text, make_connection()) is None
