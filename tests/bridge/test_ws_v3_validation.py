"""Every rejected message gets one error reply; nobody else gets anything.

The rules are in docs/v3-frontend-guide.md, section 5.
"""

from __future__ import annotations

import json

import httpx
import pytest
import websockets

from ..helpers import assert_silent, recv_msg, send_json, v3

VALID = {"msg_type": "msg", "target": "group", "msg": "ok"}

REJECTED = [
    pytest.param("not json", "invalid-json", id="not-json"),
    pytest.param('"a string"', "not-an-object", id="json-string"),
    pytest.param("[1, 2]", "not-an-object", id="json-array"),
    pytest.param({**VALID, "colour": "red"}, "unknown-field", id="unknown-field"),
    pytest.param({**VALID, "msg": 5}, "invalid-field", id="wrong-type-msg"),
    pytest.param({**VALID, "payload": [1]}, "invalid-field", id="payload-not-object"),
    pytest.param({**VALID, "cmd": True}, "invalid-field", id="wrong-type-cmd"),
    pytest.param({"target": "group"}, "missing-field", id="missing-msg-type"),
    pytest.param({"msg_type": "msg"}, "missing-field", id="missing-target"),
    pytest.param({**VALID, "msg_type": "shout"}, "invalid-field", id="bad-msg-type"),
    pytest.param({**VALID, "target": "everyone"}, "invalid-field", id="bad-target"),
    pytest.param({"msg_type": "msg", "target": "direct"}, "missing-to-id", id="direct-no-to-id"),
    pytest.param({**VALID, "target": "direct", "to_id": "42"}, "invalid-id", id="to-id-integer"),
    pytest.param({**VALID, "target": "direct", "to_id": "a b"}, "invalid-id", id="to-id-space"),
    pytest.param({**VALID, "target": "direct", "to_id": "x" * 65}, "invalid-id", id="to-id-65"),
    pytest.param({**VALID, "version": "2"}, "invalid-version", id="version-2"),
    pytest.param({**VALID, "version": 3}, "invalid-version", id="version-int"),
    pytest.param({**VALID, "msg_type": "error"}, "server-only-type", id="error-type"),
    pytest.param({**VALID, "from_id": "mallory"}, "spoofed-from-id", id="spoofed-from"),
    pytest.param({**VALID, "group_id": "other"}, "spoofed-group-id", id="spoofed-group"),
    pytest.param({**VALID, "sent_at": "2026-01-01T00:00:00"}, "invalid-field", id="naive-sent-at"),
    pytest.param({"msg_type": "heartbeat", "target": "group"}, "invalid-target", id="hb-group"),
    pytest.param(
        '{"msg_type": "msg", "target": "group", "payload": {"x": NaN}}', "invalid-json", id="nan"
    ),
    pytest.param(
        '{"msg_type": "msg", "target": "group", "payload": {"x": 1e400}}',
        "invalid-json",
        id="1e400",
    ),
    pytest.param("[" * 10000 + "]" * 10000, "invalid-json", id="deep-nesting"),
    # Issue 15 #6: past a double without a three-digit exponent; they were delivered as null.
    pytest.param(
        '{"msg_type": "msg", "target": "group", "payload": {"x": 1%s.0}}' % ("0" * 400),
        "invalid-json",
        id="1-and-400-zeros",
    ),
    pytest.param(
        '{"msg_type": "msg", "target": "group", "payload": {"x": [-1%se99]}}' % ("0" * 300),
        "invalid-json",
        id="1-and-300-zeros-e99",
    ),
    # Issue 15 #11: a negative number is not an ID, as a string or not.
    pytest.param({**VALID, "target": "direct", "to_id": "-5"}, "invalid-id", id="to-id-negative"),
]


