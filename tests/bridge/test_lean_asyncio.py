"""The lean queue and event a WebSocket connection holds, and what it no longer keeps."""

from __future__ import annotations

import asyncio
import gc

import pytest
from websockets.http11 import Request

from bridge.lean_asyncio import LeanEvent, LeanQueue

from ..conftest import embedded_backends, serve_app
from ..helpers import recv_msg, send_json, v3


async def test_the_queue_hands_items_over_in_order_to_a_waiting_consumer():
    queue: LeanQueue[int] = LeanQueue()
    getting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # one turn of the loop: the consumer starts and waits (the point)
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert await getting == 1
    assert (queue.qsize(), queue.empty()) == (1, False)
    assert await queue.get() == 2
    assert queue.empty()


async def test_an_item_put_while_the_consumer_was_cancelled_is_kept():
    queue: LeanQueue[str] = LeanQueue()
    getting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # one turn of the loop: the consumer starts and waits
    getting.cancel()
    queue.put_nowait("kept")
    with pytest.raises(asyncio.CancelledError):
        await getting
    assert await queue.get() == "kept"


async def test_the_queue_refuses_a_second_consumer():
    queue: LeanQueue[int] = LeanQueue()
    first = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # one turn of the loop: the consumer starts and waits
    with pytest.raises(RuntimeError, match="one consumer"):
        await queue.get()
    queue.put_nowait(7)
    assert await first == 7


async def test_the_event_wakes_every_waiter_and_can_be_cleared():
    event = LeanEvent()
    waiters = [asyncio.create_task(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)  # one turn of the loop: the waiters start and wait
    assert not any(w.done() for w in waiters)
    event.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    event.clear()
    late = asyncio.create_task(event.wait())
    await asyncio.sleep(0)  # one turn of the loop: the waiters start and wait
    assert not late.done()
    late.cancel()
    with pytest.raises(asyncio.CancelledError):
        await late
    event.set()
    assert await event.wait()


async def test_an_open_connection_keeps_no_handshake_request(make_settings):
    """websockets' server parser held each connection's request (headers and all) for the
    connection's life: only the clients' own requests remain."""
    async with serve_app(make_settings(), **embedded_backends()) as node:
        clients = [await v3(node.ws, "g1", f"c{i}") for i in range(3)]
        try:
            for ws in clients:  # frames still parse after the parser swap
                await send_json(ws, {"msg_type": "msg", "target": "echo", "payload": {"n": 1}})
                assert (await recv_msg(ws))["payload"] == {"n": 1}
            gc.collect()
            requests = [o for o in gc.get_objects() if isinstance(o, Request)]
            assert len(requests) == len(clients)
        finally:
            for ws in clients:
                await ws.close()
