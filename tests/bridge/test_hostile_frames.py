"""Issue 15, frames and IDs: hostile input from a connected client, over real sockets.

Each test fails on the code before the fix: unknown integers minted, frames over the rate limit
translated, non-UTF-8 binary frames sent to the group, negative integers taken as IDs, log
lines per refusal. The upstream Aether API is mocked with respx; everything else is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets

from bridge import uvicorn_ws
from bridge.settings import Settings
from translators import MemoryIdStore
from v3_core.logthrottle import ThrottledLog

from ..chaos.rawws import OP_CLOSE, OP_TEXT, RawWebSocket
from ..conftest import RunningServer, serve_app
from ..helpers import MS, assert_silent, connect, recv_msg, v3
from ..support.aether_api import UPSTREAM, FakeAetherApi, mock_aether_api


class Node:
    """A served node and a view of its ID store (in-process or Redis)."""

    def __init__(self, server: RunningServer, store: MemoryIdStore | None, prefix: str) -> None:
        self.server, self.store, self.prefix = server, store, prefix

    async def stored_clients(self, redis_url: str | None) -> set[str]:
        """The legacy client integers the ID store holds."""
        if self.store is not None:
            return {legacy for ns, legacy in self.store._forward if ns == "client"}
        assert redis_url is not None
        client = aioredis.Redis.from_url(redis_url)
        try:
            keys = [key async for key in client.scan_iter(f"{self.prefix}id:{{client}}:l:*")]
        finally:
            await client.aclose()
        return {key.decode().rsplit(":", 1)[1] for key in keys}


@pytest.fixture
def serve(
    backend_url: str | None, make_settings: Callable[..., Settings], prefix: str
) -> Callable[..., Any]:
    """``async with serve(**settings) as node``: one node on the parametrized backend."""

    @contextlib.asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Node]:
        store = MemoryIdStore() if backend_url is None else None
        shared = {"id_store": store} if store is not None else {}
        async with serve_app(make_settings(redis_url=backend_url, **overrides), **shared) as s:
            yield Node(s, store, prefix)

    return start


async def v2_reply(ws: Any) -> dict[str, Any]:
    """The next legacy frame that is not a presence event."""
    return await recv_msg(ws, 3000 * MS)


# -- #3: direct messages to unknown integers mint nothing; a budget of new IDs -------------


async def test_a_direct_to_an_unknown_integer_mints_nothing(serve, backend_url):
    async with serve() as node:
        sender = await connect(node.server.ws, "/ws/group/3/client/17")
        peer = await connect(node.server.ws, "/ws/group/3/client/18")
        async with sender, peer:
            for n in range(900, 920):
                await sender.send(json.dumps({"to": n, "msg": "hello?"}))
                reply = await v2_reply(sender)
                assert reply["type"] == "error"
                assert reply["data"]["code"] == "invalid-id"
                assert f"unknown legacy client ID {n}" in reply["msg"]
            # A known integer (a client that connected) is still reached.
            await sender.send(json.dumps({"to": "18", "msg": "hi 18"}))
            assert (await v2_reply(peer))["msg"] == "hi 18"
        assert await node.stored_clients(backend_url) == {"17", "18"}


async def test_a_connection_has_a_budget_of_new_ids(serve):
    async with serve(new_ids_per_connection=3) as node:
        sender = await connect(node.server.ws, "/ws/group/3/client/17")
        peer = await connect(node.server.ws, "/ws/group/3/client/18")
        async with sender, peer:
            details = []
            for n in range(900, 905):
                await sender.send(json.dumps({"to": n, "msg": "x"}))
                reply = await v2_reply(sender)
                assert reply["data"]["code"] == "invalid-id"
                details.append(reply["msg"])
            assert all("unknown legacy client ID" in d for d in details[:3])
            assert all("AETHER_NEW_IDS_PER_CONNECTION" in d for d in details[3:])
            # IDs the node knows cost nothing: the budget does not stop them.
            await sender.send(json.dumps({"to": 18, "msg": "still"}))
            assert (await v2_reply(peer))["msg"] == "still"
            # Another connection has its own budget.
            other = await connect(node.server.ws, "/ws/group/3/client/19")
            async with other:
                await other.send(json.dumps({"to": 901, "msg": "x"}))
                assert "unknown legacy client ID 901" in (await v2_reply(other))["msg"]


# -- #9: frames over the rate limit are never translated (no ID lookups) -------------------


@pytest.fixture
def api() -> Iterator[FakeAetherApi]:
    with mock_aether_api() as api:
        yield api


async def test_frames_over_the_rate_limit_look_nothing_up(serve, backend_url, api: FakeAetherApi):
    """500 ``{"msg":"ping","to":N}`` at 1/s stored 500 IDs: over the limit, a frame that
    mentions ping is checked for being a heartbeat, never translated."""
    limits = {"rate_limit": 0.01, "rate_burst": 1, "rate_close_after": 0}
    async with serve(id_lookup_url=UPSTREAM, **limits) as node:
        sender = await connect(node.server.ws, "/ws/group/3/client/17")
        async with sender:
            calls = api.client_calls  # the sender's own path ID
            for n in range(900, 930):
                await sender.send(json.dumps({"msg": "ping", "to": n}))
            # The first is sent (to nobody connected: no reply); the rest are over the limit.
            codes = [(await v2_reply(sender))["data"]["code"] for _ in range(29)]
            assert codes == ["rate-limited"] * 29
            # A real heartbeat over the limit still passes free (once a second).
            await sender.send('{"type": "ping"}')
            assert (await v2_reply(sender))["type"] == "heartbeat"
        stored = await node.stored_clients(backend_url)
        lookups = api.client_calls - calls
        print(f"FIGURE over the rate limit: 30 frames, {lookups} lookups, {len(stored) - 1} IDs")
        assert lookups == 1  # the first frame, within the burst
        assert stored == {"17", "900"}


# -- #8: a legacy binary frame that is not UTF-8 ---------------------------------------------


@pytest.mark.parametrize("path", ["/ws/group/3/client/17", "/v3/ws/group/g1/client/alice"])
async def test_a_binary_frame_that_is_not_utf8_gets_an_error_reply(serve, path):
    async with serve() as node:
        sender = await connect(node.server.ws, path)
        group = "3" if path.startswith("/ws/") else "g1"
        peer = await connect(node.server.ws, f"/ws/group/{group}/client/18")
        async with sender, peer:
            await sender.send(b"\xff\xfe\x00binary")
            reply = await v2_reply(sender)
            kind = reply.get("type", reply.get("msg_type"))
            code = reply["data"]["code"] if "data" in reply else reply["payload"]["code"]
            assert (kind, code) == ("error", "invalid-json")
            await assert_silent(peer)


# -- #11: negative integers are not IDs --------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws/group/-5/client/-7", "/ws/group/3/client/-7"])
async def test_a_negative_path_id_is_closed_1008(serve, path):
    async with serve() as node:
        ws = await connect(node.server.ws, path)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


@pytest.mark.parametrize("to", ['"-5"', "-5", '"-0"'])
async def test_a_negative_to_is_invalid_id_as_a_string_or_a_number(serve, to):
    async with serve() as node:
        sender = await connect(node.server.ws, "/ws/group/3/client/17")
        async with sender:
            await sender.send('{"to": ' + to + ', "msg": "x"}')
            reply = await v2_reply(sender)
            assert (reply["type"], reply["data"]["code"]) == ("error", "invalid-id")


# -- #10: log lines anonymous clients can cause ------------------------------------------------


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def lines() -> Iterator[Lines]:
    """Every record of the gateway's and uvicorn's loggers, whatever their propagation."""
    handler = Lines()
    loggers = [logging.getLogger(name) for name in ("aether", "uvicorn.error")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_refusals_over_the_per_client_cap_log_one_line(serve, lines: Lines):
    async with serve(max_connections_per_client=1) as node:
        held = await v3(node.server.ws, "g1", "alice")
        async with held:
            for _ in range(30):
                refused = await v3(node.server.ws, "g1", "alice")
                with pytest.raises(websockets.ConnectionClosed):
                    await refused.recv()
    refusals = [r for r in lines.records if "refusing client" in r.getMessage()]
    print(f"FIGURE per-client cap: 30 refusals, {len(refusals)} log line(s)")
    assert len(refusals) == 1


async def test_text_frames_that_are_not_utf8_log_one_info_line(serve, lines: Lines, monkeypatch):
    # The protocol's throttle is per process: a fresh one, whatever earlier tests logged.
    fresh = ThrottledLog(logging.getLogger("aether.sockets"))
    monkeypatch.setattr(uvicorn_ws, "log", fresh)
    async with serve() as node:
        for _ in range(20):
            raw = await RawWebSocket.connect(node.server.port, "/v3/ws/group/g1/client/alice")
            await raw.send_frame(OP_TEXT, b"\xff\xfe not UTF-8")
            while (frame := await asyncio.wait_for(raw.recv_frame(), 3)).opcode != OP_CLOSE:
                pass
            raw.close()
            assert frame.close_code == 1007
    about = [r for r in lines.records if "UTF-8" in r.getMessage() or r.exc_info]
    print(f"FIGURE invalid UTF-8: 20 frames, {len(about)} log line(s)")
    assert len(about) == 1
    assert about[0].levelno <= logging.INFO and about[0].exc_info is None


# -- #6: numbers beyond a double, on POST too (V3 frames: test_ws_v3_validation.py) ----------


@pytest.mark.parametrize("number", ["1" + "0" * 400 + ".0", "1" + "0" * 300 + "e99"])
async def test_post_a_number_beyond_a_double_is_invalid_json(serve, number):
    body = '{"msg_type": "msg", "target": "broadcast", "payload": {"x": ' + number + "}}"
    async with serve() as node, httpx.AsyncClient() as http:
        response = await http.post(
            f"{node.server.http}/v3/messages",
            content=body,
            headers={"content-type": "application/json"},
        )
    assert (response.status_code, response.json()["code"]) == (422, "invalid-json")
