"""Scenarios B1 and B2: a client that stops reading, a client that never answers pings.

Both misbehave through a raw socket (rawws.py); everyone else is a normal `websockets` client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import pytest

from ..helpers import eventually, parse_metrics, presence
from .conftest import LaunchNode
from .rawws import OP_CLOSE, OP_PING, RawWebSocket
from .traffic import Member, percentile, rss_kib

pytestmark = pytest.mark.chaos

FAST = 19  # reading clients beside the slow one (full size: 49)
RATE = 50.0  # msg/s (as at full size)
SIZE = 16 * 1024  # bytes of padding per message (as at full size)
DURATION = 8.0  # seconds of traffic (full size: 30 s)


async def metric(http: httpx.AsyncClient, base: str, name: str) -> float:
    return parse_metrics((await http.get(f"{base}/metrics")).text)[name]


async def publish_padded(member: Member, until: float) -> int:
    """Group messages of SIZE bytes at RATE, each stamped with its send time; returns the count."""
    period, next_at, seq = 1 / RATE, time.monotonic(), 0
    pad = "x" * SIZE
    while time.monotonic() < until:
        seq += 1
        payload = {"pub": member.name, "seq": seq, "t": time.monotonic(), "pad": pad}
        await member.ws.send(json.dumps({"msg_type": "msg", "target": "group", "payload": payload}))
        next_at += period
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return seq


async def read_to_close(ws: RawWebSocket, *, pong: bool = True) -> tuple[int | None, float]:
    """Read until the server's close frame, or the socket ends; (close code, when)."""
    with contextlib.suppress(EOFError, ConnectionError):
        while True:
            frame = await ws.recv_frame()
            if frame.opcode == OP_CLOSE:
                return frame.close_code, time.monotonic()
            if frame.opcode == OP_PING and pong:
                raise AssertionError("this helper never answers pings")
    return None, time.monotonic()


async def test_b1_slow_consumer_is_cut_and_nobody_waits(redis_url, launch: LaunchNode):
    """B1: a client that never reads is closed with 4008; the others' latency stays low."""
    node = launch(redis_url, "nodeA")
    readers = [await Member.open(node.ws, "g1", f"fast{i:02d}") for i in range(FAST)]
    slow = await RawWebSocket.connect(node.port, "/v3/ws/group/g1/client/slow", rcvbuf=16384)
    await asyncio.sleep(0.5)  # the joins settle before the memory baseline
    rss_before = rss_kib(node.pid)
    start = time.monotonic()
    publishing = asyncio.create_task(publish_padded(readers[0], start + DURATION))
    cut = await wait_metric(node.http, "aether_slow_consumers_total", 1.0, DURATION)
    code, _ = await read_to_close(slow)  # read at once: the close frame is behind the backlog
    sent = await publishing
    await asyncio.sleep(0.5)  # frames in flight land before memory and latencies are read
    rss_growth = (rss_kib(node.pid) - rss_before) / 1024
    latencies = [
        at - f["payload"]["t"] for r in readers for at, f in r.frames if f.get("msg_type") == "msg"
    ]
    counts = {len([f for _, f in r.frames if f.get("msg_type") == "msg"]) for r in readers}
    slow.close()
    print(f"FIGURE B1 slow client cut after (s): {cut - start:.2f}, close code {code}")
    print(
        f"FIGURE B1 fast clients: {FAST}, msgs each {counts}, p99 latency (ms): "
        f"{1000 * percentile(latencies, 0.99):.1f}, max {1000 * max(latencies):.1f}"
    )
    print(f"FIGURE B1 server RSS growth (MiB): {rss_growth:.1f}")
    assert code == 4008
    # Cut by the send timeout (a send waited > 1 s) or the 1 MiB queue bound, while traffic ran.
    assert "closing slow consumer" in node.log.read_text()
    assert cut - start < DURATION
    assert counts == {sent}, "a fast client missed messages"
    assert percentile(latencies, 0.99) <= 0.100
    assert rss_growth <= 20
    assert all(r.closed_at is None for r in readers)
    for r in readers:
        await r.aclose()


async def wait_metric(base: str, name: str, value: float, timeout: float) -> float:
    """When ``name`` first reaches ``value`` (polled every 50 ms)."""
    # One client for the whole poll: building one costs the test's loop tens of milliseconds.
    async with httpx.AsyncClient(timeout=2.0) as http, asyncio.timeout(timeout):
        while True:
            if await metric(http, base, name) >= value:
                return time.monotonic()
            await asyncio.sleep(0.05)


async def test_b2_non_ponging_client_closed_1011(redis_url, launch: LaunchNode):
    """B2: a client that reads but never pongs is closed (1011) and leaves presence at once."""
    node = launch(redis_url, "nodeA", AETHER_PING_INTERVAL="2", AETHER_PING_TIMEOUT="2")
    healthy = await Member.open(node.ws, "g1", "healthy")
    mute = await RawWebSocket.connect(node.port, "/v3/ws/group/g1/client/mute")
    connected = time.monotonic()
    assert await presence(node.http, "g1") == ["healthy", "mute"]
    code, closed = await asyncio.wait_for(read_to_close(mute, pong=False), 10)
    mute.close()

    async def gone() -> bool:
        return await presence(node.http, "g1") == ["healthy"]

    await eventually(gone, 2.0)
    left = time.monotonic() - closed
    print(
        f"FIGURE B2 closed after (s): {closed - connected:.2f} with {code}; "
        f"presence removed {left:.2f} s after the close"
    )
    assert code == 1011
    assert closed - connected <= 5.0
    assert left <= 1.0
    assert healthy.closed_at is None  # the websockets client answers pings
    await healthy.aclose()
