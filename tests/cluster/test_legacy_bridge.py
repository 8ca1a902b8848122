"""Legacy V2 clients and V3 clients on two real node processes sharing one Redis."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from translators import RedisIdStore

from ..helpers import assert_silent, connect, recv_msg, send_json, v3

pytestmark = pytest.mark.cluster


@pytest.fixture
def nodes(redis_node_pair):
    return redis_node_pair


@pytest.fixture
async def id_store(redis_url, module_prefix):
    store = RedisIdStore(redis_url, prefix=module_prefix)
    yield store
    await store.aclose()


async def legacy(base: str, group: str, client: str, path: str = "ws"):
    return await connect(base, f"/{path}/group/{group}/client/{client}")


async def recv_v2(ws) -> dict[str, Any]:
    """The next V2 frame that is not a presence event."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 3))
        if frame.get("type") != "presence":
            return frame


async def test_legacy_and_v3_clients_in_one_group_see_each_other_across_nodes(nodes, id_store):
    a, b = nodes
    old = await legacy(a.ws, "5", "77")
    old_redis = await legacy(b.ws, "5", "78", path="ws_redis")
    group = await id_store.get("group", "5")
    assert group is not None
    new = await v3(b.ws, group, "modern")
    async with old, old_redis, new:
        await old.send("hello from v2")
        frame = await recv_msg(new)
        assert (frame["msg_type"], frame["target"], frame["msg"]) == (
            "msg",
            "group",
            "hello from v2",
        )
        assert frame["from_id"] == await id_store.get("client", "77")
        assert (await recv_v2(old_redis))["msg"] == "hello from v2"
        own = await recv_v2(old)
        assert (own["msg"], own["from"], own["group"]) == ("hello from v2", 77, 5)

        await send_json(
            new, {"msg_type": "cmd", "target": "group", "cmd": "RELOAD", "payload": {"k": 1}}
        )
        for ws in (old, old_redis):
            frame = await recv_v2(ws)
            assert frame["cmd"] == "RELOAD"
            assert frame["data"] == {"k": 1}
            assert frame["type"] == "cmd"
            assert frame["from"] == "modern"
            assert frame["group"] == 5


async def test_integer_direct_messages_cross_nodes(nodes, id_store):
    a, b = nodes
    sender, receiver, bystander = (
        await legacy(a.ws, "5", "77"),
        await legacy(b.ws, "9", "88"),
        await legacy(b.ws, "9", "89"),
    )
    async with sender, receiver, bystander:
        await sender.send(json.dumps({"to": 88, "msg": "psst", "data": {"n": 1}}))
        frame = await recv_v2(receiver)
        assert (frame["msg"], frame["data"], frame["from"], frame["target"]) == (
            "psst",
            {"n": 1},
            77,
            "direct",
        )
        await assert_silent(bystander)


async def test_legacy_client_reaches_a_v3_client_by_integer(nodes, id_store, redis_url):
    a, b = nodes
    # A V3 client whose Vision ID was minted for database integer 501.
    first = await legacy(a.ws, "5", "501")
    await first.close()
    vision = await id_store.get("client", "501")
    modern = await v3(b.ws, "elsewhere", vision)
    sender = await legacy(a.ws, "5", "78")  # a client of its own: no replay of earlier tests
    async with modern, sender:
        await sender.send(json.dumps({"to": 501, "msg": "by integer"}))
        frame = await recv_msg(modern)
        assert (frame["msg"], frame["to_id"]) == ("by integer", vision)


async def test_v3_client_reaches_a_legacy_client_by_vision_id(nodes, id_store):
    a, b = nodes
    old = await legacy(a.ws, "5", "79")
    vision = await id_store.get("client", "79")
    new = await v3(b.ws, "other", "modern")
    async with old, new:
        await send_json(new, {"msg_type": "msg", "target": "direct", "to_id": vision, "msg": "hi"})
        frame = await recv_v2(old)
        assert (frame["msg"], frame["from"], frame["target"]) == ("hi", "modern", "direct")


async def test_broadcast_reaches_both_kinds_on_both_nodes(nodes):
    a, b = nodes
    clients = [
        await legacy(a.ws, "1", "11"),
        await legacy(b.ws, "2", "22"),
        await v3(a.ws, "g3", "c3"),
        await v3(b.ws, "g4", "c4"),
    ]
    try:
        await clients[0].send(json.dumps({"broadcast": True, "cmd": "MAINT"}))
        for ws in clients[:2]:
            assert (await recv_v2(ws))["cmd"] == "MAINT"
        for ws in clients[2:]:
            frame = await recv_msg(ws)
            assert (frame["target"], frame["cmd"]) == ("broadcast", "MAINT")
    finally:
        for ws in clients:
            await ws.close()


async def test_same_integer_gets_one_vision_id_when_both_nodes_connect_at_once(nodes, id_store):
    a, b = nodes
    for round_ in range(5):
        group, client = str(1000 + round_), str(2000 + round_)
        one, two = await asyncio.gather(legacy(a.ws, group, client), legacy(b.ws, group, client))
        async with one, two:
            # Both tabs are one client in one group: a message from one reaches the other.
            await one.send(f"round {round_}")
            assert (await recv_v2(two))["msg"] == f"round {round_}"
            assert (await recv_v2(one))["msg"] == f"round {round_}"
        assert await id_store.get("group", group) is not None


async def test_legacy_ping_is_answered_in_v2_shape(nodes):
    a, _ = nodes
    ws = await legacy(a.ws, "5", "80")
    async with ws:
        await ws.send("ping")
        frame = await recv_v2(ws)
        assert (frame["type"], frame["target"]) == ("heartbeat", "echo")


async def test_bad_legacy_path_id_closes_1008(nodes):
    a, _ = nodes
    ws = await connect(a.ws, "/ws/group/bad*id/client/77")
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
