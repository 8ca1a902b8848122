"""Scenario B3 over real sockets: a flooding client gets error replies, then 4529; its group
keeps working. On V3 and legacy paths, on both backends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from bridge.settings import Settings

from ..conftest import RunningServer, serve_app
from ..helpers import MS, connect, eventually, metrics, recv_msg, send_json, v3

BURST = 5
CLOSE_AFTER = 3
# One token back every 100 s: nothing refills during a test, so every count is exact.
LIMITS = {"rate_limit": 0.01, "rate_burst": BURST, "rate_close_after": CLOSE_AFTER}
REASON = "rate limit exceeded: 3 messages over the limit in a row; reconnect after a pause"


@pytest.fixture
async def server(
    backend_url: str | None, make_settings: Callable[..., Settings]
) -> AsyncIterator[RunningServer]:
    """One node on the parametrized backend, with a rate limit small enough to hit at once."""
    async with serve_app(make_settings(redis_url=backend_url, **LIMITS)) as running:
        yield running


class Recorder:
    """Reads a socket to its end in the background: every JSON frame, then the close."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                self.frames.append(json.loads(data))
        except websockets.ConnectionClosed:
            pass

    async def closed(self) -> tuple[int | None, str | None]:
        await asyncio.wait_for(self._task, 5000 * MS)
        return self.ws.close_code, self.ws.close_reason

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("msg_type", f.get("type")) == kind]


async def messages_seen(ws: ClientConnection, count: int) -> list[Any]:
    return [(await recv_msg(ws))["payload"]["i"] for _ in range(count)]


async def rate_metrics(base: str) -> tuple[float, float]:
    values = await metrics(base)
    return values["aether_messages_rate_limited_total"], values["aether_rate_limit_closes_total"]


async def test_v3_flooder_gets_errors_then_4529_and_its_group_is_undisturbed(server):
    flooder = await v3(server.ws, "g1", "alice")
    bob = await v3(server.ws, "g1", "bob")
    async with bob:
        recorder = Recorder(flooder)
        for i in range(20):
            await send_json(flooder, {"msg_type": "msg", "target": "group", "payload": {"i": i}})
        assert await recorder.closed() == (4529, REASON)
        errors = recorder.of_type("error")
        assert [e["payload"]["code"] for e in errors] == ["rate-limited"] * CLOSE_AFTER
        assert all(e["target"] == "echo" and "retry in" in e["msg"] for e in errors)
        assert all(0 < e["payload"]["retry_after"] <= 1 / LIMITS["rate_limit"] for e in errors)
        # Bob got exactly what was let through, and his own messages still go round.
        assert await messages_seen(bob, BURST) == list(range(BURST))
        await send_json(bob, {"msg_type": "msg", "target": "group", "payload": {"i": "bob"}})
        assert await messages_seen(bob, 1) == ["bob"]
    assert await rate_metrics(server.http) == (CLOSE_AFTER, 1)


async def test_legacy_flooder_gets_v2_errors_then_4529_and_a_ping_still_passes(server):
    flooder = await connect(server.ws, "/ws/group/grp_a/client/dev_1")
    bob = await v3(server.ws, "grp_a", "bob")
    async with bob:
        recorder = Recorder(flooder)
        frames = [json.dumps({"data": {"i": i}}) for i in range(BURST + 1)]
        frames += ["ping"] + [json.dumps({"data": {"i": i}}) for i in range(BURST + 1, 20)]
        for frame in frames:
            await flooder.send(frame)
        assert await recorder.closed() == (4529, REASON)
        replies = [f for f in recorder.frames if f["type"] in ("error", "heartbeat")]
        assert [f["type"] for f in replies] == ["error", "heartbeat", "error", "error"]
        assert {f["data"]["code"] for f in replies if f["type"] == "error"} == {"rate-limited"}
        assert all(f["data"]["retry_after"] > 0 for f in replies if f["type"] == "error")
        assert await messages_seen(bob, BURST) == list(range(BURST))
        await send_json(bob, {"msg_type": "msg", "target": "group", "payload": {"i": "bob"}})
        assert await messages_seen(bob, 1) == ["bob"]
    assert await rate_metrics(server.http) == (CLOSE_AFTER, 1)


async def test_the_flooders_presence_goes_with_it(server):
    """A client closed for its rate is gone from presence at once, like any clean close."""
    flooder = await v3(server.ws, "g1", "alice")
    recorder = Recorder(flooder)
    for i in range(20):
        await send_json(flooder, {"msg_type": "msg", "target": "echo", "msg": str(i)})
    assert (await recorder.closed())[0] == 4529
    assert [f["msg"] for f in recorder.of_type("msg")] == [str(i) for i in range(BURST)]

    async def gone() -> bool:
        async with httpx.AsyncClient() as http:
            body = (await http.get(f"{server.http}/v3/groups/g1/presence")).json()
        return body["clients"] == []

    await eventually(gone, 1000 * MS)
