"""The Redis subscriber sleeps between probes, yet acts at once when told to recycle."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from v3_core.backends.base import RECONNECTED, BrokerEvent, BrokerMessage, Discontinuity
from v3_core.backends.redis_broker import RedisBroker
from v3_core.backends.redis_wire import RedisWire
from v3_core.errors import BackendUnavailable

from ...chaos.proxy import blackhole_proxy
from ...helpers import free_port

IDLE = 2.0


@contextlib.asynccontextmanager
async def running(broker: RedisBroker) -> AsyncIterator[asyncio.Queue[BrokerEvent]]:
    """The broker's events, read by a task into a queue, as the manager reads them."""
    events: asyncio.Queue[BrokerEvent] = asyncio.Queue()

    async def pump() -> None:
        async for event in broker.events():
            events.put_nowait(event)

    task = asyncio.create_task(pump())
    try:
        await broker.wait_ready(5)
        yield events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await broker.aclose()


async def test_an_idle_subscriber_reads_for_its_probes_not_on_a_poll(
    redis_url, prefix, monkeypatch: pytest.MonkeyPatch
):
    reads = 0
    replies = RedisWire.replies

    async def counting(self: RedisWire) -> list[object]:
        nonlocal reads
        reads += 1
        return await replies(self)

    broker = RedisBroker(redis_url, node_channel=f"{prefix}n:a", probe_interval=5.0)
    async with running(broker):
        await asyncio.sleep(0.2)  # the first probe and its echo
        monkeypatch.setattr(RedisWire, "replies", counting)
        await asyncio.sleep(IDLE)
    # A 0.25 s poll read 8 times in 2 s; between probes 5 s apart there is nothing to read.
    assert reads <= 2


async def test_a_recycle_takes_effect_at_once_not_at_the_next_probe(redis_url, prefix):
    broker = RedisBroker(redis_url, node_channel=f"{prefix}n:a", probe_interval=60.0)
    async with running(broker) as events:
        await asyncio.sleep(0.2)
        broker._subscriber.recycle("test: an unsubscribe failed")
        async with asyncio.timeout(10):  # far below the 60 s to the next probe
            event = await events.get()
        assert event == Discontinuity(RECONNECTED)
        assert broker.reconnects == 1


async def test_a_subscribe_while_the_subscriber_reconnects_waits_for_it(redis_url, prefix):
    """A client connecting in that moment is admitted a little later, not refused with 1013."""
    broker = RedisBroker(redis_url, node_channel=f"{prefix}n:a", probe_interval=60.0)
    async with running(broker) as events:
        broker._subscriber.recycle("test: the connection was dropped")
        async with asyncio.timeout(5):
            while broker.ready:  # noqa: ASYNC110 (the reader drops it on its own schedule)
                await asyncio.sleep(0.001)
        await broker.subscribe(f"{prefix}g:late")  # was: BackendUnavailable at once
        assert await events.get() == Discontinuity(RECONNECTED)
        await broker.publish(f"{prefix}g:late", b"hello")
        async with asyncio.timeout(5):
            message = await events.get()
        assert message == BrokerMessage(f"{prefix}g:late", b"hello")


async def test_a_subscribe_cut_off_by_a_drop_waits_for_the_new_connection(
    redis_url, prefix, monkeypatch: pytest.MonkeyPatch
):
    """The connection drops before it confirms: the next one subscribes every channel held,
    this one too, so the client is admitted instead of refused with 1013 (K3 saw it)."""
    broker = RedisBroker(redis_url, node_channel=f"{prefix}n:a", probe_interval=60.0)
    channel = f"{prefix}g:cut"
    send = RedisWire.send
    swallowed: list[tuple[tuple[str | bytes, ...], ...]] = []

    def drop_first_subscribe(self: RedisWire, *commands: tuple[str | bytes, ...]) -> None:
        if commands == (("SUBSCRIBE", channel),) and not swallowed:
            swallowed.append(commands)  # never reaches Redis; the connection is dropped
            broker._subscriber.recycle("test: the connection dropped mid-subscribe")
            return
        send(self, *commands)

    async with running(broker) as events:
        monkeypatch.setattr(RedisWire, "send", drop_first_subscribe)
        await broker.subscribe(channel)  # was: BackendUnavailable("Redis subscriber disconnected")
        assert swallowed
        assert await events.get() == Discontinuity(RECONNECTED)
        await broker.publish(channel, b"after")
        async with asyncio.timeout(5):
            message = await events.get()
        assert message == BrokerMessage(channel, b"after")


async def test_a_subscribe_while_redis_is_unreachable_is_refused_after_the_timeout(prefix):
    broker = RedisBroker(
        f"redis://127.0.0.1:{free_port()}", node_channel=f"{prefix}n:a", timeout=0.3
    )
    pump = asyncio.create_task(anext(broker.events(), None))
    try:
        with pytest.raises(BackendUnavailable, match="reconnecting"):
            await broker.subscribe(f"{prefix}g:x")
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        await broker.aclose()


async def test_a_late_subscribe_confirmation_on_a_live_connection_is_waited_for(
    redis_url, prefix, monkeypatch: pytest.MonkeyPatch
):
    """A confirmation later than the timeout, on a connection that answers a probe, is a
    busy node or Redis, not a lost connection: the caller is admitted when it comes (it used
    to be refused with 1013, and the connection recycled: a resync for every client)."""
    broker = RedisBroker(redis_url, node_channel=f"{prefix}n:a", timeout=0.3, probe_interval=60)
    channel = f"{prefix}g:slow"
    send = RedisWire.send

    def delay_subscribe(self: RedisWire, *commands: tuple[str | bytes, ...]) -> None:
        if commands == (("SUBSCRIBE", channel),):
            asyncio.get_running_loop().call_later(0.9, send, self, *commands)
            return
        send(self, *commands)

    async with running(broker) as events:
        monkeypatch.setattr(RedisWire, "send", delay_subscribe)
        began = time.monotonic()
        await broker.subscribe(channel)
        assert time.monotonic() - began >= 0.9  # three timeouts: the probes kept it alive
        assert broker.reconnects == 0
        assert events.empty()
        await broker.publish(channel, b"after")
        async with asyncio.timeout(5):
            message = await events.get()
        assert message == BrokerMessage(channel, b"after")


async def test_a_subscribe_on_a_connection_gone_silent_is_refused_within_the_probe_timeout(
    redis_url, prefix
):
    """Probes 60 s apart, then the path to Redis goes silent (a partition): a subscribe
    forces a probe, and is refused once that probe has had its timeout, not after 60 s."""
    with blackhole_proxy(urlsplit(redis_url).port or 6379) as proxy:
        broker = RedisBroker(proxy.url, node_channel=f"{prefix}n:a", timeout=0.3, probe_interval=60)
        async with running(broker):
            await asyncio.sleep(0.2)  # the first probe's echo: none is outstanding
            proxy.blackhole(True)
            began = time.monotonic()
            try:
                with pytest.raises(BackendUnavailable) as refused:
                    await broker.subscribe(f"{prefix}g:x")
            finally:
                proxy.blackhole(False)
            took = time.monotonic() - began
            print(f"FIGURE subscribe on a silent connection: {refused.value} after {took:.2f} s")
            assert took < 2.0  # the deadline (0.3 s), then the forced probe's timeout (0.3 s)
