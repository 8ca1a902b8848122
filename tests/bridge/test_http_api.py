"""The HTTP API: health, readiness, metrics, presence, server-side publish."""

from __future__ import annotations

import httpx
import pytest

from ..helpers import recv_msg, send_json, v3


@pytest.fixture
async def http(server):
    async with httpx.AsyncClient(base_url=server.http) as client:
        yield client


async def test_healthz(http):
    response = await http.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_when_the_broker_answers(http):
    response = await http.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_metrics_count_connections_and_messages(server, http):
    ws = await v3(server.ws, "g1", "alice")
    async with ws:
        await send_json(ws, {"msg_type": "msg", "target": "group", "msg": "x"})
        await recv_msg(ws)
        await send_json(ws, {"msg_type": "nope", "target": "group"})
        await recv_msg(ws)
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = set(response.text.splitlines())
    assert "aether_connections 1.0" in lines
    assert "aether_messages_received_total 2.0" in lines
    assert "aether_messages_rejected_total 1.0" in lines
    assert "aether_broker_ready 1.0" in lines


async def test_presence_rejects_a_non_vision_group_id(http):
    response = await http.get("/v3/groups/123/presence")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid-id"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "invalid-json"),
        ('{"msg_type":"msg","target":"group"}', "missing-field"),
        ('{"msg_type":"msg","target":"echo"}', "invalid-target"),
        ('{"msg_type":"msg","target":"group","group_id":"g1","x":1}', "unknown-field"),
        ('{"msg_type":"heartbeat","target":"broadcast"}', "invalid-field"),
    ],
)
async def test_invalid_publish_gets_422_with_a_reason(http, body, code):
    response = await http.post(
        "/v3/messages", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == code
    assert response.json()["detail"]


async def test_publish_direct_from_the_platform(server, http):
    ws = await v3(server.ws, "g1", "alice")
    async with ws:
        response = await http.post(
            "/v3/messages",
            json={"msg_type": "msg", "target": "direct", "to_id": "alice", "msg": "from ops"},
        )
        assert (response.status_code, response.json()) == (202, {"status": "accepted"})
        frame = await recv_msg(ws)
        assert (frame["msg"], frame["to_id"]) == ("from ops", "alice")
        assert frame["sent_at"].endswith("Z")


async def test_openapi_documents_the_message_body(http):
    spec = (await http.get("/openapi.json")).json()
    body = spec["paths"]["/v3/messages"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["title"] == "WS_Message_V3"


async def test_publish_over_the_size_limit_gets_413(http):
    body = '{"msg_type":"msg","target":"broadcast","msg":"' + "x" * 70000 + '"}'
    response = await http.post(
        "/v3/messages", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "message-too-big"
