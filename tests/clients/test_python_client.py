"""The Python client (`aether_client`) against real `aether-bridge serve` processes on Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import aether_client
from aether_client import (
    HandshakeRejectedError,
    Item,
    MessageV3,
    NotConnectedError,
    ReconnectGaveUpError,
    Resync,
    SendQueueFullError,
    ServerClosedError,
    ServerError,
)

from ..conftest import NodeProcess, wait_ready
from ..helpers import eventually, free_port

pytestmark = pytest.mark.cluster

# Reconnect within a fraction of a second, so the tests are quick.
FAST: dict[str, Any] = {"backoff_base": 0.05, "backoff_cap": 0.2}


def uid(kind: str) -> str:
    """IDs unique to a test: the module's tests share two nodes and their Redis prefix."""
    return f"{kind}_{uuid.uuid4().hex[:8]}"


def is_presence_event(item: Item) -> bool:
    return isinstance(item, MessageV3) and item.msg_type == "presence" and item.target == "group"


async def next_item(
    client: aether_client.AetherClient, timeout: float = 5.0, *, skip: bool = True
) -> Item:
    """The next item; with ``skip``, the next that is neither a presence event nor a
    ``Resync`` of this client's own (those come and go with other clients and reconnects)."""
    async with asyncio.timeout(timeout):
        async for item in client:
            if skip and (is_presence_event(item) or (isinstance(item, Resync) and item.local)):
                continue
            return item
    raise AssertionError("the client ended")


async def next_message(client: aether_client.AetherClient, timeout: float = 5.0) -> MessageV3:
    item = await next_item(client, timeout)
    assert isinstance(item, MessageV3), item
    return item


async def next_presence(client: aether_client.AetherClient) -> tuple[str, str]:
    while True:
        item = await next_item(client, skip=False)
        if is_presence_event(item):
            assert isinstance(item, MessageV3) and item.payload is not None
            return item.payload["event"], item.payload["client_id"]


async def assert_silent(client: aether_client.AetherClient, duration: float = 0.3) -> None:
    with contextlib.suppress(TimeoutError):
        item = await next_item(client, duration)
        raise AssertionError(f"expected silence, got {item}")


async def group_messages_until(
    client: aether_client.AetherClient, last: str, timeout: float = 5.0
) -> list[str]:
    """The ``msg`` of each group message up to the one whose ``msg`` is ``last``."""
    seen: list[str] = []
    while not seen or seen[-1] != last:
        item = await next_item(client, timeout)
        if isinstance(item, MessageV3) and item.target == "group" and item.msg is not None:
            seen.append(item.msg)
    return seen


def dead_url() -> str:
    return f"ws://127.0.0.1:{free_port()}"


