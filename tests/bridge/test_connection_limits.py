"""Scenarios X7 and X11 over real sockets: a client over its limit gets 4529, a full node 1013.

The refused socket is accepted, then closed with the code and reason, and leaves no trace: no
presence entry, no Redis key. On V3 and legacy paths, on both backends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection

from bridge.settings import Settings

from ..conftest import RunningServer, serve_app
from ..helpers import MS, close_of, connect, eventually, metrics, presence, recv_msg, send_json, v3

PER_CLIENT = 2
PER_NODE = 4
CLIENT_REASON = "too many connections for client 'alice' on this node (limit 2)"
NODE_REASON = "node at its connection limit; retry with backoff"


@pytest.fixture
async def server(
    backend_url: str | None, make_settings: Callable[..., Settings]
) -> AsyncIterator[RunningServer]:
    """One node on the parametrized backend, with small connection limits."""
    settings = make_settings(
        redis_url=backend_url, max_connections_per_client=PER_CLIENT, max_connections=PER_NODE
    )
    async with serve_app(settings) as running:
        yield running


async def key_count(redis_url: str | None, prefix: str) -> int:
    if redis_url is None:
        return 0
    client = aioredis.Redis.from_url(redis_url)
    try:
        return len([key async for key in client.scan_iter(f"{prefix}*")])
    finally:
        await client.aclose()


async def echoes(ws: ClientConnection) -> bool:
    await send_json(ws, {"msg_type": "msg", "target": "echo", "msg": "still here"})
    return (await recv_msg(ws))["msg"] == "still here"


async def test_the_client_over_its_limit_gets_4529_and_leaves_no_trace(server, backend_url, prefix):
    first = await v3(server.ws, "g1", "alice")
    second = await v3(server.ws, "g2", "alice")
    async with first, second:
        keys = await key_count(backend_url, prefix)
        assert keys > 0 or backend_url is None  # presence keys of g1, g2: the count means something
        refused = await v3(server.ws, "g3", "alice")
        assert await close_of(refused) == (4529, CLIENT_REASON)
        assert await presence(server.http, "g3") == []
        assert await key_count(backend_url, prefix) == keys
        # Another client is unaffected, and alice's two sockets still work.
        async with await v3(server.ws, "g3", "bob") as bob:
            assert await echoes(bob)
            assert await presence(server.http, "g3") == ["bob"]
        assert await echoes(first)
        assert await echoes(second)
    seen = await metrics(server.http)
    assert seen['aether_connections_refused_total{reason="client-limit"}'] == 1
    assert seen['aether_connections_refused_total{reason="node-limit"}'] == 0
    assert seen["aether_connections_opened_total"] == 3


async def test_a_legacy_client_counts_with_its_v3_sockets(server):
    """Legacy /ws and /ws_redis sockets go through the same manager: same count, same close."""
    v3_socket = await v3(server.ws, "g1", "alice")
    legacy = await connect(server.ws, "/ws/group/g1/client/alice")
    async with v3_socket, legacy:
        for path in ("/ws/group/g2/client/alice", "/ws_redis/group/g2/client/alice"):
            refused = await connect(server.ws, path)
            assert await close_of(refused) == (4529, CLIENT_REASON)
        assert await presence(server.http, "g2") == []
        assert await presence(server.http, "g1") == ["alice"]


async def test_a_legacy_client_refused_at_its_limit_is_not_counted_as_warned(server):
    """In ``warn`` mode only a socket that got the notice counts in aether_v2_warned_total."""
    async with httpx.AsyncClient(base_url=server.http) as http:
        assert (await http.put("/v2/mode", json={"mode": "warn"})).status_code == 200
    first = await connect(server.ws, "/ws/group/g1/client/alice")
    second = await connect(server.ws, "/ws/group/g2/client/alice")
    async with first, second:
        refused = await connect(server.ws, "/ws/group/g3/client/alice")
        assert await close_of(refused) == (4529, CLIENT_REASON)
        async with httpx.AsyncClient(base_url=server.http) as http:
            lines = set((await http.get("/metrics")).text.splitlines())
    assert "aether_v2_warned_total 2.0" in lines  # was 3.0: the refused socket was counted


async def test_a_place_freed_by_a_close_is_taken_again(server):
    """The count follows the connections: after one of alice's closes, she may connect again."""
    async with await v3(server.ws, "g1", "alice"):
        second = await v3(server.ws, "g2", "alice")
        assert await close_of(await v3(server.ws, "g2", "alice")) == (4529, CLIENT_REASON)
        await second.close()

        async def one_left() -> bool:
            return (await metrics(server.http))["aether_connections"] == 1

        await eventually(one_left, 3000 * MS)
        async with await v3(server.ws, "g2", "alice") as again:
            assert await echoes(again)
            assert await presence(server.http, "g2") == ["alice"]


async def test_a_full_node_refuses_with_1013(server):
    clients = [await v3(server.ws, "g1", name) for name in ("alice", "bob", "carol", "dave")]
    try:
        refused = await v3(server.ws, "g1", "erin")
        assert await close_of(refused) == (1013, NODE_REASON)
        assert sorted(await presence(server.http, "g1")) == ["alice", "bob", "carol", "dave"]
        seen = await metrics(server.http)
        assert seen['aether_connections_refused_total{reason="node-limit"}'] == 1
        assert seen["aether_connections"] == PER_NODE
    finally:
        for ws in clients:
            await ws.close()
