"""A node served in the caller's event loop by a real uvicorn on a real socket.

Free of pytest, so ``bench/memory_profile.py`` serves its node the same way as the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from bridge.app import create_app
from bridge.node_server import NodeServer
from bridge.settings import Settings
from bridge.uvicorn_ws import server_options


class RunningServer:
    """Where a served node listens."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.http = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def serve_app(settings: Settings, **shared: Any) -> AsyncIterator[RunningServer]:
    """Serve ``create_app(settings, **shared)`` until the block ends, then shut it down."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, **shared), log_level="warning", **server_options(settings)
    )
    server = NodeServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # it failed to start: show why
            await asyncio.sleep(0.01)
        yield RunningServer(port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()
