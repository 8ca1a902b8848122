"""What the Broker Protocol promises, run on every implementation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from v3_core.backends import BrokerMessage, Discontinuity
from v3_core.backends.base import RECONNECTED


class Listener:
    """Consumes a broker's events in the background, as the manager does."""

    def __init__(self, broker) -> None:
        self.broker = broker
        self.received: asyncio.Queue[BrokerMessage] = asyncio.Queue()
        self.gaps: asyncio.Queue[Discontinuity] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.broker.events():
            if isinstance(event, BrokerMessage):
                self.received.put_nowait(event)
            else:
                self.gaps.put_nowait(event)

    async def next(self, timeout: float = 2.0) -> BrokerMessage:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def next_gap(self, timeout: float = 5.0) -> Discontinuity:
        return await asyncio.wait_for(self.gaps.get(), timeout)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def pair(make_broker):
    a, b = await make_broker("a"), await make_broker("b")
    listeners = [Listener(a), Listener(b)]
    await a.wait_ready(5)
    await b.wait_ready(5)
    yield a, b, listeners[0], listeners[1]
    for listener in listeners:
        await listener.stop()


async def test_published_bytes_reach_a_subscribed_node(pair, prefix):
    a, b, _, on_b = pair
    await b.subscribe(f"{prefix}ch1")
    await a.publish(f"{prefix}ch1", b"hello")
    assert await on_b.next() == BrokerMessage(f"{prefix}ch1", b"hello")


async def test_publisher_receives_its_own_message_when_subscribed(pair, prefix):
    a, _, on_a, _ = pair
    await a.subscribe(f"{prefix}ch1")
    await a.publish(f"{prefix}ch1", b"self")
    assert (await on_a.next()).data == b"self"


async def test_unsubscribed_node_receives_nothing(pair, prefix):
    a, b, _, on_b = pair
    await b.subscribe(f"{prefix}ch1")
    await b.unsubscribe(f"{prefix}ch1")
    await b.subscribe(f"{prefix}ch2")
    await a.publish(f"{prefix}ch1", b"lost")
    await a.publish(f"{prefix}ch2", b"marker")
    assert (await on_b.next()).data == b"marker"


async def test_subscribe_and_unsubscribe_are_idempotent(pair, prefix):
    a, b, _, on_b = pair
    await b.subscribe(f"{prefix}ch1")
    await b.subscribe(f"{prefix}ch1")
    await a.publish(f"{prefix}ch1", b"once")
    assert (await on_b.next()).data == b"once"
    await b.unsubscribe(f"{prefix}ch1")
    await b.unsubscribe(f"{prefix}ch1")
    await b.subscribe(f"{prefix}ch1")
    await a.publish(f"{prefix}ch1", b"again")
    assert (await on_b.next()).data == b"again"


async def test_one_publisher_order_is_kept(pair, prefix):
    a, b, _, on_b = pair
    await b.subscribe(f"{prefix}ch1")
    await asyncio.gather(*(a.publish(f"{prefix}ch1", str(i).encode()) for i in range(300)))
    received = [int((await on_b.next()).data) for _ in range(300)]
    assert received == list(range(300))


async def test_binary_data_is_preserved(pair, prefix):
    a, b, _, on_b = pair
    await b.subscribe(f"{prefix}ch1")
    data = bytes(range(256)) + "é\n".encode()
    await a.publish(f"{prefix}ch1", data)
    assert (await on_b.next()).data == data


async def test_ping_and_ready(pair, prefix):
    a, _, _, _ = pair
    await a.ping()
    assert a.ready


async def test_publish_says_how_many_nodes_the_message_reached(pair, prefix):
    """0 means no node holds the channel: a direct message to a client connected nowhere."""
    a, b, _, on_b = pair
    assert await a.publish(f"{prefix}nobody", b"lost") == 0
    await b.subscribe(f"{prefix}ch1")
    assert await a.publish(f"{prefix}ch1", b"one") == 1
    await a.subscribe(f"{prefix}ch1")
    assert await a.publish(f"{prefix}ch1", b"two") == 2
    assert (await on_b.next()).data == b"one"


async def test_a_lost_connection_is_a_discontinuity_then_the_channels_are_back(
    pair, prefix, cut_subscriber
):
    """The reconnect clause: the broker re-subscribes every channel it holds on its own and
    yields a Discontinuity, since messages published meanwhile are gone; then they flow."""
    a, b, _, on_b = pair
    channel = f"{prefix}ch1"
    await b.subscribe(channel)
    await a.publish(channel, b"before")
    assert (await on_b.next()).data == b"before"
    assert await cut_subscriber("b") >= 1
    gap = await on_b.next_gap()
    assert gap.reason == RECONNECTED  # the connection was lost, Redis kept its state
    assert gap.channels in (None, frozenset({channel}))  # every channel, or those it moved
    assert await a.publish(channel, b"after") == 1
    assert (await on_b.next()).data == b"after"
    assert on_b.gaps.empty()
