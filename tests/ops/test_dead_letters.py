"""Dead letters on real nodes: refused legacy frames and unreadable broker messages are kept
as cut samples, counted per code in /metrics, and listed by GET /v2/dead-letters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets

from bridge.settings import Settings
from v3_core import Channels

from ..conftest import RunningServer, embedded_backends, serve_app
from ..helpers import MS, connect, eventually, metrics, recv_msg, send_json, v3
from ..support.aether_api import UPSTREAM, mock_aether_api

TOO_DEEP = "[" * 10_000 + "]" * 10_000  # untranslatable: nested past what JSON can carry
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkZXYifQ.c2lnbmF0dXJl"


@pytest.fixture
async def node(
    backend_url: str | None, make_settings: Callable[..., Settings]
) -> AsyncIterator[RunningServer]:
    settings = make_settings(redis_url=backend_url, node_id="nodeA", max_message_bytes=32768)
    async with serve_app(settings, **(embedded_backends() if backend_url is None else {})) as n:
        yield n


async def dead_letters(node: RunningServer, **headers: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=node.http, headers=headers) as http:
        response = await http.get("/v2/dead-letters")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_refused_legacy_frames_are_kept_with_legacy_ids_and_counted(node):
    async with await connect(node.ws, "/ws/group/42/client/7") as ws:
        await ws.send(TOO_DEEP)
        assert (await recv_msg(ws))["data"]["code"] == "untranslatable"
        await send_json(ws, {"msg": "to nobody", "to": "not valid!", "token": JWT})
        assert (await recv_msg(ws))["data"]["code"] == "invalid-id"
    report = await dead_letters(node)
    assert report["counts"] == {"invalid-id": 1, "untranslatable": 1}
    invalid, untranslatable = report["dead_letters"]  # newest first
    assert (untranslatable["code"], untranslatable["source"]) == ("untranslatable", "legacy-frame")
    assert (untranslatable["group_legacy"], untranslatable["client_legacy"]) == ("42", "7")
    assert untranslatable["group_id"] and untranslatable["client_id"]  # the Vision IDs
    assert untranslatable["node"] == "nodeA"
    assert untranslatable["size"] == len(TOO_DEEP)
    assert untranslatable["sample"].endswith(f"…[{len(TOO_DEEP) - 512} more bytes]")
    assert invalid["code"] == "invalid-id" and "not valid!" in invalid["sample"]
    assert JWT not in invalid["sample"] and '"token": "[redacted]"' in invalid["sample"]
    found = await metrics(node.http)
    assert found['aether_dead_letters_total{code="untranslatable",node="nodeA"}'] == 1
    assert found['aether_error_replies_total{code="invalid-id",node="nodeA"}'] == 1


async def test_a_frame_over_the_size_limit_is_a_dead_letter(node):
    ws = await connect(node.ws, "/ws/group/42/client/7", max_size=None)
    await ws.send("x" * 40000)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:  # a presence join comes first
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    async def recorded() -> bool:
        return (await dead_letters(node))["counts"] == {"too-big": 1}

    await eventually(recorded, timeout=2000 * MS)
    [letter] = (await dead_letters(node))["dead_letters"]
    assert letter["client_legacy"] == "7" and "over 32768 bytes" in letter["detail"]


async def test_v3_refusals_and_good_legacy_frames_are_not_dead_letters(node):
    async with await v3(node.ws, "grp_a", "dev_1") as ws:
        await ws.send(TOO_DEEP)
        assert (await recv_msg(ws))["msg_type"] == "error"
    async with await connect(node.ws, "/ws/group/42/client/7") as ws:
        await send_json(ws, {"msg": "hi", "echo": True})
        assert (await recv_msg(ws))["msg"] == "hi"
    assert await dead_letters(node) == {"counts": {}, "dead_letters": []}
    found = await metrics(node.http)
    assert found['aether_error_replies_total{code="invalid-json",node="nodeA"}'] == 1


async def test_a_flood_is_counted_in_full_and_sampled(node):
    async with await connect(node.ws, "/ws/group/42/client/7") as ws:
        for _ in range(30):
            await ws.send(TOO_DEEP)
        for _ in range(30):
            await recv_msg(ws)
    report = await dead_letters(node)
    assert report["counts"] == {"untranslatable": 30}
    assert 1 <= len(report["dead_letters"]) <= 10  # AETHER_DEAD_LETTER_KEEP


async def test_unreadable_broker_message_is_a_dead_letter(make_settings, redis_url, prefix):
    async with (
        serve_app(make_settings(redis_url=redis_url, node_id="nodeA")) as node,
        await connect(node.ws, "/ws/group/42/client/7") as ws,
    ):
        await send_json(ws, {"msg": "hi", "echo": True})
        await recv_msg(ws)
        assert (await dead_letters(node))["dead_letters"] == []
        redis = aioredis.from_url(redis_url)
        try:
            # The group's channel, as the node subscribed it (42's Vision ID in the ID store).
            stored = await redis.get(f"{prefix}id:{{group}}:l:42")
            assert isinstance(stored, bytes)
            vision = stored.decode()
            channel = Channels(prefix).group(vision)
            await redis.publish(channel, b"\xff\x00 not an envelope token=abc123")
        finally:
            await redis.aclose()

        async def recorded() -> bool:
            return (await dead_letters(node))["counts"].get("broker-unreadable") == 1

        await eventually(recorded, timeout=3000 * MS)
        [letter] = (await dead_letters(node))["dead_letters"]
        assert (letter["source"], letter["group_id"]) == ("broker", channel)
        assert "abc123" not in letter["sample"] and letter["size"] == 31


async def test_dead_letters_need_the_api_token_when_set(make_settings):
    settings = make_settings(api_token="s3cret", node_id="nodeA")
    async with serve_app(settings, **embedded_backends()) as node:
        async with httpx.AsyncClient(base_url=node.http) as http:
            refused = await http.get("/v2/dead-letters")
        assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
        assert (await dead_letters(node, authorization="Bearer s3cret"))["dead_letters"] == []


async def test_samples_of_one_node_are_seen_on_the_other(make_settings, backend_url):
    shared = embedded_backends() if backend_url is None else {}
    async with (
        serve_app(make_settings(redis_url=backend_url, node_id="nodeA"), **shared) as a,
        serve_app(make_settings(redis_url=backend_url, node_id="nodeB"), **shared) as b,
    ):
        async with await connect(a.ws, "/ws/group/42/client/7") as ws:
            await ws.send(TOO_DEEP)
            await recv_msg(ws)

        async def seen_on_b() -> bool:
            return [d["node"] for d in (await dead_letters(b))["dead_letters"]] == ["nodeA"]

        await eventually(seen_on_b, timeout=3000 * MS)


async def test_a_to_id_the_upstream_does_not_know_is_a_dead_letter(make_settings):
    """The Aether API (outside our system, mocked with respx) answers 404 for client 999."""
    with mock_aether_api() as api:
        api.known[("group", "42")] = "grp_fortytwo1"
        api.known[("client", "999")] = None
        settings = make_settings(node_id="nodeA", id_lookup_url=UPSTREAM)
        async with (
            serve_app(settings, **embedded_backends()) as node,
            await connect(node.ws, "/ws/group/42/client/7") as ws,
        ):
            await send_json(ws, {"msg": "to nobody", "to": 999})
            assert (await recv_msg(ws))["data"]["code"] == "invalid-id"
            [letter] = (await dead_letters(node))["dead_letters"]
    assert (letter["code"], letter["group_id"], letter["client_legacy"]) == (
        "invalid-id",
        "grp_fortytwo1",
        "7",
    )
    assert "unknown legacy client ID 999" in letter["detail"]


async def test_a_direct_message_to_a_client_connected_nowhere_is_a_dead_letter(node):
    async with await v3(node.ws, "grp_a", "dev_1") as ws:
        await send_json(
            ws, {"msg_type": "msg", "target": "direct", "to_id": "gone_1", "payload": {"n": 1}}
        )
        await send_json(ws, {"msg_type": "msg", "target": "echo", "payload": {"n": 2}})
        assert (await recv_msg(ws))["payload"]["n"] == 2  # the direct one was handled first
    async with (
        await v3(node.ws, "grp_b", "here_1") as present,
        await v3(node.ws, "grp_a", "dev_2") as ws,
    ):
        await send_json(
            ws, {"msg_type": "msg", "target": "direct", "to_id": "here_1", "payload": {"n": 3}}
        )
        assert (await recv_msg(present))["payload"]["n"] == 3

    async def recorded() -> bool:
        return (await dead_letters(node))["counts"] == {"no-recipient": 1}

    await eventually(recorded, 3.0)
    (letter,) = (await dead_letters(node))["dead_letters"]
    assert (letter["code"], letter["client_id"]) == ("no-recipient", "dev_1")
    assert "gone_1" in letter["detail"] and '"n":1' in letter["sample"]
