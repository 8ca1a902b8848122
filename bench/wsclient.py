"""One load-generator connection: websockets' sans-I/O ``ClientProtocol`` on an asyncio Protocol.

The client side must cost far less than the server side on a 2-core machine: it shares the
two cores with the servers. websockets does the handshake, masks what the client sends and
handles control frames; once open, unfragmented text frames (unmasked, server to client) are
cut out of the byte stream here, about 0.5 µs each instead of the ~6 µs of the generic parser,
and anything else is handed back to websockets. No extension is offered, so no
permessage-deflate: every server under test sends plain frames.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

import orjson
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from bench.dialects import Dialect, Received

OnBench = Callable[[int, Received], None]


class BenchConnection(asyncio.Protocol):
    """Counts nothing itself: hands every bench payload to ``on_bench(index, payload)``."""

    def __init__(
        self, index: int, url: str, dialect: Dialect, auth: dict[str, str], on_bench: OnBench
    ) -> None:
        self.index = index
        self.dialect = dialect
        self.auth = auth
        self.on_bench = on_bench
        self.ws = ClientProtocol(parse_uri(url), max_size=None)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.transport: asyncio.Transport | None = None
        self.fast = False  # True once the handshake is done and websockets holds no bytes
        self.opened_ns = 0  # monotonic time the connection became usable (0: not yet)
        self.pending = b""

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.fast:
            self._split_frames(self.pending + data if self.pending else data)
            return
        self._websockets_receive(data)
        # reader.buffer is websockets' own: switch only at a frame boundary it has not begun.
        reader = getattr(self.ws, "reader", None)
        self.fast = self.ws.state is State.OPEN and not getattr(reader, "buffer", True)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed during handshake"))

    # -- sending ------------------------------------------------------------------------

    def send(self, frame: bytes) -> bool:
        """Send one text frame; ``False`` if the connection is not open."""
        if self.closed or self.ws.state is not State.OPEN:
            return False
        self.ws.send_text(frame)
        self._flush()
        return True

    def close(self) -> None:
        """Start a clean close; the transport is aborted by :meth:`abort` if it lingers."""
        if not self.closed and self.ws.state is State.OPEN:
            self.ws.send_close(1000)
            self._flush()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # -- internals ----------------------------------------------------------------------

    def _websockets_receive(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT and event.fin:
                    self._on_text(bytes(event.data))
            else:
                self._on_handshake()
        self._flush()

    def _split_frames(self, buf: bytes) -> None:
        """Handle every complete frame in ``buf``; keep the incomplete tail for next time."""
        i, n = 0, len(buf)
        while i + 2 <= n:
            first, length, head = buf[i], buf[i + 1] & 0x7F, 2
            if length == 126:
                length, head = int.from_bytes(buf[i + 2 : i + 4]), 4
            elif length == 127:
                length, head = int.from_bytes(buf[i + 2 : i + 10]), 10
            end = i + head + length
            if i + head > n or end > n:
                break
            if first == 0x81 and not buf[i + 1] & 0x80:  # FIN + text, unmasked
                self._on_text(buf[i + head : end])
            else:  # control or fragmented frame: websockets is at a frame boundary too
                self._websockets_receive(buf[i:end])
            i = end
        self.pending = buf[i:]

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def _on_handshake(self) -> None:
        if self.ws.handshake_exc is not None:
            self.ready.set_exception(self.ws.handshake_exc)
        elif not self.dialect.socketio:
            self._opened()

    def _opened(self) -> None:
        self.opened_ns = time.monotonic_ns()
        self.ready.set_result(None)

    @property
    def refused(self) -> str | None:
        """Why the server closed a connection it had accepted, if it did (a node refuses a
        join it cannot make with a close right after its handshake: 1013, 4529)."""
        if not self.closed and self.ws.state is State.OPEN:
            return None
        close = self.ws.close_rcvd
        return f"{close.code} {close.reason}" if close is not None else "closed"

    def _on_text(self, data: bytes) -> None:
        received = self.dialect.bench_payload(data)
        if received is not None:
            self.on_bench(self.index, received)
        elif self.dialect.socketio:
            self._socketio_control(data)

    def _socketio_control(self, data: bytes) -> None:
        """Engine.IO open -> Socket.IO connect with auth; answer pings; ``40`` means ready."""
        if data.startswith(b"0"):
            self.send(b"40" + orjson.dumps(self.auth))
        elif data == b"2":
            self.send(b"3")
        elif data.startswith(b"40") and not self.ready.done():
            self._opened()
        elif data.startswith(b"44") and not self.ready.done():
            self.ready.set_exception(ConnectionError(data.decode(errors="replace")))
