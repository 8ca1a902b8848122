"""Keepalive pings go only to clients that were silent for a whole interval."""

from __future__ import annotations

import asyncio
import contextlib
import time

from ..chaos.rawws import OP_CLOSE, OP_PING, OP_PONG, RawWebSocket
from ..conftest import embedded_backends, serve_app

HEARTBEAT = '{"msg_type":"heartbeat","target":"echo"}'


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
