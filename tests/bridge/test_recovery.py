"""History and recovery over real sockets: two nodes, on the memory and Redis backends.

Raw sockets, except where the application's view is the point (the first test, on
``aether_client``): the server's replay is checked frame by frame, duplicates included.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

import aether_client
from aether_client import Item, MessageV3

from ..conftest import embedded_backends, serve_app
from ..helpers import connect, recv_json, send_json, v3

STREAM_OF = {"group": "group", "direct": "client", "broadcast": "broadcast"}


class Positions:
    """What a V3 client keeps: the last position it saw of each stream."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[str, int]] = {}

    def see(self, frame: dict[str, Any]) -> None:
        if "offset" in frame:
            self.last[STREAM_OF[frame["target"]]] = (frame["epoch"], frame["offset"])

    def query(self) -> str:
        return ",".join(f"{s}:{epoch}:{offset}" for s, (epoch, offset) in self.last.items())


async def frames_until(ws, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Every frame up to the first for which ``done`` is true, and then until 300 ms pass
    with none (a replay may hold the marker too, when its history was read after it)."""
    frames: list[dict[str, Any]] = []
    while not frames or not done(frames[-1]):
        frames.append(await recv_json(ws))
    with contextlib.suppress(TimeoutError):
        while True:
            frames.append(await recv_json(ws, 0.3))
    return frames


def marker(frame: dict[str, Any]) -> bool:
    return frame.get("msg") == "marker"


async def left(ws: ClientConnection) -> None:
    """Read ``ws`` up to a presence leave: a node stores a legacy socket's positions first."""
    while ((await recv_json(ws)).get("payload") or {}).get("event") != "leave":
        pass


async def post(base: str, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{base}/v3/messages", json=body)
        assert response.status_code == 202, response.text


async def warm_up(a, b, positions: Positions) -> ClientConnection:
    """alice (on A) learns a position in each of her three streams."""
    alice = await v3(a.ws, "g1", "alice")
    bob = await v3(b.ws, "g1", "bob")
    async with alice:
        positions.see(await recv_json(alice))  # her own join
        await send_json(bob, {"msg_type": "msg", "target": "direct", "to_id": "alice", "msg": "d0"})
        await post(a.http, {"msg_type": "msg", "target": "broadcast", "msg": "b0"})
        await send_json(bob, {"msg_type": "msg", "target": "group", "msg": "marker"})
        for frame in await frames_until(alice, marker):
            positions.see(frame)
    assert set(positions.last) == {"group", "client", "broadcast"}
    return bob


def offsets(frames: list[dict[str, Any]], stream: str) -> list[int]:
    return [f["offset"] for f in frames if "offset" in f and STREAM_OF[f["target"]] == stream]


async def items_until(
    client: aether_client.AetherClient, done: Callable[[Item], bool]
) -> list[Item]:
    """What the client yields up to the first item for which ``done`` is true, then until
    300 ms pass with none (as ``frames_until``)."""
    items: list[Item] = []
    async with asyncio.timeout(5):
        while not items or not done(items[-1]):
            items.append(await anext(client))
    with contextlib.suppress(TimeoutError):
        while True:
            items.append(await asyncio.wait_for(anext(client), 0.3))
    return items


def is_marker(item: Item) -> bool:
    return isinstance(item, MessageV3) and item.msg == "marker"


async def test_a_client_back_with_its_positions_gets_exactly_what_it_missed_then_live(two_nodes):
    """Recovery as an application gets it: aether_client keeps alice's positions, and a new
    client started with them (a page reload) on the other node gets what she missed. The
    library drops copies of a position it has seen, so it counts them: the server sent none."""
    a, b = two_nodes
    bob = await v3(b.ws, "g1", "bob")
    async with bob:
        async with aether_client.connect(
            a.ws, group_id="g1", client_id="alice", heartbeat=None
        ) as alice:
            await send_json(bob, {"msg_type": "msg", "target": "direct", "to_id": "alice"})
            await post(a.http, {"msg_type": "msg", "target": "broadcast", "msg": "b0"})
            await send_json(bob, {"msg_type": "msg", "target": "group", "msg": "marker"})
            await items_until(alice, is_marker)
            since = alice.positions
        assert set(since) == {"group", "client", "broadcast"}
        for n in range(5):
            await send_json(bob, {"msg_type": "msg", "target": "group", "msg": f"g{n}"})
            await send_json(
                bob, {"msg_type": "msg", "target": "direct", "to_id": "alice", "msg": f"d{n}"}
            )
            await post(b.http, {"msg_type": "msg", "target": "broadcast", "msg": f"b{n}"})
        async with aether_client.connect(
            b.ws, group_id="g1", client_id="alice", recover=since, heartbeat=None
        ) as again:
            await send_json(bob, {"msg_type": "msg", "target": "group", "msg": "marker"})
            items = await items_until(again, is_marker)
            assert (again.duplicates, again.off_schema, again.connections) == (0, 0, 1)
    assert [item for item in items if not isinstance(item, MessageV3)] == []  # no Resync
    messages = [item for item in items if isinstance(item, MessageV3)]
    targets = {"group": "group", "client": "direct", "broadcast": "broadcast"}
    for stream, (_, last) in since.items():
        got = [m.offset for m in messages if m.target == targets[stream]]
        first = last + 1
        assert got == list(range(first, first + len(got))), (stream, got)
    assert [m.msg for m in messages if m.target == "direct"] == [f"d{n}" for n in range(5)]
    assert [m.msg for m in messages if m.target == "broadcast"] == [f"b{n}" for n in range(5)]
    group = [m.msg for m in messages if m.target == "group" and m.msg is not None]
    assert group == ["g0", "g1", "g2", "g3", "g4", "marker"]
    # Her own leave (missed: she had gone) among them, then her join.
    events = [m.payload["event"] for m in messages if m.msg_type == "presence" and m.payload]
    assert events == ["leave", "join"]


async def test_no_gap_and_no_duplicate_while_traffic_flows_during_the_replay(two_nodes):
    a, b = two_nodes
    positions = Positions()
    bob = await warm_up(a, b, positions)
    sent: list[int] = []

    async def talk(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await send_json(
                bob, {"msg_type": "msg", "target": "group", "payload": {"n": len(sent)}}
            )
            sent.append(len(sent))
            await asyncio.sleep(0.002)

    async with bob:
        stop = asyncio.Event()
        talker = asyncio.create_task(talk(stop))
        await asyncio.sleep(0.2)  # traffic alice misses while away: the point of the test
        since = positions.last["group"][1]
        alice = await connect(b.ws, f"/v3/ws/group/g1/client/alice?recover={positions.query()}")
        async with alice:
            await asyncio.sleep(0.2)  # traffic goes on while her replay is read and sent
            stop.set()
            await talker
            await send_json(bob, {"msg_type": "msg", "target": "group", "msg": "marker"})
            frames = await frames_until(alice, marker)
    got = offsets(frames, "group")
    assert got == list(range(since + 1, since + 1 + len(got)))
    numbers = [f["payload"]["n"] for f in frames if "n" in (f.get("payload") or {})]
    assert numbers == sent  # every one of bob's, once, in order, across replay and live


@contextlib.asynccontextmanager
async def small_history(backend_url, make_settings) -> AsyncIterator[Any]:
    shared = embedded_backends() if backend_url is None else {}
    async with serve_app(make_settings(redis_url=backend_url, history_size=3), **shared) as node:
        yield node


async def test_a_stream_history_cannot_cover_gets_a_history_gap_resync(backend_url, make_settings):
    async with small_history(backend_url, make_settings) as node:
        bob = await v3(node.ws, "g1", "bob")
        async with bob:
            join = await recv_json(bob)
            epoch, offset = join["epoch"], join["offset"]
            for n in range(5):  # more than the 3 kept
                await send_json(bob, {"msg_type": "msg", "target": "group", "msg": f"m{n}"})
            await frames_until(bob, lambda f: f.get("msg") == "m4")  # all five are in history
            query = f"group:{epoch}:{offset},broadcast:no-such-epoch:4"
            alice = await connect(node.ws, f"/v3/ws/group/g1/client/alice?recover={query}")
            async with alice:
                await send_json(bob, {"msg_type": "msg", "target": "group", "msg": "marker"})
                frames = await frames_until(alice, marker)
            resyncs = [f for f in frames if f.get("cmd") == "resync"]
            assert [(r["payload"]["reason"], r["payload"]["stream"]) for r in resyncs] == [
                ("history-gap", "group"),
                ("history-gap", "broadcast"),
            ]
            assert all("offset" not in r for r in resyncs)
            # Nothing of the group is replayed; live resumes after the notices.
            assert [f.get("msg") for f in frames if f.get("msg_type") == "msg"] == ["marker"]
            # Within what history keeps (3 messages), the same node recovers.
            mark = next(f["offset"] for f in frames if f.get("msg") == "marker")
            recent = f"group:{epoch}:{mark - 1}"
            carol = await connect(node.ws, f"/v3/ws/group/g1/client/carol?recover={recent}")
            async with carol:
                replayed = await frames_until(carol, marker)
            assert not [f for f in replayed if f.get("cmd") == "resync"]
            assert replayed[0]["offset"] == mark and replayed[0]["msg"] == "marker"


@pytest.mark.parametrize(
    "query", ["recover=group:e1", "recover=room:e1:1", "recover=group:e1:x", "recover=a&recover=b"]
)
async def test_a_malformed_recover_closes_with_1008(server, query):
    ws = await connect(server.ws, f"/v3/ws/group/g1/client/alice?{query}")
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await recv_json(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert "recover" in closed.value.rcvd.reason


async def test_a_client_cannot_send_a_position(server):
    alice = await v3(server.ws, "g1", "alice")
    async with alice:
        await recv_json(alice)  # join
        for field, value in (("offset", 3), ("epoch", "e1")):
            await send_json(alice, {"msg_type": "msg", "target": "group", field: value})
            reply = await recv_json(alice)
            assert (reply["msg_type"], reply["payload"]["code"]) == ("error", "invalid-field")
            assert field in reply["msg"]


async def test_echo_replies_carry_no_position(server):
    alice = await v3(server.ws, "g1", "alice")
    async with alice:
        assert "offset" in await recv_json(alice)  # her join, a group-stream message
        await send_json(alice, {"msg_type": "heartbeat", "target": "echo"})
        await send_json(alice, {"msg_type": "msg", "target": "echo", "msg": "me"})
        for _ in range(2):
            frame = await recv_json(alice)
            assert frame["target"] == "echo"
            assert "offset" not in frame and "epoch" not in frame


async def test_a_legacy_client_gets_what_it_missed_in_v2_shape_with_no_change(two_nodes):
    a, b = two_nodes
    old = await connect(a.ws, "/ws/group/g7/client/31")
    bob = await v3(b.ws, "g7", "bob")
    async with bob:
        await send_json(bob, {"msg_type": "msg", "target": "group", "msg": "seen"})
        async with old:
            await frames_until(old, lambda f: f.get("msg") == "seen")
        await left(bob)  # its node has stored where it stopped
        for n in range(3):
            await send_json(bob, {"msg_type": "cmd", "target": "group", "cmd": f"C{n}"})
        again = await connect(b.ws, "/ws/group/g7/client/31")
        async with again:
            await send_json(bob, {"msg_type": "msg", "target": "group", "msg": "marker"})
            frames = await frames_until(again, marker)
    commands = [f["cmd"] for f in frames if f.get("type") == "cmd"]
    assert commands == ["C0", "C1", "C2"]
    assert all("offset" not in f and "epoch" not in f for f in frames)  # V2 shape unchanged
    assert frames[-1]["type"] == "msg"


async def test_a_legacy_connect_that_ends_silent_at_once_gives_its_replay_to_the_next(two_nodes):
    """A client that gave up on a handshake the node still accepted: the replay went nowhere,
    so the next connect of the same group and client gets it (a duplicate, never a loss)."""
    a, b = two_nodes
    bob = await v3(b.ws, "g8", "bob")
    async with bob:
        first = await connect(a.ws, "/ws/group/g8/client/41")
        async with first:
            await send_json(bob, {"msg_type": "msg", "target": "group", "msg": "seen"})
            await frames_until(first, lambda f: f.get("msg") == "seen")
        await left(bob)
        for n in range(3):
            await send_json(bob, {"msg_type": "cmd", "target": "group", "cmd": f"C{n}"})
        await frames_until(bob, lambda f: f.get("cmd") == "C2")
        ghost = await connect(b.ws, "/ws/group/g8/client/41")
        await ghost.close()  # took the stored positions, read nothing, said nothing
        await left(bob)
        again = await connect(a.ws, "/ws/group/g8/client/41")
        async with again:
            await send_json(bob, {"msg_type": "msg", "target": "group", "msg": "marker"})
            frames = await frames_until(again, marker)
    assert [f["cmd"] for f in frames if f.get("type") == "cmd"] == ["C0", "C1", "C2"]
