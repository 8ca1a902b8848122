"""Raw HTTP over a TCP socket, for requests no client library sends: heads that never end,
bodies that trickle, sizes that lie."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass


def upgrade_head(path: str, *, host: str = "127.0.0.1", extra: str = "") -> bytes:
    """A WebSocket handshake request for ``path``."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def post_head(path: str, headers: dict[str, str]) -> bytes:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}\r\n".encode()


@dataclass
class Answer:
    data: bytes  # all the server sent before it closed
    seconds: float  # from ``since`` to the close
    closed: bool  # False: still open when the wait ended

    @property
    def status(self) -> int | None:
        first = self.data.split(b"\r\n", 1)[0].split()
        return int(first[1]) if len(first) > 1 and first[1].isdigit() else None

    @property
    def body(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[2]


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.opened = time.monotonic()

    async def send(self, data: bytes) -> bool:
        """False once the server has closed (a reset or a broken pipe)."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            return False
        return True

    async def trickle(self, data: bytes, interval: float) -> None:
        """One byte every ``interval`` seconds, until all is sent or the server closes."""
        for i in range(len(data)):
            if not await self.send(data[i : i + 1]):
                return
            await asyncio.sleep(interval)

    async def until_closed(self, timeout: float) -> Answer:
        """What the server sends until it closes, or until ``timeout`` seconds from now."""
        data = b""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        chunk = await self.reader.read(65536)
                    except (ConnectionError, OSError):
                        chunk = b""
                    if not chunk:
                        return Answer(data, time.monotonic() - self.opened, True)
                    data += chunk
        return Answer(data, time.monotonic() - self.opened, False)


@contextlib.asynccontextmanager
async def raw_connection(port: int) -> AsyncIterator[RawConnection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield RawConnection(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
