"""create_app(settings): the wiring. The lifespan opens the backends, the manager and the rest,
and leaves them on ``app.state.node`` (a NodeState) while the app runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from translators import IdStore, V2Dialect, open_id_mapper
from v3_core import Channels, ConnectionManager, QueueLimits
from v3_core.backends import MemoryHub, open_backends
from v3_core.logthrottle import ThrottleRepeats
from v3_core.manager import ConnectionLimits
from v3_core.ratelimit import RateLimit
from v3_core.streams import HistoryPolicy

from . import docs_api, http_api, log_redaction, ops_api, sockets, worker_metrics
from .api_token import ApiUnauthorized
from .auth import TokenPolicy
from .dead_letter_store import DeadLetterStore, open_dead_letter_store
from .dead_letters import DeadLetters
from .metrics import metrics_registry
from .node_registry import NodeStore, open_node_store
from .node_state import NodeState
from .ops_state import NodeHeartbeat
from .problems import install_openapi, invalid_request
from .settings import Settings
from .v2 import http as v2_http
from .v2.control import V2Control
from .v2.store import V2Store, open_v2_store

log = logging.getLogger("aether.bridge")

READY_WAIT = 5.0  # seconds start-up waits for the broker before serving anyway (503 on /readyz)


def create_app(
    settings: Settings | None = None,
    *,
    hub: MemoryHub | None = None,
    id_store: IdStore | None = None,
    v2_store: V2Store | None = None,
    dead_letter_store: DeadLetterStore | None = None,
    node_store: NodeStore | None = None,
    metrics_dir: str | None = None,
) -> sockets.SocketRouter:
    """The ASGI app of one node: raw WebSocket endpoints in front of the FastAPI HTTP app.

    ``hub``, ``id_store``, ``v2_store``, ``dead_letter_store`` and ``node_store`` let
    in-process test nodes share the embedded backends, as nodes share one Redis.
    ``metrics_dir``: this is a worker of a ``--workers`` node, and /metrics shows the whole
    group (bridge/worker_metrics.py).
    """
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log_redaction.install()  # after uvicorn configured its loggers
        channels = Channels(settings.channel_prefix)
        async with (
            open_backends(
                settings.redis_url,
                prefix=settings.channel_prefix,
                node_channel=channels.node(settings.node_id),
                presence_ttl=settings.presence_ttl,
                timeout=settings.redis_timeout,
                probe_interval=settings.probe_interval,
                history=HistoryPolicy(settings.history_size, settings.history_ttl),
                cluster_pubsub=settings.cluster_pubsub,
                hub=hub,
            ) as backends,
            DeadLetters(
                dead_letter_store or _dead_letter_store(settings),
                node_id=settings.node_id,
                max_frame_bytes=settings.max_message_bytes,
            ) as dead_letters,
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
                rate_limit=RateLimit.from_settings(
                    settings.rate_limit, settings.rate_burst, settings.rate_close_after
                ),
                connection_limits=ConnectionLimits(
                    per_client=settings.max_connections_per_client,
                    per_node=settings.max_connections,
                ),
                refusals=dead_letters,
            ) as manager,
            open_id_mapper(
                settings.redis_url,
                prefix=settings.channel_prefix,
                lookup_url=settings.id_lookup_url,
                lookup_timeout=settings.id_lookup_timeout,
                lookup_token=settings.id_lookup_token,
                redis_timeout=settings.redis_timeout,
                store=id_store,
            ) as id_mapper,
            V2Control(
                v2_store or _v2_store(settings),
                refresh_interval=settings.v2_refresh_interval,
                flush_interval=settings.v2_usage_interval,
            ) as v2_control,
            NodeHeartbeat(
                node_store
                or open_node_store(
                    settings.redis_url,
                    prefix=settings.channel_prefix,
                    timeout=settings.redis_timeout,
                ),
                manager,
                v2_control,
                interval=settings.node_heartbeat_interval,
            ) as heartbeat,
            worker_metrics.worker_group(
                metrics_registry(manager, v2_control, dead_letters), metrics_dir
            ) as metrics,
        ):
            app.state.node = NodeState(
                settings=settings,
                manager=manager,
                id_mapper=id_mapper,
                v2_dialect=V2Dialect(
                    id_mapper,
                    allow_broadcast=settings.client_broadcast,
                    new_ids_per_connection=settings.new_ids_per_connection,
                ),
                v2_control=v2_control,
                dead_letters=dead_letters,
                heartbeat=heartbeat,
                metrics=metrics,
                token_policy=(
                    TokenPolicy(settings.auth_secret, settings.auth_audience)
                    if settings.auth_secret
                    else None
                ),
            )
            try:
                await backends.broker.wait_ready(READY_WAIT)
            except TimeoutError:
                log.error("broker not ready after %.0fs; serving, /readyz says 503", READY_WAIT)
            log.info("aether-bridge node %s using %s", settings.node_id, backends.description)
            yield

    app = FastAPI(
        title="Aether WebSocket bridge",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url=None,  # served by docs_api, behind the API token when one is set
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(ApiUnauthorized, _unauthorized)
    app.add_exception_handler(ops_api.OpsForbidden, _forbidden)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.include_router(docs_api.router)
    app.include_router(docs_api.assets)
    app.include_router(http_api.router)
    app.include_router(v2_http.router)
    app.include_router(ops_api.pages)
    app.include_router(ops_api.router)
    install_openapi(app)
    return sockets.SocketRouter(app)


async def _unauthorized(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": str(exc), "code": "unauthorized"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def _forbidden(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "code": "forbidden"}, status_code=403)


def _v2_store(settings: Settings) -> V2Store:
    return open_v2_store(
        settings.redis_url,
        prefix=settings.channel_prefix,
        timeout=settings.redis_timeout,
        usage_ttl=settings.v2_usage_ttl,
    )


def _dead_letter_store(settings: Settings) -> DeadLetterStore:
    return open_dead_letter_store(
        settings.redis_url,
        prefix=settings.channel_prefix,
        timeout=settings.redis_timeout,
        keep=settings.dead_letter_keep,
        ttl=settings.dead_letter_ttl,
    )


def app_from_env() -> sockets.SocketRouter:
    """Factory for uvicorn workers: each builds its own app from the AETHER_* environment."""
    settings = Settings()
    configure_logging(settings)
    return create_app(settings, metrics_dir=os.environ.get(worker_metrics.METRICS_DIR_ENV))


# What uvicorn logs, once per request, for requests anyone can send: a flood of them was a
# WARNING line each (the log and its disk grew with the attack).
UVICORN_CLIENT_LINES = ("Invalid HTTP request received.", "Unsupported upgrade request.")


def configure_logging(settings: Settings) -> None:
    """The ``aether.*`` loggers in uvicorn's style, in the parent and in every worker;
    uvicorn's lines about bad requests at most once per 10 s each."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s:     %(name)s %(message)s"
    )
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, ThrottleRepeats) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(ThrottleRepeats(UVICORN_CLIENT_LINES))
