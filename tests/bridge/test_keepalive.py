"""Keepalive pings go only to clients that were silent for a whole interval."""

from __future__ import annotations

import asyncio
import contextlib
import time

from ..chaos.rawws import OP_CLOSE, OP_PING, OP_PONG, RawWebSocket
from ..conftest import embedded_backends, serve_app
from ..helpers import metrics

HEARTBEAT = '{"msg_type":"heartbeat","target":"echo"}'
TOO_MANY_PINGS = 'aether_ping_closes_total{reason="too-many-pings"}'


async def count_pings(ws: RawWebSocket, until: float, *, beat_every: float | None) -> list[int]:
    """Read (answering pings) until ``until``; heartbeat every ``beat_every`` seconds if set.
    Returns [pings seen, close code or 0]."""
    seen = [0, 0]

    async def read() -> None:
        while True:
            frame = await ws.recv_frame()
            if frame.opcode == OP_PING:
                seen[0] += 1
                await ws.send_frame(OP_PONG, frame.payload)
            elif frame.opcode == OP_CLOSE:
                seen[1] = frame.close_code or 0
                return

    reader = asyncio.create_task(read())
    try:
        while time.monotonic() < until and not reader.done():
            if beat_every is not None:
                await ws.send_text(HEARTBEAT)
            await asyncio.sleep(min(beat_every or 0.1, max(0.0, until - time.monotonic())))
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, EOFError, ConnectionError):
            await reader
    return seen


async def test_a_client_that_spoke_within_the_interval_is_not_pinged(make_settings):
    settings = make_settings(ping_interval=0.5, ping_timeout=2.0)
    async with serve_app(settings, **embedded_backends()) as node:
        chatty = await RawWebSocket.connect(node.port, "/v3/ws/group/g1/client/chatty")
        silent = await RawWebSocket.connect(node.port, "/v3/ws/group/g1/client/silent")
        until = time.monotonic() + 2.6
        try:
            (chatty_pings, chatty_close), (silent_pings, silent_close) = await asyncio.gather(
                count_pings(chatty, until, beat_every=0.2),
                count_pings(silent, until, beat_every=None),
            )
        finally:
            chatty.close()
            silent.close()
    assert (chatty_pings, chatty_close) == (0, 0)
    # About one ping per interval, from 0.5 s after the handshake; the silent client answered
    # each, so it stayed open.
    assert silent_pings >= 3
    assert silent_close == 0


async def test_a_silent_client_that_never_pongs_is_still_closed_1011(make_settings):
    settings = make_settings(ping_interval=0.3, ping_timeout=0.3)
    async with serve_app(settings, **embedded_backends()) as node:
        mute = await RawWebSocket.connect(node.port, "/v3/ws/group/g1/client/mute")
        try:
            async with asyncio.timeout(5):
                while (frame := await mute.recv_frame()).opcode != OP_CLOSE:
                    pass
        finally:
            mute.close()
    assert frame.close_code == 1011


async def send_pings(ws: RawWebSocket, count: int, every: float) -> int:
    """Send ``count`` pings, each ``every`` seconds after the one before (or the call),
    reading the replies; the close code the node sent, or 0 if it kept the socket open."""
    received: list[int] = []

    async def read() -> None:
        while True:
            frame = await ws.recv_frame()
            if frame.opcode == OP_CLOSE:
                received.append(frame.close_code or 0)
                return

    reader = asyncio.create_task(read())
    try:
        for i in range(count):
            await asyncio.sleep(every)
            await ws.send_frame(OP_PING, str(i).encode())
        await asyncio.sleep(0.2)  # a close the last ping caused is read
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, EOFError, ConnectionError):
            await reader
    return received[0] if received else 0


async def test_pings_within_the_limit_pass_and_a_flood_is_closed_with_4529(make_settings):
    """Two pings a second, after a burst of 5 s worth, pass; one more at once than the burst
    holds is closed (AETHER_MAX_PINGS_PER_SECOND=2 here; 10 by default)."""
    settings = make_settings(max_pings_per_second=2)
    async with serve_app(settings, **embedded_backends()) as node:
        base = f"http://127.0.0.1:{node.port}"
        before = (await metrics(base))[TOO_MANY_PINGS]  # per process: earlier tests count too
        steady = await RawWebSocket.connect(node.port, "/v3/ws/group/g1/client/steady")
        burst = await RawWebSocket.connect(node.port, "/v3/ws/group/g1/client/burst")
        try:
            steady_close, burst_close = await asyncio.gather(
                send_pings(steady, 10, 0.0),  # the burst: 5 s worth at 2/s
                send_pings(burst, 11, 0.0),
            )
            steady_later = await send_pings(steady, 4, 0.55)  # then 2 a second
        finally:
            steady.close()
            burst.close()
        after = await metrics(base)
    assert (steady_close, steady_later) == (0, 0)
    assert burst_close == 4529
    assert after[TOO_MANY_PINGS] - before == 1
