"""A TCP proxy between a node and Redis that can blackhole traffic (the half-open case), or
pass Redis' replies on a little at a time (a node reading them late, a slow network).

While blackholed it keeps every socket open, drops every byte both ways and delays every
close, as a network partition does: neither side gets an error, only silence. It runs its
own event loop in a thread, so a test blocking its loop never stalls the node's Redis traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

CHUNK = 65536


class BlackholeProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.accepted = 0
        self._blackhole = False
        self._trickle: tuple[int, float] | None = None  # (bytes, seconds): Redis' side only
        self._path_open = asyncio.Event()  # set unless blackholed; awaited in the proxy loop
        self._path_open.set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(5)

    def blackhole(self, on: bool) -> None:
        """Start or stop dropping traffic; existing sockets stay open either way."""
        self._blackhole = on
        self._loop.call_soon_threadsafe(self._path_open.clear if on else self._path_open.set)

    def trickle(self, size: int, every: float) -> None:
        """From now on, pass what Redis sends ``size`` bytes every ``every`` seconds."""
        self._trickle = (size, every)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()

    async def _handle(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            down_w.close()
            return
        self._writers.update((down_w, up_w))
        try:
            await asyncio.gather(
                self._pump(down_r, up_w), self._pump(up_r, down_w, from_redis=True)
            )
        finally:
            for writer in (down_w, up_w):
                self._writers.discard(writer)
                writer.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, from_redis: bool = False
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(CHUNK):
                if self._blackhole:
                    continue  # lost on the wire
                if from_redis and self._trickle is not None:
                    size, every = self._trickle
                    for at in range(0, len(data), size):
                        await asyncio.sleep(every)
                        writer.write(data[at : at + size])
                    continue
                writer.write(data)
                await writer.drain()
        # A close (FIN) is a packet too: it gets through only once the path is back.
        await self._path_open.wait()
        writer.close()


@contextlib.contextmanager
def blackhole_proxy(upstream_port: int) -> Iterator[BlackholeProxy]:
    proxy = BlackholeProxy(upstream_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.blackhole(False)
        proxy.close()
