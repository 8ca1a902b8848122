"""The WebSocket endpoints, in raw ASGI: check the path, register, accept, loop over frames.

A socket lives for hours, and every frame of the call stack under it lives as long: raw ASGI
keeps that stack a few frames deep, where FastAPI's middleware and routing would hold a dozen
coroutines per connection. HTTP requests still go to the FastAPI app.
V3 and legacy sockets share `serve_socket`; they differ in how path IDs are resolved and in the
Dialect that parses and renders their frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import parse_qs

from translators import IdMapper, legacy_tags
from v3_core import (
    BackendUnavailable,
    CloseCode,
    Connection,
    ConnectionManager,
    ConnectionRejected,
    Dialect,
    MessageRejected,
    is_vision_id,
)
from v3_core.routing import NO_TAGS, Tags
from v3_core.streams import Position, StreamName, parse_recover

from .asgi import ASGIApp, Receive, Scope, Send
from .auth import authenticate, take_credentials
from .sender import AsgiSender

log = logging.getLogger("aether.sockets")

MIGRATION_HINT = "see docs/migration-guide.md"
SOCKET_PATH = re.compile(r"^/(v3/ws|ws|ws_redis)/group/([^/]+)/client/([^/]+)$")


class SocketRouter:
    """The node's ASGI entry point: our WebSocket paths here, everything else to ``http_app``."""

    def __init__(self, http_app: Any) -> None:
        self.http_app: ASGIApp = http_app
        self.state = http_app.state  # what the lifespan put there: manager, settings, ...

    async def drain(self) -> None:
        """Before the server stops: not ready for ``drain_seconds``, so a load balancer stops
        sending new clients while the node still serves (and accepts) them."""
        manager: ConnectionManager | None = getattr(self.state, "manager", None)
        if manager is None or not self.state.settings.drain_seconds:
            return
        manager.draining = True
        seconds = self.state.settings.drain_seconds
        log.info("draining: not ready for %.1fs before closing its sockets", seconds)
        await asyncio.sleep(seconds)

    async def close_sockets(self) -> None:
        """Every socket closed with 1012, paced over ``close_spread_seconds``; legacy
        clients' positions are stored before their close (they recover elsewhere)."""
        manager: ConnectionManager | None = getattr(self.state, "manager", None)
        if manager is None:  # the lifespan never started
            return
        spread = self.state.settings.close_spread_seconds
        await manager.close_all(CloseCode.SERVICE_RESTART, "server restarting", spread=spread)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.http_app(scope, receive, send)
        elif match := SOCKET_PATH.match(scope["path"]):
            kind, group_id, client_id = match.groups()
            await handle_socket(self.state, scope, receive, send, kind, group_id, client_id)
        else:
            await not_found(scope, receive, send)


NOT_FOUND = (
    b"no WebSocket endpoint at this path; the gateway serves "
    b"/v3/ws/group/{group_id}/client/{client_id} and the legacy /ws/... and /ws_redis/...\n"
)


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """HTTP 404 for a WebSocket path we do not serve, so a typo is not mistaken for a refusal.

    Needs the ASGI ``websocket.http.response`` extension (uvicorn has it); else 403.
    """
    if (await receive())["type"] != "websocket.connect":
        return
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION})
        return
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": NOT_FOUND})


async def handle_socket(
    state: Any, scope: Scope, receive: Receive, send: Send, kind: str, group_id: str, client_id: str
) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    started = time.perf_counter()
    credentials = take_credentials(scope)  # out of the query string before uvicorn logs it
    if not origin_allowed(scope, state.settings.allowed_origins):
        await send({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION})  # HTTP 403
        return
    try:
        expires_at = None
        if state.token_policy is not None:
            expires_at = authenticate(state.token_policy, credentials.token, group_id, client_id)
        if kind == "v3/ws":
            options = await v3_options(state, group_id, client_id)
            options["recover"] = recover_positions(scope)
        else:
            options = await legacy_options(state, group_id, client_id)
            # V2 phase-out (bridge/v2_node.py): refuse, or greet with a deprecation notice.
            greeting = state.v2_control.admit(options["group_id"], options["client_id"])
            options["greeting"] = greeting
            options["track"] = functools.partial(
                state.v2_control.track, greeted=greeting is not None
            )
    except ConnectionRejected as rejection:
        await reject(send, rejection, accepted=False, subprotocol=credentials.subprotocol)
        return
    # The bearer subprotocol a client offered is accepted back, with or without a token
    # policy: a client whose offer is not answered must fail the handshake (RFC 6455).
    options["subprotocol"] = credentials.subprotocol
    options["started"] = started
    if state.token_policy is not None:
        options["expires_at"] = expires_at
    await serve_socket(state.manager, receive, send, **options)


def origin_allowed(scope: Scope, allowed: list[str]) -> bool:
    """An empty allowlist admits any origin; no Origin header means a non-browser client."""
    if not allowed:
        return True
    origins = [value for name, value in scope["headers"] if name == b"origin"]
    return not origins or origins[0].decode("latin-1") in allowed


async def v3_options(state: Any, group_id: str, client_id: str) -> dict[str, Any]:
    for name, value in (("group_id", group_id), ("client_id", client_id)):
        if not is_vision_id(value):
            raise ConnectionRejected(
                CloseCode.POLICY_VIOLATION,
                f"{name} {value[:40]!r} is not a Vision ID; {MIGRATION_HINT}",
            )
    group_legacy, client_legacy = await legacy_ids(state.id_mapper, group_id, client_id)
    return {
        "group_id": group_id,
        "client_id": client_id,
        "dialect": state.manager.v3,
        "tags": legacy_tags(group=group_legacy, client=client_legacy),
    }