@pytest.mark.parametrize(("frame", "code"), REJECTED)
async def test_rejected_message_gets_one_error_and_reaches_nobody(server, frame, code):
    sender, peer = await v3(server.ws, "g1", "alice"), await v3(server.ws, "g1", "bob")
    async with sender, peer:
        await sender.send(frame if isinstance(frame, str) else json.dumps(frame))
        reply = await recv_msg(sender)
        assert reply["version"] == "3"
        assert (reply["msg_type"], reply["target"]) == ("error", "echo")
        assert reply["payload"]["code"] == code
        assert isinstance(reply["msg"], str) and reply["msg"]
        # The connection stays usable, and since one connection's messages arrive in order,
        # "ok" being the next frame on both sides proves the rejected one went nowhere.
        await send_json(sender, VALID)
        assert (await recv_msg(sender))["msg"] == "ok"
        assert (await recv_msg(peer))["msg"] == "ok"


async def test_client_broadcast_can_be_turned_off(backend_url, make_settings):
    from ..conftest import serve_app

    async with serve_app(make_settings(redis_url=backend_url, client_broadcast=False)) as node:
        ws, peer = await v3(node.ws, "g1", "alice"), await v3(node.ws, "g2", "bob")
        async with ws, peer:
            await send_json(ws, {"msg_type": "msg", "target": "broadcast", "msg": "all"})
            reply = await recv_msg(ws)
            assert reply["payload"]["code"] == "broadcast-forbidden"
            await assert_silent(peer)


async def test_frame_over_the_size_limit_closes_1009(server):
    ws = await v3(server.ws, "g1", "alice")
    await ws.send("x" * (1 << 20))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.recv()
        await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


async def test_frame_at_the_size_limit_is_accepted(server):
    ws = await v3(server.ws, "g1", "alice")
    async with ws:
        filler = "y" * (65536 - len(json.dumps({**VALID, "msg": ""})))
        await send_json(ws, {**VALID, "msg": filler})
        assert (await recv_msg(ws))["msg"] == filler


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("/v3/ws/group/123/client/alice", "group_id '123'"),
        ("/v3/ws/group/g1/client/42", "client_id '42'"),
        ("/v3/ws/group/g1/client/" + "a" * 65, "client_id 'aaaa"),
        ("/v3/ws/group/g%20x/client/alice", "group_id 'g x'"),
        ("/v3/ws/group/g1/client/al*ce", "client_id 'al*ce'"),
        ("/v3/ws/group/team%0A/client/alice", "group_id 'team\\n'"),
        ("/v3/ws/group/-5/client/alice", "group_id '-5'"),
    ],
)
async def test_bad_path_id_is_accepted_then_closed_1008_with_reason(server, path, bad):
    from ..helpers import connect

    ws = await connect(server.ws, path)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.recv()
    frame = closed.value.rcvd
    assert frame is not None
    assert frame.code == 1008
    assert bad in frame.reason
    assert "migration-guide" in frame.reason
    assert len(frame.reason.encode()) <= 123


async def test_foreign_origin_is_refused_before_accept(make_settings):
    from ..conftest import serve_app
    from ..helpers import connect

    settings = make_settings(allowed_origins=["https://app.example.com"])
    async with serve_app(settings) as node:
        path = "/v3/ws/group/g1/client/alice"
        for origin in ("https://app.example.com.evil.io", "null", "https://evil.io"):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await connect(node.ws, path, origin=origin)
            assert refused.value.response.status_code == 403
        ws = await connect(node.ws, path, origin="https://app.example.com")
        await ws.close()
        ws = await connect(node.ws, path)  # no Origin: not a browser, allowed (documented)
        await ws.close()


@pytest.mark.parametrize(
    "path",
    [
        "/v3/ws/group/g1",  # a segment missing
        "/v3/ws/group/g1/client/alice/extra",  # one too many
        "/v3/ws/groups/g1/client/alice",  # a typo
        "/socket.io/",
    ],
)
async def test_a_websocket_path_we_do_not_serve_gets_404_not_a_refusal(server, path):
    from ..helpers import connect

    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(server.ws, path)
    response = refused.value.response
    assert response.status_code == 404
    assert b"/v3/ws/group/{group_id}/client/{client_id}" in response.body
    async with httpx.AsyncClient() as http:  # HTTP on the same node is untouched
        assert (await http.get(f"{server.http}/healthz")).status_code == 200
