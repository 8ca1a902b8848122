"""The WebSocket endpoints: check the path, register, accept, then loop over frames.

V3 and legacy sockets share `serve_socket`; they differ only in how path IDs are resolved
and in the Dialect that parses and renders their frames.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketState

from translators import IdMapper
from v3_core import (
    BackendUnavailable,
    CloseCode,
    ConnectionManager,
    ConnectionRejected,
    Dialect,
    is_vision_id,
)

from .sender import WebSocketSender

log = logging.getLogger("aether.sockets")
router = APIRouter()

MIGRATION_HINT = "see docs/migration-guide.md"


def origin_allowed(websocket: WebSocket, allowed: list[str]) -> bool:
    """An empty allowlist admits any origin; no Origin header means a non-browser client."""
    if not allowed:
        return True
    origin = websocket.headers.get("origin")
    return origin is None or origin in allowed


def bad_v3_id_reason(group_id: str, client_id: str) -> str | None:
    for kind, value in (("group_id", group_id), ("client_id", client_id)):
        if not is_vision_id(value):
            return f"{kind} {value[:40]!r} is not a Vision ID; {MIGRATION_HINT}"
    return None


@router.websocket("/v3/ws/group/{group_id}/client/{client_id}")
async def v3_socket(websocket: WebSocket, group_id: str, client_id: str) -> None:
    manager: ConnectionManager = websocket.app.state.manager
    if not origin_allowed(websocket, websocket.app.state.settings.allowed_origins):
        await websocket.close(CloseCode.POLICY_VIOLATION)  # before accept: HTTP 403
        return
    reason = bad_v3_id_reason(group_id, client_id)
    if reason is not None:
        await reject(websocket, ConnectionRejected(CloseCode.POLICY_VIOLATION, reason))
        return
    group_legacy, client_legacy = await legacy_ids(
        websocket.app.state.id_mapper, group_id, client_id
    )
    await serve_socket(
        websocket,
        manager,
        group_id,
        client_id,
        dialect=manager.v3,
        group_legacy=group_legacy,
        client_legacy=client_legacy,
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


@router.websocket("/ws/group/{group_id}/client/{client_id}")
@router.websocket("/ws_redis/group/{group_id}/client/{client_id}")
async def legacy_socket(websocket: WebSocket, group_id: str, client_id: str) -> None:
    """Legacy V2 clients: IDs may be database integers; frames are translated both ways."""
    state = websocket.app.state
    if not origin_allowed(websocket, state.settings.allowed_origins):
        await websocket.close(CloseCode.POLICY_VIOLATION)
        return
    mapper: IdMapper = state.id_mapper
    try:
        # Resolved before registering, so a failed lookup leaves no presence behind.
        group = await mapper.resolve("group", group_id)
        client = await mapper.resolve("client", client_id)
    except ConnectionRejected as rejection:
        await reject(websocket, rejection)
        return
    await serve_socket(
        websocket,
        state.manager,
        group.vision_id,
        client.vision_id,
        dialect=state.v2,
        group_legacy=group.legacy,
        client_legacy=client.legacy,
    )


async def reject(websocket: WebSocket, rejection: ConnectionRejected) -> None:
    """Accept, then close with the code and reason: browsers only show reasons after accept."""
    if websocket.client_state == WebSocketState.CONNECTING:
        await websocket.accept()
    await websocket.close(rejection.close_code, rejection.reason)


async def serve_socket(
    websocket: WebSocket,
    manager: ConnectionManager,
    group_id: str,
    client_id: str,
    *,
    dialect: Dialect,
    group_legacy: str = "",
    client_legacy: str = "",
) -> None:
    sender = WebSocketSender(websocket)
    try:
        async with manager.connect(
            group_id,
            client_id,
            sender,
            dialect=dialect,
            group_legacy=group_legacy,
            client_legacy=client_legacy,
        ) as conn:
            await websocket.accept()
            conn.start_writer()
            receive = websocket.receive
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    break
                text = event.get("text")
                if text is None:
                    text = _binary_as_text(event.get("bytes") or b"")
                await manager.receive(conn, text)
    except ConnectionRejected as rejection:
        await reject(websocket, rejection)


def _binary_as_text(data: bytes) -> str:
    # Some clients send JSON in binary frames; treat valid UTF-8 as text, the rest as bad JSON.
    try:
        return data.decode()
    except UnicodeDecodeError:
        return "\x00binary frame"