def recover_positions(scope: Scope) -> dict[StreamName, Position] | None:
    """``?recover=group:<epoch>:<offset>,...``; malformed: 1008 with the reason."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    values = query.get("recover")
    if values is None:
        return None
    if len(values) != 1:
        raise ConnectionRejected(CloseCode.POLICY_VIOLATION, "recover: give it once")
    try:
        return parse_recover(values[0])
    except ValueError as exc:
        raise ConnectionRejected(CloseCode.POLICY_VIOLATION, str(exc)[:120]) from None


async def legacy_options(state: Any, group_id: str, client_id: str) -> dict[str, Any]:
    """Legacy V2 clients: IDs may be database integers; frames are translated both ways."""
    mapper: IdMapper = state.id_mapper
    # Resolved before registering, so a failed lookup leaves no presence behind.
    group = await mapper.resolve("group", group_id)
    client = await mapper.resolve("client", client_id)
    return {
        "group_id": group.vision_id,
        "client_id": client.vision_id,
        "dialect": state.v2,
        "tags": legacy_tags(group=group.legacy, client=client.legacy),
    }


async def legacy_ids(mapper: IdMapper, group_id: str, client_id: str) -> tuple[str, str]:
    """The database integers behind a V3 client's Vision IDs, shown to legacy clients as ``from``.

    Best effort: if the store does not answer, legacy clients see the Vision IDs instead.
    """
    try:
        group, client = await asyncio.gather(
            mapper.legacy_of("group", group_id), mapper.legacy_of("client", client_id)
        )
    except BackendUnavailable:
        return "", ""
    return group or "", client or ""


async def reject(
    send: Send, rejection: ConnectionRejected, *, accepted: bool, subprotocol: str | None = None
) -> None:
    """Accept, then close with the code and reason: browsers only show reasons after accept.

    ``subprotocol``: the one the client offered (its token's), echoed so the handshake
    completes and the client sees the close code, not a failed handshake (1006).
    """
    if not accepted:
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
    await send(
        {"type": "websocket.close", "code": rejection.close_code, "reason": rejection.reason}
    )


async def serve_socket(
    manager: ConnectionManager,
    receive: Receive,
    send: Send,
    *,
    group_id: str,
    client_id: str,
    dialect: Dialect,
    tags: Tags = NO_TAGS,
    greeting: str | None = None,
    track: Callable[[Connection], AbstractContextManager[None]] | None = None,
    subprotocol: str | None = None,
    expires_at: float | None = None,
    recover: dict[StreamName, Position] | None = None,
    started: float | None = None,
) -> None:
    """Register, accept, send ``greeting`` if any, then loop over frames (inside ``track``).

    ``expires_at`` (unix seconds): the socket's token expires then, and it is closed with 4501.
    ``recover``: the positions a V3 client last saw; legacy clients resume from positions
    their last connection left (the manager finds them). ``started``: perf_counter() at the
    connect event, for the handshake histogram.
    """
    sender = AsgiSender(receive, send)
    try:
        async with manager.connect(
            group_id,
            client_id,
            sender,
            dialect=dialect,
            tags=tags,
            recover=recover,
        ) as conn:
            await send({"type": "websocket.accept", "subprotocol": subprotocol})
            if started is not None:
                manager.latency.handshake.observe(time.perf_counter() - started)
            if greeting is not None:
                # Before the writer starts, so it is the first frame, ahead of queued events.
                await send({"type": "websocket.send", "text": greeting})
            conn.start_writer()
            try:
                await manager.recover(conn)  # what it missed, before any live message
            except OSError:  # the client left during its replay (uvicorn: ClientDisconnected)
                return
            with track(conn) if track is not None else contextlib.nullcontext():
                try:
                    await _receive_until(expires_at, manager, conn, receive)
                except ConnectionRejected as ended:  # rate limit (4529), token expiry (4501)
                    await reject(send, ended, accepted=True)
    except ConnectionRejected as rejection:
        await reject(send, rejection, accepted=False, subprotocol=subprotocol)


async def _receive_until(
    expires_at: float | None, manager: ConnectionManager, conn: Connection, receive: Receive
) -> None:
    """The receive loop, ended by ConnectionRejected(4501) when the token expires."""
    if expires_at is None:
        await _receive_loop(manager, conn, receive)
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (expires_at - time.time())
    try:
        async with asyncio.timeout_at(deadline) as expiry:
            await _receive_loop(manager, conn, receive)
    except TimeoutError:
        if not expiry.expired():
            raise
        raise ConnectionRejected(CloseCode.UNAUTHORIZED, "the token has expired") from None


async def _receive_loop(manager: ConnectionManager, conn: Connection, receive: Receive) -> None:
    while True:
        event = await receive()
        if event["type"] != "websocket.receive":
            if event.get("code") == CloseCode.MESSAGE_TOO_BIG:
                _too_big(manager, conn)
            return
        text = event.get("text")
        if text is None:
            # Some clients send JSON in binary frames: valid UTF-8 is read as text.
            try:
                text = (event.get("bytes") or b"").decode()
            except UnicodeDecodeError:
                manager.refuse(conn, NOT_UTF8)  # either dialect: an error reply, sent nowhere
                continue
        await manager.receive(conn, text)


def _too_big(manager: ConnectionManager, conn: Connection) -> None:
    # The server refused the frame (over AETHER_MAX_MESSAGE_BYTES) before we saw its bytes.
    if manager.refusals is not None and conn.dialect is not manager.v3:
        manager.refusals.frame_too_big(conn)


NOT_UTF8 = MessageRejected("invalid-json", "a binary frame must hold UTF-8 JSON text")
