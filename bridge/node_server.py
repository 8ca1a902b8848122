"""uvicorn's server for one node process, without its ten wake-ups a second.

uvicorn's main loop sleeps 0.1 s at a time to notice ``should_exit``. On an idle node those
ticks were a quarter of all wake-ups, and a node's idle CPU is what the noisy-neighbour figure
measures (docs/performance.md). Here a request to exit wakes the loop itself, so the loop
only ticks once a second, to keep the Date header current as uvicorn does.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Coroutine
from typing import Any

import uvicorn
from uvicorn.config import Config

from .sockets import SocketRouter

TICK = 1.0  # uvicorn refreshes its Date header once a second; nothing else needs the tick
STARTUP_FAILURE = 3  # uvicorn's exit status when the app fails to start


class NodeServer(uvicorn.Server):
    """A ``uvicorn.Server`` whose main loop sleeps until a tick is due or an exit is asked.

    Setting ``should_exit`` (uvicorn's signal handler, the lifespan, a test) from any thread
    wakes the loop at once.
    """

    def __init__(self, config: Config) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit_asked = asyncio.Event()
        super().__init__(config)

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._exit_asked.set)

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        counter = 0
        # uvicorn refreshes the Date header on ticks whose counter is a multiple of 10.
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_asked.wait(), TICK)
        await self._before_shutdown()

    async def _before_shutdown(self) -> None:
        """Drain while the listener still accepts (readiness probes must see the 503), stop
        listening, then close our sockets, spread; a second signal (``force_exit``) cuts
        either phase short. uvicorn's own shutdown follows."""
        app = self.config.app
        if not isinstance(app, SocketRouter):
            return
        await self._unless_forced(app.drain())
        for server in self.servers:
            server.close()
        await self._unless_forced(app.close_sockets())

    async def _unless_forced(self, phase: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(phase)
        while not task.done() and not self.force_exit:
            await asyncio.wait({task}, timeout=TICK / 10)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def run(app: Any, **options: Any) -> None:
    """``uvicorn.run`` for a single process, served by NodeServer."""
    server = NodeServer(Config(app, **options))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
