"""create_app(settings): the wiring. Backends and the manager live for the app's lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from v3_core import Channels, ConnectionManager, QueueLimits
from v3_core.backends import MemoryHub, open_backends

from . import http_api, sockets
from .metrics import metrics_registry
from .settings import Settings

log = logging.getLogger("aether.bridge")

READY_WAIT = 5.0  # seconds start-up waits for the broker before serving anyway (503 on /readyz)


def create_app(settings: Settings | None = None, *, hub: MemoryHub | None = None) -> FastAPI:
    """A FastAPI app for one node. ``hub`` lets in-process test nodes share a memory broker."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        channels = Channels(settings.channel_prefix)
        async with (
            open_backends(
                settings.redis_url,
                prefix=settings.channel_prefix,
                node_channel=channels.node(settings.node_id),
                presence_ttl=settings.presence_ttl,
                timeout=settings.redis_timeout,
                probe_interval=settings.probe_interval,
                hub=hub,
            ) as backends,
            ConnectionManager(
                backends,
                node_id=settings.node_id,
                channels=channels,
                presence_ttl=settings.presence_ttl,
                limits=QueueLimits(
                    max_bytes=settings.queue_max_bytes,
                    max_messages=settings.queue_max_messages,
                    send_timeout=settings.send_timeout,
                ),
                allow_client_broadcast=settings.client_broadcast,
            ) as manager,
        ):
            app.state.settings = settings
            app.state.manager = manager
            app.state.metrics = metrics_registry(manager)
            try:
                await backends.broker.wait_ready(READY_WAIT)
            except TimeoutError:
                log.error("broker not ready after %.0fs; serving, /readyz says 503", READY_WAIT)
            log.info("aether-bridge node %s using %s", settings.node_id, backends.description)
            yield

    app = FastAPI(title="Aether WebSocket bridge", version="0.1.0", lifespan=lifespan)
    app.include_router(http_api.router)
    app.include_router(sockets.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: each builds its own app from the AETHER_* environment."""
    return create_app(Settings())
