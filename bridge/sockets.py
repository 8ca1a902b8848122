"""The WebSocket endpoints, in raw ASGI: check the path, register, accept, loop over frames.

A socket lives for hours, and every frame of the call stack under it lives as long: raw ASGI
keeps that stack a few frames deep, where FastAPI's middleware and routing would hold a dozen
coroutines per connection. HTTP requests still go to the FastAPI app.
V3 and legacy sockets share `serve_socket`. What differs (how path IDs are resolved, the Dialect
that parses and renders their frames, the V2 phase-out's say) is settled first, in a `SocketPlan`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.applications import Starlette

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
from .node_state import NodeState, started_node
from .sender import AsgiSender
from .v2.control import V2Control

log = logging.getLogger("aether.sockets")

MIGRATION_HINT = "see docs/migration-guide.md"
SOCKET_PATH = re.compile(r"^/(v3/ws|ws|ws_redis)/group/([^/]+)/client/([^/]+)$")


class SocketRouter:
    """The node's ASGI entry point: our WebSocket paths here, everything else to ``http_app``."""

    def __init__(self, http_app: Starlette) -> None:
        self.http_app: ASGIApp = http_app
        self._state = http_app.state  # where the lifespan puts the NodeState

    @property
    def node(self) -> NodeState | None:
        """The running node, or None before the lifespan started (or if it never did)."""
        return started_node(self._state)

    async def drain(self) -> None:
        """Before the server stops: not ready for ``drain_seconds``, so a load balancer stops
        sending new clients while the node still serves (and accepts) them."""
        node = self.node
        if node is None or not node.settings.drain_seconds:
            return
        node.manager.draining = True
        seconds = node.settings.drain_seconds
        log.info("draining: not ready for %.1fs before closing its sockets", seconds)
        await asyncio.sleep(seconds)

    async def close_sockets(self) -> None:
        """Every socket closed with 1012, paced over ``close_spread_seconds``; legacy
        clients' positions are stored before their close (they recover elsewhere)."""
        node = self.node
        if node is None:  # the lifespan never started
            return
        spread = node.settings.close_spread_seconds
        await node.manager.close_all(CloseCode.SERVICE_RESTART, "server restarting", spread=spread)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.http_app(scope, receive, send)
        elif match := SOCKET_PATH.match(scope["path"]):
            node = self.node
            assert node is not None, "a server sends no socket before the lifespan started"
            kind, group_id, client_id = match.groups()
            await handle_socket(node, scope, receive, send, kind, group_id, client_id)
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


@dataclass(slots=True)
class SocketPlan:
    """What ``serve_socket`` needs to know about one socket, settled before it is accepted.

    Who it is (the Vision IDs, and its tags: the database integers legacy clients see), how it
    speaks, and how its handshake went. One per socket, kept while it is open.
    """

    group_id: str
    client_id: str
    dialect: Dialect
    tags: Tags = field(default_factory=lambda: NO_TAGS)  # translators.legacy_tags
    subprotocol: str | None = None  # the one the client offered, accepted back
    started: float = 0.0  # perf_counter() at the connect event, for the handshake histogram
    expires_at: float | None = None  # unix seconds: its token expires, the socket closes (4501)
    recover: dict[StreamName, Position] | None = None  # what a V3 client last saw
    greeting: str | None = None  # a legacy client's first frame (the deprecation notice)
    v2_control: V2Control | None = None  # a legacy socket is counted while it is open


