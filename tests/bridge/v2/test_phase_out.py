"""Phasing V2 out (docs/ops-runbook.md §8): the mode on real nodes, over HTTP, on both backends."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import websockets

from ...helpers import (
    MS,
    assert_silent,
    connect,
    eventually,
    recv_json,
    recv_msg,
    send_json,
    v3,
)


@pytest.fixture(autouse=True)
def fast_v2(monkeypatch):
    """Nodes refresh the policy and flush usage every 0.1 s instead of every 1 s and 5 s."""
    monkeypatch.setenv("AETHER_V2_REFRESH_INTERVAL", "0.1")
    monkeypatch.setenv("AETHER_V2_USAGE_INTERVAL", "0.1")


async def legacy(base: str, group: str, client: str):
    return await connect(base, f"/ws/group/{group}/client/{client}")


async def put_mode(node, **body) -> httpx.Response:
    async with httpx.AsyncClient(base_url=node.http) as http:
        return await http.put("/v2/mode", json=body)


async def get_json(node, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=node.http) as http:
        response = await http.get(path)
        assert response.status_code == 200, response.text
        return response.json()


async def node_applies(node, expected: dict[str, Any]) -> None:
    async def check() -> bool:
        return await get_json(node, "/v2/mode") == expected

    await eventually(check, timeout=2000 * MS)


async def closed_frame(ws):
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd


async def test_open_by_default_sends_nothing_extra(server):
    ws = await legacy(server.ws, "grp_a", "dev_1")
    async with ws:
        await assert_silent(ws)
        await send_json(ws, {"msg": "hi", "echo": True})
        assert (await recv_msg(ws))["msg"] == "hi"


async def test_closed_on_one_node_refuses_on_the_other_with_the_v3_path(two_nodes):
    a, b = two_nodes
    response = await put_mode(a, mode="closed")
    assert response.json() == {"global": "closed", "groups": {}}
    await node_applies(b, {"global": "closed", "groups": {}})
    frame = await closed_frame(await legacy(b.ws, "grp_a", "dev_1"))
    assert frame.code == 1008
    assert frame.reason == "V2 closed; use /v3/ws/group/grp_a/client/dev_1"


async def test_closed_refusal_names_the_vision_ids_of_legacy_integers(server):
    await put_mode(server, mode="closed")
    frame = await closed_frame(await legacy(server.ws, "3", "17"))
    assert frame.code == 1008
    path = frame.reason.removeprefix("V2 closed; use ")
    ws = await connect(server.ws, path)  # the V3 path it gives is one a V3 client can use
    async with ws:
        await send_json(ws, {"msg_type": "msg", "target": "echo", "msg": "moved"})
        assert (await recv_msg(ws))["msg"] == "moved"


async def test_refused_legacy_client_leaves_no_presence(server):
    await put_mode(server, mode="closed")
    await closed_frame(await legacy(server.ws, "grp_a", "dev_1"))
    assert (await get_json(server, "/v3/groups/grp_a/presence"))["clients"] == []


async def test_warn_sends_a_notice_then_normal_traffic(two_nodes):
    a, b = two_nodes
    await put_mode(a, mode="warn")
    await node_applies(b, {"global": "warn", "groups": {}})
    ws = await legacy(b.ws, "grp_a", "dev_1")
    async with ws:
        notice = await recv_json(ws)  # the first frame, ahead of presence events
        assert notice == {
            "type": "cmd",
            "target": "echo",
            "cmd": "deprecation",
            "msg": "the V2 protocol is deprecated; connect to /v3/ws/group/grp_a/client/dev_1 "
            "(see docs/migration-guide.md)",
            "data": {
                "v3_url": "/v3/ws/group/grp_a/client/dev_1",
                "mode": "warn",
                "guide": "docs/migration-guide.md",
            },
            "from": None,
            "group": None,
            "sent_at": None,
        }
        await send_json(ws, {"msg": "hi", "echo": True})
        assert (await recv_msg(ws))["msg"] == "hi"


async def test_group_override_wins_over_global(two_nodes):
    a, b = two_nodes
    await put_mode(a, mode="closed")
    await put_mode(a, mode="open", group_id="grp_ok")
    await node_applies(b, {"global": "closed", "groups": {"grp_ok": "open"}})
    ws = await legacy(b.ws, "grp_ok", "dev_1")
    async with ws:
        await assert_silent(ws)
    assert (await closed_frame(await legacy(b.ws, "grp_other", "dev_1"))).code == 1008


async def test_group_override_by_legacy_integer_and_its_removal(server):
    """(One node: in-process memory nodes do not share their legacy ID mappings.)"""
    set_response = await put_mode(server, mode="closed", group_id=3)
    [group_id] = set_response.json()["groups"]
    assert group_id != "3"  # stored under the group's Vision ID
    assert (await closed_frame(await legacy(server.ws, "3", "17"))).code == 1008
    cleared = await put_mode(server, mode=None, group_id="3")
    assert cleared.json() == {"global": "open", "groups": {}}
    ws = await legacy(server.ws, "3", "17")
    async with ws:
        await assert_silent(ws)


async def test_v3_clients_are_not_affected(server):
    await put_mode(server, mode="closed")
    ws = await v3(server.ws, "grp_a", "dev_1")
    async with ws:
        await send_json(ws, {"msg_type": "msg", "target": "echo", "msg": "v3"})
        assert (await recv_msg(ws))["msg"] == "v3"


async def test_usage_shows_groups_clients_counts_and_last_seen(two_nodes):
    """Connected on node A, reported by node B (both flush to the shared store)."""
    a, b = two_nodes
    talker = await legacy(a.ws, "3", "17")
    quiet = await legacy(a.ws, "3", "dev_quiet")
    async with talker, quiet:
        for text in ("one", "two"):
            await send_json(talker, {"msg": text, "echo": True})
            await recv_msg(talker)

        async def both_counted() -> bool:
            report = await get_json(b, "/v2/usage")
            clients = {c["client_id"]: c for g in report["groups"] for c in g["clients"]}
            return len(clients) == 2 and 2 in {c["messages"] for c in clients.values()}

        await eventually(both_counted, timeout=3000 * MS)
    [group] = (await get_json(b, "/v2/usage"))["groups"]
    assert (group["group_legacy"], group["messages"]) == ("3", 2)
    assert group["last_seen"].endswith("Z")
    by_legacy = {c["client_legacy"]: c for c in group["clients"]}
    assert (by_legacy["17"]["messages"], by_legacy["17"]["connects"]) == (2, 1)
    quiet_row = by_legacy[None]
    assert (quiet_row["client_id"], quiet_row["messages"], quiet_row["connects"]) == (
        "dev_quiet",
        0,
        1,
    )


async def test_v3_clients_are_not_counted_as_v2_usage(server):
    ws = await v3(server.ws, "grp_a", "dev_1")
    async with ws:
        await send_json(ws, {"msg_type": "msg", "target": "echo", "msg": "v3"})
        await recv_msg(ws)
    assert await get_json(server, "/v2/usage") == {"groups": []}


async def test_metrics_show_v2_connections_refusals_and_mode(server):
    ws = await legacy(server.ws, "grp_a", "dev_1")
    async with ws:
        await send_json(ws, {"msg": "hi", "echo": True})
        await recv_msg(ws)
        await put_mode(server, mode="closed", group_id="grp_b")
        await closed_frame(await legacy(server.ws, "grp_b", "dev_2"))
        async with httpx.AsyncClient(base_url=server.http) as http:
            lines = set((await http.get("/metrics")).text.splitlines())
    for line in (
        "aether_v2_connections 1.0",
        "aether_v2_connections_opened_total 1.0",
        "aether_v2_messages_total 1.0",
        "aether_v2_refused_total 1.0",
        "aether_v2_warned_total 0.0",
        'aether_v2_mode{group="*",mode="open"} 1.0',
        'aether_v2_mode{group="grp_b",mode="closed"} 1.0',
        'aether_v2_mode{group="grp_b",mode="open"} 0.0',
    ):
        assert line in lines, line


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"mode": "shut"}, 422, "invalid-body"),
        ({}, 422, "invalid-body"),
        ({"mode": "warn", "group": "g"}, 422, "invalid-body"),
        ({"mode": "warn", "group_id": True}, 422, "invalid-body"),
        ({"mode": "warn", "group_id": "bad*id"}, 422, "invalid-id"),
    ],
)
async def test_invalid_mode_change_gets_422_with_a_reason(server, body, status, code):
    response = await put_mode(server, **body)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.json()["detail"]


async def test_mode_change_that_is_not_json_gets_422(server):
    async with httpx.AsyncClient(base_url=server.http) as http:
        response = await http.put("/v2/mode", content=b"closed")
    assert (response.status_code, response.json()["code"]) == (422, "invalid-body")


async def test_null_global_mode_resets_to_open(server):
    await put_mode(server, mode="warn")
    response = await put_mode(server, mode=None)
    assert response.json() == {"global": "open", "groups": {}}
    assert (await get_json(server, "/v2/mode"))["global"] == "open"
