"""Routing of every target, on one node and across two, on the memory and Redis backends."""

from __future__ import annotations

import asyncio

import httpx

from ..helpers import assert_silent, eventually, recv_json, recv_msg, send_json, v3


async def test_group_message_reaches_every_member_including_sender(two_nodes):
    """A group message reaches the sender and members on the other node, not other groups."""
    a, b = two_nodes
    alice, bob, outsider = (
        await v3(a.ws, "g1", "alice"),
        await v3(b.ws, "g1", "bob"),
        await v3(b.ws, "g2", "carol"),
    )
    async with alice, bob, outsider:
        await send_json(alice, {"msg_type": "msg", "target": "group", "msg": "hello"})
        for ws in (alice, bob):
            frame = await recv_msg(ws)
            assert frame["msg"] == "hello"
            assert frame["from_id"] == "alice"
            assert frame["group_id"] == "g1"
            assert frame["version"] == "3"
            assert frame["sent_at"].endswith("Z")
        await assert_silent(outsider)


async def test_direct_message_crosses_groups_and_nodes_without_copy_to_sender(two_nodes):
    a, b = two_nodes
    alice, carol = await v3(a.ws, "g1", "alice"), await v3(b.ws, "g2", "carol")
    async with alice, carol:
        await send_json(
            alice, {"msg_type": "msg", "target": "direct", "to_id": "carol", "msg": "psst"}
        )
        frame = await recv_msg(carol)
        assert (frame["target"], frame["to_id"], frame["msg"]) == ("direct", "carol", "psst")
        assert frame["from_id"] == "alice"
        await assert_silent(alice)


async def test_direct_message_reaches_every_tab_of_the_recipient(two_nodes):
    a, b = two_nodes
    alice, tab1, tab2 = (
        await v3(a.ws, "g1", "alice"),
        await v3(a.ws, "g2", "dan"),
        await v3(b.ws, "g2", "dan"),
    )
    async with alice, tab1, tab2:
        await send_json(alice, {"msg_type": "cmd", "target": "direct", "to_id": "dan", "cmd": "GO"})
        for tab in (tab1, tab2):
            assert (await recv_msg(tab))["cmd"] == "GO"


async def test_broadcast_reaches_every_group_on_both_nodes(two_nodes):
    a, b = two_nodes
    clients = [
        await v3(a.ws, "g1", "alice"),
        await v3(a.ws, "g2", "bob"),
        await v3(b.ws, "g3", "carol"),
    ]
    try:
        await send_json(clients[0], {"msg_type": "cmd", "target": "broadcast", "cmd": "MAINT"})
        for ws in clients:
            frame = await recv_msg(ws)
            assert (frame["target"], frame["cmd"], frame["from_id"]) == (
                "broadcast",
                "MAINT",
                "alice",
            )
    finally:
        for ws in clients:
            await ws.close()


async def test_echo_returns_to_the_sending_connection_only(two_nodes):
    a, b = two_nodes
    tab1, tab2, peer = (
        await v3(a.ws, "g1", "alice"),
        await v3(b.ws, "g1", "alice"),
        await v3(a.ws, "g1", "bob"),
    )
    async with tab1, tab2, peer:
        await send_json(tab1, {"msg_type": "msg", "target": "echo", "msg": "ping!"})
        frame = await recv_msg(tab1)
        assert (frame["target"], frame["msg"], frame["from_id"]) == ("echo", "ping!", "alice")
        await assert_silent(tab2)
        await assert_silent(peer)


async def test_messages_from_one_connection_arrive_in_order(two_nodes):
    a, b = two_nodes
    alice, bob = await v3(a.ws, "g1", "alice"), await v3(b.ws, "g1", "bob")
    async with alice, bob:
        for i in range(200):
            await send_json(alice, {"msg_type": "msg", "target": "group", "payload": {"i": i}})
        received = [(await recv_msg(bob))["payload"]["i"] for _ in range(200)]
        assert received == list(range(200))


