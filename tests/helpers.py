"""Helpers shared by the tests: polling with a deadline, WebSocket clients, a node's HTTP API."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from v3_core import Channels, ConnectionManager
from v3_core.backends import MemoryBroker, MemoryCursorStore, MemoryHub, MemoryPresenceStore
from v3_core.backends.base import Backends

from .support.redis_server import free_port as free_port  # re-exported

# One time unit; CI machines can scale every deadline with AETHER_TEST_MS (default 1.0).
MS = float(os.environ.get("AETHER_TEST_MS", "1.0")) / 1000


def memory_backends(hub: MemoryHub, **overrides: Any) -> Backends:
    """Embedded backends on ``hub`` (history off unless ``broker`` says otherwise)."""
    parts: dict[str, Any] = {
        "broker": MemoryBroker(hub),
        "presence": MemoryPresenceStore(ttl=30, hub=hub),
        "cursors": MemoryCursorStore(ttl=300, hub=hub),
        "description": "memory",
    }
    return Backends(**{**parts, **overrides})


def embedded_manager(**options: Any) -> ConnectionManager:
    """A ConnectionManager on fresh in-memory backends (node "n1", presence TTL 30 s)."""
    backends = memory_backends(MemoryHub())
    return ConnectionManager(
        backends, node_id="n1", channels=Channels("t:"), presence_ttl=30, **options
    )


async def wait_until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float = 5000 * MS,
    *,
    interval: float = 1 * MS,
) -> None:
    """Poll ``check`` until it is true; fail with a clear message at the deadline.

    Waits on the condition itself, never a count of event-loop turns or a settle time.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.1f}s")
        await asyncio.sleep(interval)


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 5000 * MS
) -> None:
    """``wait_until`` at a pace for checks that ask a server (HTTP, Redis) each time."""
    await wait_until(check, timeout, interval=20 * MS)


async def connect(base: str, path: str, **kwargs: Any) -> ClientConnection:
    """Open a WebSocket to ``base`` (``ws://host:port``) + ``path``."""
    kwargs.setdefault("max_queue", None)  # unread frames must not stall the closing handshake
    return await websockets.connect(f"{base}{path}", open_timeout=5, **kwargs)


async def v3(base: str, group: str, client: str) -> ClientConnection:
    return await connect(base, f"/v3/ws/group/{group}/client/{client}")


async def recv_json(ws: ClientConnection, timeout: float = 3000 * MS) -> dict[str, Any]:
    data = await asyncio.wait_for(ws.recv(), timeout)
    result: dict[str, Any] = json.loads(data)
    return result


async def recv_msg(ws: ClientConnection, timeout: float = 3000 * MS) -> dict[str, Any]:
    """The next frame that is not a presence event (those arrive whenever members come and go)."""
    while True:
        frame = await recv_json(ws, timeout)
        kind = frame.get("msg_type", frame.get("type"))  # V3, or the legacy V2 shape
        if not (kind == "presence" and frame.get("target") == "group"):
            return frame


async def assert_silent(ws: ClientConnection, duration: float = 300 * MS) -> None:
    """No non-presence frame arrives within ``duration``."""
    try:
        frame = await recv_msg(ws, duration)
    except TimeoutError:
        return
    raise AssertionError(f"expected silence, got {frame}")


async def send_json(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def close_of(ws: ClientConnection) -> tuple[int | None, str | None]:
    """The close code and reason the server sent; the socket must get no frame before them."""
    with pytest.raises(websockets.ConnectionClosed):
        await ws.recv()
    return ws.close_code, ws.close_reason


# -- a node's HTTP API ----------------------------------------------------------------------


async def presence(base: str, group_id: str) -> list[str]:
    """The clients ``GET /v3/groups/{group_id}/presence`` lists on the node at ``base``."""
    async with httpx.AsyncClient(timeout=2.0) as http:
        response = await http.get(f"{base}/v3/groups/{group_id}/presence")
    clients: list[str] = response.json()["clients"]
    return clients


async def metrics(base: str) -> dict[str, float]:
    """The node's ``/metrics`` as sample (name and labels, as written) -> value."""
    async with httpx.AsyncClient(timeout=2.0) as http:
        return parse_metrics((await http.get(f"{base}/metrics")).text)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format -> {'name{labels}': value}; comments skipped."""
    samples = (line.rsplit(" ", 1) for line in text.splitlines() if line and line[0] != "#")
    return {name: float(value) for name, value in samples}