async def handle_socket(
    node: NodeState,
    scope: Scope,
    receive: Receive,
    send: Send,
    kind: str,
    group_id: str,
    client_id: str,
) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    started = time.perf_counter()
    credentials = take_credentials(scope)  # out of the query string before uvicorn logs it
    sender = AsgiSender(receive, send)
    if not origin_allowed(scope, node.settings.allowed_origins):
        await sender.refuse()  # HTTP 403
        return
    try:
        expires_at = None
        if node.token_policy is not None:
            expires_at = authenticate(node.token_policy, credentials.token, group_id, client_id)
        if kind == "v3/ws":
            plan = await v3_plan(node, group_id, client_id)
            plan.recover = recover_positions(scope)
        else:
            plan = await legacy_plan(node, group_id, client_id)
    except ConnectionRejected as rejection:
        await sender.reject(
            rejection.close_code, rejection.reason, subprotocol=credentials.subprotocol
        )
        return
    # The bearer subprotocol a client offered is accepted back, with or without a token
    # policy: a client whose offer is not answered must fail the handshake (RFC 6455).
    plan.subprotocol = credentials.subprotocol
    plan.started = started
    plan.expires_at = expires_at
    await serve_socket(node.manager, receive, sender, plan)


def origin_allowed(scope: Scope, allowed: list[str]) -> bool:
    """An empty allowlist admits any origin; no Origin header means a non-browser client."""
    if not allowed:
        return True
    origins = [value for name, value in scope["headers"] if name == b"origin"]
    return not origins or origins[0].decode("latin-1") in allowed


async def v3_plan(node: NodeState, group_id: str, client_id: str) -> SocketPlan:
    for name, value in (("group_id", group_id), ("client_id", client_id)):
        if not is_vision_id(value):
            raise ConnectionRejected(
                CloseCode.POLICY_VIOLATION,
                f"{name} {value[:40]!r} is not a Vision ID; {MIGRATION_HINT}",
            )
    group_legacy, client_legacy = await legacy_ids(node.id_mapper, group_id, client_id)
    tags = legacy_tags(group=group_legacy, client=client_legacy)
    return SocketPlan(group_id, client_id, node.manager.v3, tags)


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


async def legacy_plan(node: NodeState, group_id: str, client_id: str) -> SocketPlan:
    """Legacy V2 clients: IDs may be database integers; frames are translated both ways."""
    # Resolved before registering, so a failed lookup leaves no presence behind.
    group = await node.id_mapper.resolve("group", group_id)
    client = await node.id_mapper.resolve("client", client_id)
    # V2 phase-out (bridge/v2/control.py): refuse, or greet with a deprecation notice.
    greeting = node.v2_control.admit(group.vision_id, client.vision_id)
    return SocketPlan(
        group.vision_id,
        client.vision_id,
        node.v2_dialect,
        legacy_tags(group=group.legacy, client=client.legacy),
        greeting=greeting,
        v2_control=node.v2_control,
    )


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


async def serve_socket(
    manager: ConnectionManager, receive: Receive, sender: AsgiSender, plan: SocketPlan
) -> None:
    """Register, accept, send the greeting if any, then loop over frames (counted as V2 use
    for a legacy socket). Legacy clients resume from positions their last connection left
    (the manager finds them); V3 clients from ``plan.recover``.
    """
    try:
        async with manager.connect(
            plan.group_id,
            plan.client_id,
            sender,
            dialect=plan.dialect,
            tags=plan.tags,
            recover=plan.recover,
        ) as conn:
            await sender.accept(plan.subprotocol)
            manager.latency.handshake.observe(time.perf_counter() - plan.started)
            if plan.greeting is not None:
                # Before the writer starts, so it is the first frame, ahead of queued events.
                await sender.send_text(plan.greeting)
            conn.start_writer()
            try:
                await manager.recover(conn)  # what it missed, before any live message
            except OSError:  # the client left during its replay (uvicorn: ClientDisconnected)
                return
            with _counted(plan, conn):
                try:
                    await _receive_until(plan.expires_at, manager, conn, receive)
                except ConnectionRejected as ended:  # rate limit (4529), token expiry (4501)
                    await sender.close(ended.close_code, ended.reason)
    except ConnectionRejected as rejection:
        await sender.reject(rejection.close_code, rejection.reason, subprotocol=plan.subprotocol)


def _counted(plan: SocketPlan, conn: Connection) -> AbstractContextManager[None]:
    """A legacy socket's V2 use, counted while it is open (``greeted``: it got the notice)."""
    if plan.v2_control is None:
        return contextlib.nullcontext()
    return plan.v2_control.track(conn, greeted=plan.greeting is not None)


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
