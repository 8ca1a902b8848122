"""The Sender a Connection writes through: raw ASGI, with two shortcuts for uvicorn.

It is a socket's one write path: the answer to its handshake (accept, reject, refuse) and
every frame after. The shortcuts reach the uvicorn websockets-sansio protocol behind the ASGI
callables, and fall back to plain ASGI under any other server:
- `write_now` writes a frame built once per message straight to the transport while it is
  writable: fan-out then costs one ``transport.write`` per recipient, like websockets'
  broadcast(), instead of a task switch and an ASGI send per recipient.
- `abort` cuts a client whose socket buffer is full: an ASGI app cannot (both send and close
  wait for buffer space that never comes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.protocol import State

from v3_core.connection import Outgoing
from v3_core.errors import CloseCode

from .asgi import Receive, Send

log = logging.getLogger("aether.sender")

ABORT_AFTER = 1.0  # seconds a closing slow consumer gets to read its close frame


def text_frame(text: str) -> bytes:
    """An unmasked, uncompressed server text frame: the same bytes for every recipient."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class AsgiSender:
    __slots__ = ("_direct", "_protocol", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._send = send
        # uvicorn passes its protocol's bound methods: the way to its transport.
        self._protocol: Any = getattr(receive, "__self__", None)
        conn = getattr(self._protocol, "conn", None)
        # A negotiated extension (permessage-deflate) changes the frames: use ASGI then.
        self._direct = (
            conn is not None and not conn.extensions and hasattr(self._protocol, "writable")
        )

    async def accept(self, subprotocol: str | None = None) -> None:
        """Complete the handshake; ``subprotocol``: the one the client offered, echoed back."""
        await self._send({"type": "websocket.accept", "subprotocol": subprotocol})

    async def refuse(self) -> None:
        """Close before the handshake completes: the server answers it with HTTP 403."""
        await self._send({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION})

    async def reject(self, code: int, reason: str, *, subprotocol: str | None = None) -> None:
        """Accept, then close with the code and reason: browsers only show reasons after accept.

        ``subprotocol``: the one the client offered (its token's), echoed so the handshake
        completes and the client sees the close code, not a failed handshake (1006).
        """
        await self.accept(subprotocol)
        await self.close(code, reason)

    def write_now(self, message: Outgoing) -> bool:
        if not self._direct:
            return False
        protocol = self._protocol
        if (
            protocol.close_sent
            or protocol.disconnected
            or protocol.conn.state is not State.OPEN
            or not protocol.writable.is_set()
        ):
            return False
        frame = message.frame
        if frame is None:
            frame = message.frame = text_frame(message.text)
        protocol.transport.write(frame)
        return True

    async def send_text(self, text: str) -> None:
        await self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str) -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})

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
