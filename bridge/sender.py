"""The Sender a Connection writes through: a Starlette WebSocket, plus a hard cut for uvicorn.

An ASGI app cannot close a client whose socket buffer is full (both send and close wait for
buffer space that never comes), so `abort` reaches the uvicorn protocol behind the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.websockets import WebSocket

log = logging.getLogger("aether.sender")

ABORT_AFTER = 1.0  # seconds a closing slow consumer gets to read its close frame


class WebSocketSender:
    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._send = websocket.send
        # uvicorn passes its protocol's bound ``receive``: the way to its transport.
        self._protocol: Any = getattr(getattr(websocket, "_receive", None), "__self__", None)

    async def send_text(self, text: str) -> None:
        await self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str) -> None:
        await self._websocket.close(code, reason)

    def abort(self, code: int, reason: str) -> None:
        protocol = self._protocol
        transport = getattr(protocol, "transport", None)
        conn = getattr(protocol, "conn", None)
        if transport is None or conn is None:
            # Not uvicorn's websockets-sansio protocol: fall back to a polite close, bounded.
            asyncio.get_running_loop().create_task(self._close_bounded(code, reason))
            return
        # Queue the close frame behind what is buffered, stop reading, and cut the socket
        # if the peer has not drained it in time.
        with contextlib.suppress(Exception):
            conn.send_close(code, reason)
            transport.write(b"".join(conn.data_to_send()))
        protocol.close_sent = True
        with contextlib.suppress(Exception):
            protocol.queue.put_nowait({"type": "websocket.disconnect", "code": code})
        transport.close()
        asyncio.get_running_loop().call_later(ABORT_AFTER, transport.abort)

    async def _close_bounded(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.close(code, reason), ABORT_AFTER)