async def test_http_publish_uses_the_same_routing(two_nodes):
    a, b = two_nodes
    bob, carol = await v3(b.ws, "g1", "bob"), await v3(b.ws, "g2", "carol")
    async with bob, carol, httpx.AsyncClient() as http:
        response = await http.post(
            f"{a.http}/v3/messages",
            json={"msg_type": "cmd", "target": "group", "group_id": "g1", "cmd": "RELOAD"},
        )
        assert response.status_code == 202
        frame = await recv_msg(bob)
        assert (frame["cmd"], frame["group_id"]) == ("RELOAD", "g1")
        assert "from_id" not in frame
        await assert_silent(carol)


async def test_subscription_is_live_when_the_handshake_completes(two_nodes):
    """A message published right after the socket opens reaches it."""
    a, b = two_nodes
    async with httpx.AsyncClient() as http:
        for i in range(10):
            ws = await v3(a.ws, f"fresh{i}", "alice")
            async with ws:
                response = await http.post(
                    f"{b.http}/v3/messages",
                    json={
                        "msg_type": "msg",
                        "target": "group",
                        "group_id": f"fresh{i}",
                        "msg": "now",
                    },
                )
                assert response.status_code == 202
                assert (await recv_msg(ws))["msg"] == "now"


async def test_presence_join_and_leave_events_reach_group_members(two_nodes):
    a, b = two_nodes
    alice = await v3(a.ws, "g1", "alice")
    async with alice:
        assert (await recv_json(alice))["payload"] == {"event": "join", "client_id": "alice"}
        bob = await v3(b.ws, "g1", "bob")
        frame = await recv_json(alice)
        assert (frame["msg_type"], frame["payload"]) == (
            "presence",
            {"event": "join", "client_id": "bob"},
        )
        await bob.close()
        frame = await asyncio.wait_for(recv_json(alice), 1.0)
        assert frame["payload"] == {"event": "leave", "client_id": "bob"}


async def test_two_tabs_are_listed_once_and_closing_one_changes_nothing(two_nodes):
    a, b = two_nodes
    async with httpx.AsyncClient() as http:

        async def members() -> list[str]:
            response = await http.get(f"{a.http}/v3/groups/g1/presence")
            return response.json()["clients"]

        observer = await v3(a.ws, "g1", "obs")
        tab1, tab2 = await v3(a.ws, "g1", "alice"), await v3(b.ws, "g1", "alice")
        async with observer:
            assert await members() == ["alice", "obs"]
            await tab1.close()
            await assert_silent(observer, 0.3)
            assert await members() == ["alice", "obs"]
            await tab2.close()
            await eventually(lambda: _eq(members(), ["obs"]), 1.0)


async def _eq(coro, expected) -> bool:
    return await coro == expected


async def test_presence_echo_lists_current_members(two_nodes):
    a, b = two_nodes
    alice, bob = await v3(a.ws, "g1", "alice"), await v3(b.ws, "g1", "bob")
    async with alice, bob:
        await send_json(alice, {"msg_type": "presence", "target": "echo"})
        frame = await recv_msg(alice)
        assert (frame["msg_type"], frame["target"]) == ("presence", "echo")
        assert frame["payload"] == {"clients": ["alice", "bob"]}


async def test_presence_of_an_empty_group_is_an_empty_list(server):
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.http}/v3/groups/nobody/presence")
    assert response.status_code == 200
    assert response.json() == {"group_id": "nobody", "clients": []}


async def test_heartbeat_is_answered_with_a_heartbeat_echo(server):
    ws = await v3(server.ws, "g1", "alice")
    async with ws:
        await send_json(ws, {"msg_type": "heartbeat", "target": "echo"})
        frame = await recv_msg(ws)
        assert (frame["msg_type"], frame["target"], frame["from_id"]) == (
            "heartbeat",
            "echo",
            "alice",
        )
