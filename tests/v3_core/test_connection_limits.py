"""Connection limits of a node (X7, X11): per client 4529, per node 1013; memory backends."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from v3_core import CloseCode, ConnectionManager, ConnectionRejected
from v3_core.manager import ConnectionLimits
from v3_core.messages import parse_server_message

from ..helpers import embedded_manager, eventually
from ..support.senders import RecordingSender

LIMIT = 3


def manager(**limits: int) -> ConnectionManager:
    return embedded_manager(connection_limits=ConnectionLimits(**limits))


async def refused(nodes: ConnectionManager, group_id: str, client_id: str) -> ConnectionRejected:
    with pytest.raises(ConnectionRejected) as info:
        async with nodes.connect(group_id, client_id, RecordingSender()):
            pass
    return info.value


async def test_the_connection_over_a_clients_limit_is_refused_with_4529():
    """N of one client are admitted, in any group; the N+1th gets 4529 with a clear reason."""
    async with manager(per_client=LIMIT) as nodes, contextlib.AsyncExitStack() as held:
        for i in range(LIMIT):
            await held.enter_async_context(nodes.connect(f"g{i}", "alice", RecordingSender()))
        rejection = await refused(nodes, "g9", "alice")
        assert rejection.close_code == CloseCode.RATE_LIMITED.value == 4529
        assert rejection.reason == "too many connections for client 'alice' on this node (limit 3)"
        assert len(nodes) == LIMIT
        assert nodes.stats.client_limit_refusals == 1
        assert nodes.stats.connections_opened == LIMIT
        assert nodes.stats.connections_rejected == 0


async def test_another_client_is_not_limited_by_a_full_one():
    async with (
        manager(per_client=1) as nodes,
        nodes.connect("g", "alice", RecordingSender()),
    ):
        await refused(nodes, "g", "alice")
        async with nodes.connect("g", "bob", RecordingSender()):
            assert len(nodes) == 2


async def test_a_client_below_its_limit_again_after_a_close_is_admitted():
    """The count is the registry's: closing one of the N frees its place at once."""
    async with manager(per_client=LIMIT) as nodes, contextlib.AsyncExitStack() as held:
        for _ in range(LIMIT - 1):
            await held.enter_async_context(nodes.connect("g", "alice", RecordingSender()))
        async with nodes.connect("g", "alice", RecordingSender()):
            await refused(nodes, "g", "alice")
        async with nodes.connect("g", "alice", RecordingSender()):
            assert len(nodes) == LIMIT
        await held.aclose()
        assert len(nodes) == 0
        async with contextlib.AsyncExitStack() as again:
            for _ in range(LIMIT):
                await again.enter_async_context(nodes.connect("g", "alice", RecordingSender()))
        assert nodes.stats.client_limit_refusals == 1


async def test_the_connection_over_the_node_limit_is_refused_with_1013():
    async with manager(per_node=2) as nodes, contextlib.AsyncExitStack() as held:
        await held.enter_async_context(nodes.connect("g", "alice", RecordingSender()))
        await held.enter_async_context(nodes.connect("h", "bob", RecordingSender()))
        rejection = await refused(nodes, "g", "carol")
        assert rejection.close_code == CloseCode.TRY_AGAIN_LATER.value == 1013
        assert rejection.reason == "node at its connection limit; retry with backoff"
        assert nodes.stats.node_limit_refusals == 1
        await held.aclose()
        async with nodes.connect("g", "carol", RecordingSender()):
            assert len(nodes) == 1


async def test_a_refused_connection_sends_no_join_and_leaves_presence_unchanged():
    """Refused before registering: no presence entry, no subscription, no join to the group."""
    async with manager(per_client=1) as nodes:
        watcher = RecordingSender()
        async with (
            nodes.connect("g", "bob", watcher) as bob,
            nodes.connect("h", "alice", RecordingSender()),
        ):
            bob.start_writer()
            channels = sorted(nodes._registry.channels)
            await refused(nodes, "g", "alice")
            assert await nodes.members("g") == ["bob"]
            assert await nodes.members("h") == ["alice"]
            assert sorted(nodes._registry.channels) == channels
            # Anything bob gets after this marker was sent after the refusal: no join before it.
            marker = '{"msg_type": "msg", "target": "group", "group_id": "g", "msg": "marker"}'
            await nodes.publish(parse_server_message(marker))
            await eventually(lambda: any(f.get("msg") == "marker" for f in frames(watcher)))
            events = [f["payload"] for f in frames(watcher) if f["msg_type"] == "presence"]
            assert events == [{"event": "join", "client_id": "bob"}]


def frames(sender: RecordingSender) -> list[dict[str, Any]]:
    return [json.loads(text) for text in sender.sent]
