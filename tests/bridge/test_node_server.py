"""NodeServer: uvicorn's server, ticking once a second and woken at once by an exit request."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from bridge import node_server
from bridge.node_server import NodeServer


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[NodeServer, asyncio.Task[None], str]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = NodeServer(uvicorn.Config(hello, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # failed to start: show why
            await asyncio.sleep(0.01)
        yield server, task, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


async def test_an_exit_asked_from_another_thread_wakes_the_server_at_once(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(node_server, "TICK", 3600.0)  # only the request itself can wake it
    async with serving() as (server, task, _):
        await asyncio.sleep(0.1)  # in its main loop, asleep
        # uvicorn's signal handler sets it the same way, from outside the loop's callbacks
        threading.Thread(target=setattr, args=(server, "should_exit", True)).start()
        await asyncio.wait_for(asyncio.shield(task), 10)


async def test_the_server_ticks_once_a_second_and_keeps_the_date_header(
    monkeypatch: pytest.MonkeyPatch,
):
    ticks = 0
    on_tick = NodeServer.on_tick

    async def counting(self: NodeServer, counter: int) -> bool:
        nonlocal ticks
        ticks += 1
        return await on_tick(self, counter)

    monkeypatch.setattr(NodeServer, "on_tick", counting)
    async with serving() as (_, _, url):
        await asyncio.sleep(2.5)
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
    assert response.text == "hello"
    assert response.headers["date"].endswith(" GMT")
    # uvicorn's own loop ticks every 0.1 s: 25 times in 2.5 s
    assert 2 <= ticks <= 4