def new_tasks(before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - before


class CuttableProxy:
    """A TCP proxy in front of a node: ``cut()`` aborts its connections (the client sees 1006)
    and refuses new ones until ``restore()``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.down = False
        self._transports: set[asyncio.WriteTransport] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def cut(self) -> None:
        self.down = True
        for transport in self._transports:
            transport.abort()

    def restore(self) -> None:
        self.down = False

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CuttableProxy]:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        try:
            yield self
        finally:
            self._server.close()
            self.cut()
            await self._server.wait_closed()

    async def _handle(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        if self.down:
            down_w.transport.abort()
            return
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._transports |= {down_w.transport, up_w.transport}
        await asyncio.gather(self._pump(down_r, up_w), self._pump(up_r, down_w))
        self._transports -= {down_w.transport, up_w.transport}

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


async def test_every_target_across_two_nodes(
    redis_node_pair: tuple[NodeProcess, NodeProcess],
) -> None:
    a, b = redis_node_pair
    team, other = uid("team"), uid("other")
    alice_id, bob_id, carol_id = uid("alice"), uid("bob"), uid("carol")
    async with (
        aether_client.connect(a.ws, group_id=team, client_id=alice_id) as alice,
        aether_client.connect(b.ws, group_id=team, client_id=bob_id) as bob,
        aether_client.connect(b.ws, group_id=other, client_id=carol_id) as carol,
    ):
        await alice.send_group(msg="team", payload={"k": 1})
        for client in (alice, bob):
            m = await next_message(client)
            assert (m.target, m.from_id, m.group_id, m.msg, m.payload) == (
                "group",
                alice_id,
                team,
                "team",
                {"k": 1},
            )
            assert m.offset is not None and m.epoch is not None and m.sent_at is not None

        await alice.send_direct(carol_id, msg="dm")
        m = await next_message(carol)
        assert (m.target, m.from_id, m.to_id, m.group_id, m.msg) == (
            "direct",
            alice_id,
            carol_id,
            team,
            "dm",
        )
        assert m.offset is not None

        await carol.send_broadcast(cmd="ALL")
        for client in (alice, bob, carol):
            m = await next_message(client)
            assert (m.msg_type, m.target, m.cmd, m.from_id) == ("cmd", "broadcast", "ALL", carol_id)

        await bob.send_echo(msg="me")
        m = await next_message(bob)
        assert (m.target, m.msg, m.from_id) == ("echo", "me", bob_id)
        assert m.offset is None  # a reply to one connection is in no stream

        # The server's error reply, as its own type; the connection stays open.
        await bob.send(MessageV3(msg_type="msg", target="group", from_id=alice_id))
        error = await next_item(bob)
        assert isinstance(error, ServerError)
        assert error.code == "spoofed-from-id" and error.payload["code"] == "spoofed-from-id"
        await bob.send_echo(msg="still open")
        assert (await next_message(bob)).msg == "still open"

        # Nobody saw what was not theirs; each kept a position in the streams it received.
        await assert_silent(carol)
        await assert_silent(alice)
        assert set(alice.positions) == {"group", "broadcast"}
        assert set(carol.positions) == {"group", "client", "broadcast"}  # her join: group

        # A bad to_id fails here, with the server's model, before anything is sent.
        with pytest.raises(ValueError, match="to_id"):
            await alice.send_direct("12345", msg="x")
        # Every frame matched the server's own models (v3_core.server_messages).
        assert alice.off_schema == bob.off_schema == carol.off_schema == 0


async def test_presence_events_and_members(
    redis_node_pair: tuple[NodeProcess, NodeProcess],
) -> None:
    a, b = redis_node_pair
    team, alice_id, bob_id = uid("team"), uid("alice"), uid("bob")
    async with aether_client.connect(a.ws, group_id=team, client_id=alice_id) as alice:
        assert await next_presence(alice) == ("join", alice_id)
        assert await alice.members() == [alice_id]
        async with aether_client.connect(b.ws, group_id=team, client_id=bob_id) as bob:
            assert await next_presence(alice) == ("join", bob_id)
            assert await alice.members() == sorted([alice_id, bob_id])
            assert await bob.members() == sorted([alice_id, bob_id])
        assert await next_presence(alice) == ("leave", bob_id)
        assert await alice.members() == [alice_id]
        assert alice.off_schema == 0


async def test_heartbeats_go_out_on_a_timer_and_their_echoes_are_not_items(
    redis_node_pair: tuple[NodeProcess, NodeProcess],
) -> None:
    a, _ = redis_node_pair
    team = uid("team")
    async with (
        aether_client.connect(a.ws, group_id=team, client_id=uid("b"), heartbeat=0.1) as beating,
        aether_client.connect(a.ws, group_id=team, client_id=uid("q"), heartbeat=None) as quiet,
    ):
        await eventually(lambda: beating.heartbeats_acked >= 5, 3.0)
        assert beating.last_heartbeat is not None and beating.last_heartbeat.tzinfo is not None
        assert quiet.heartbeats_acked == 0
        await beating.send_echo(msg="marker")
        assert (await next_message(beating)).msg == "marker"  # no heartbeat echo before it


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_a_node_killed_mid_run_the_app_sees_every_message_once_in_order(
    start_node: Callable[..., NodeProcess], redis_url: str, sig: signal.Signals
) -> None:
    a = start_node("--redis-url", redis_url, wait=False)
    b = start_node("--redis-url", redis_url, wait=False)
    wait_ready(a)
    wait_ready(b)
    before = asyncio.all_tasks()
    team, total = uid("team"), 300
    got: list[int] = []
    group_offsets: list[int] = []
    resyncs: list[Resync] = []
    callbacks: list[Resync] = []
    async with (
        aether_client.connect(
            [a.ws, b.ws], group_id=team, client_id="sub", on_resync=callbacks.append, **FAST
        ) as sub,
        aether_client.connect(b.ws, group_id=team, client_id="pub") as pub,
    ):
        assert sub.url == a.ws

        async def publish() -> None:
            for n in range(total):
                await pub.send_group(payload={"n": n})
                await asyncio.sleep(0.004)
            await pub.send_group(msg="done")

        async def consume() -> None:
            async for item in sub:
                if isinstance(item, Resync):
                    resyncs.append(item)
                    continue
                assert isinstance(item, MessageV3), item
                if item.target == "group":
                    assert item.offset is not None
                    group_offsets.append(item.offset)
                if item.msg == "done":
                    return
                if item.payload and "n" in item.payload:
                    got.append(item.payload["n"])

        publisher = asyncio.create_task(publish())
        consumer = asyncio.create_task(consume())
        await eventually(lambda: len(got) >= 60, 5.0)
        os.kill(a.pid, sig)
        await asyncio.wait_for(asyncio.gather(publisher, consumer), 15)
        assert sub.connections == 2 and sub.url == b.ws
    assert a.proc.wait(10) is not None
    assert got == list(range(total))  # each once, in order, across the reconnect
    first = group_offsets[0]
    assert group_offsets == list(range(first, first + len(group_offsets)))  # nor anything else
    # The group stream was recovered; the two it had no position in are flagged by the client.
    assert {(r.reason, r.stream, r.local) for r in resyncs} == {
        ("not-recovered", "client", True),
        ("not-recovered", "broadcast", True),
    }
    assert callbacks == resyncs
    assert sub.off_schema == pub.off_schema == 0
    assert not new_tasks(before)


async def test_sends_while_reconnecting_are_queued_with_a_bound_or_refused(
    redis_node_pair: tuple[NodeProcess, NodeProcess],
) -> None:
    a, b = redis_node_pair
    team = uid("team")
    async with (
        CuttableProxy(b.port).running() as proxy,
        aether_client.connect(
            proxy.url, group_id=team, client_id=uid("q"), queue=2, **FAST
        ) as queued,
        aether_client.connect(
            proxy.url, group_id=team, client_id=uid("r"), queue=0, **FAST
        ) as refused,
        aether_client.connect(a.ws, group_id=team, client_id=uid("o")) as other,
    ):
        for client in (queued, refused):  # each has a group position: its own join
            await eventually(lambda c=client: "group" in c.positions)
        proxy.cut()
        await eventually(lambda: not queued.connected and not refused.connected)

        await queued.send_group(msg="q1")
        await queued.send_group(msg="q2")
        with pytest.raises(SendQueueFullError, match="not sent"):
            await queued.send_group(msg="q3")
        with pytest.raises(NotConnectedError, match="not sent") as refusal:
            await refused.send_group(msg="r1")
        assert not isinstance(refusal.value, SendQueueFullError)

        await other.send_group(msg="while-away")
        assert (await next_message(other)).msg == "while-away"  # published: in history
        proxy.restore()

        # Recovered first, then the queued frames, in order; the refused one never went out.
        assert await group_messages_until(queued, "q2") == ["while-away", "q1", "q2"]
        assert await group_messages_until(refused, "q2") == ["while-away", "q1", "q2"]
        assert queued.connections == refused.connections == 2
        await queued.send_group(msg="live")
        assert await group_messages_until(other, "live") == ["q1", "q2", "live"]


async def test_a_close_code_that_must_not_be_retried_raises_instead_of_looping(
    redis_node_pair: tuple[NodeProcess, NodeProcess],
) -> None:
    a, _ = redis_node_pair
    async with aether_client.connect(a.ws, group_id="12345", client_id=uid("c"), **FAST) as client:
        with pytest.raises(ServerClosedError, match="not a Vision ID") as closed:
            await next_item(client)
        assert closed.value.code == 1008
        assert "fix the URL" in str(closed.value)
        await asyncio.sleep(0.3)  # long enough for several attempts, were it retrying
        assert client.attempts == client.connections == 1
        with pytest.raises(ServerClosedError):
            await client.send_group(msg="x")
        with pytest.raises(ServerClosedError):
            await client.members()

    # A malformed ?recover= is a 1008 too.
    bad: dict[aether_client.Stream, tuple[str, int]] = {"group": ("not an epoch", 1)}
    async with aether_client.connect(
        a.ws,
        group_id=uid("team"),
        client_id=uid("c"),
        recover=bad,
        **FAST,
    ) as client:
        with pytest.raises(ServerClosedError, match="recover: group epoch") as closed:
            await next_item(client)
        assert closed.value.code == 1008 and client.attempts == 1

    # An HTTP 4xx on the upgrade (a path the gateway does not serve) ends it at connect.
    with pytest.raises(HandshakeRejectedError, match="HTTP 404"):
        async with aether_client.connect(f"{a.ws}/nope", group_id="g1", client_id="c1", **FAST):
            pass


async def test_urls_are_rotated_and_retries_can_be_bounded(
    redis_node_pair: tuple[NodeProcess, NodeProcess],
) -> None:
    _, b = redis_node_pair
    async with aether_client.connect(
        [dead_url(), b.ws], group_id=uid("team"), client_id=uid("c"), **FAST
    ) as client:
        assert client.url == b.ws and client.attempts == 2 and client.connections == 1
        assert await client.members() == [client.client_id]

    with pytest.raises(ReconnectGaveUpError, match="3 failed connection attempts"):
        async with aether_client.connect(
            dead_url(), group_id="g1", client_id="c1", max_retries=2, **FAST
        ):
            pass


async def test_no_task_is_left_after_close(
    redis_node_pair: tuple[NodeProcess, NodeProcess],
) -> None:
    a, _ = redis_node_pair
    before = asyncio.all_tasks()

    # A session with heartbeats, a members() call and traffic.
    async with aether_client.connect(
        a.ws, group_id=uid("team"), client_id=uid("c"), heartbeat=0.05
    ) as first:
        assert len(await first.members()) == 1
        await first.send_echo(msg="x")
        await next_message(first)
        await eventually(lambda: first.heartbeats_acked >= 2)
        waiting = asyncio.create_task(first.members())  # may be pending when the client closes
        await asyncio.sleep(0)  # one turn: the request is sent, its answer not yet read
    with contextlib.suppress(aether_client.ClientClosedError):
        await waiting  # answered before the close, or refused by it: it does not hang
    assert not new_tasks(before)
    with pytest.raises(aether_client.ClientClosedError):
        await first.send_echo(msg="after close")

    # A session the server ended.
    async with aether_client.connect(a.ws, group_id="12345", client_id="c1", **FAST) as client:
        with pytest.raises(ServerClosedError):
            await next_item(client)
    assert not new_tasks(before)

    # A client closed while it keeps retrying a URL nobody listens on.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            async with aether_client.connect(dead_url(), group_id="g1", client_id="c1", **FAST):
                pass
    assert not new_tasks(before)


def test_frames_are_read_with_the_servers_models_and_leniently_outside_them() -> None:
    """The server's resync, error and member list become the client's items; a newer gateway's
    reason or code (outside today's schema) is still delivered, flagged as off-schema."""
    from aether_client.frames import HeartbeatAck, MemberList, read_frame
    from v3_core.presence import heartbeat_reply, members_reply, presence_event, resync_notice

    item, known = read_frame(resync_notice("history-gap", "client"))
    assert known and isinstance(item, Resync)
    assert (item.reason, item.stream, item.local) == ("history-gap", "client", False)
    item, known = read_frame(resync_notice("broker-restarted"))
    assert (
        known
        and isinstance(item, Resync)
        and (item.reason, item.stream)
        == (
            "broker-restarted",
            None,
        )
    )
    item, known = read_frame(members_reply("g1", "c1", ["a1", "c1"]))
    assert known and item == MemberList(["a1", "c1"])
    item, known = read_frame(heartbeat_reply("g1", "c1"))
    assert known and isinstance(item, HeartbeatAck) and item.sent_at is not None
    item, known = read_frame(presence_event("g1", "c1", "join"))
    assert known and isinstance(item, MessageV3)
    assert item.payload == {"event": "join", "client_id": "c1"}

    newer_resync = (
        '{"version":"3","msg_type":"cmd","target":"echo","cmd":"resync",'
        '"payload":{"reason":"shard-moved","stream":"group"},"sent_at":"2026-12-04T16:10:03Z"}'
    )
    item, known = read_frame(newer_resync)
    assert (
        not known
        and isinstance(item, Resync)
        and (item.reason, item.stream)
        == (
            "shard-moved",
            "group",
        )
    )
    newer_error = (
        '{"version":"3","msg_type":"error","target":"echo","msg":"m","payload":{"code":"x"}}'
    )
    item, known = read_frame(newer_error)
    assert not known and item == ServerError("x", "m", {"code": "x"})
