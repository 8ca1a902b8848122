"""The HTTP side: health, readiness, metrics, presence, and server-side publish."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import ClientDisconnect

from v3_core import BackendUnavailable, MessageRejected, MessageV3, is_vision_id
from v3_core.messages import parse_server_message

from .api_token import require_api_token
from .metrics import render
from .node_state import node_of
from .problems import problem_responses
from .sockets import origin_allowed

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "Draining, or the broker (Redis) does not answer."}},
)
async def readyz(request: Request) -> JSONResponse:
    manager = node_of(request).manager
    if manager.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    try:
        await manager.ping()
    except BackendUnavailable as exc:
        return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(request: Request) -> Response:
    return Response(render(node_of(request).metrics), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v3/groups/{group_id}/presence",
    dependencies=[Depends(require_api_token)],
    responses=problem_responses(400, 401, 503),
)
async def presence(group_id: str, request: Request) -> JSONResponse:
    if not is_vision_id(group_id):
        return _problem(400, "invalid-id", f"{group_id[:40]!r} is not a Vision ID")
    try:
        clients = await node_of(request).manager.members(group_id)
    except BackendUnavailable as exc:
        return _problem(503, "backend-unavailable", str(exc))
    return JSONResponse({"group_id": group_id, "clients": clients})


@router.post(
    "/v3/messages",
    status_code=202,
    dependencies=[Depends(require_api_token)],
    responses=problem_responses(
        400,
        401,
        403,
        413,
        415,
        422,
        503,
        why={
            400: "The body did not arrive (the client left, or missed the body deadline): "
            "`incomplete-body`.",
            403: "AETHER_ALLOWED_ORIGINS is set and the request's Origin is not in it: "
            "`origin-not-allowed`.",
        },
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": MessageV3.model_json_schema()}},
        }
    },
)
async def post_message(request: Request) -> JSONResponse:
    """Publish as the platform: same model and routing as a socket message.

    Refused before the body is read: a type other than JSON (a cross-site form or a
    ``text/plain`` fetch needs no CORS preflight), a foreign Origin, a declared size too big.
    """
    node = node_of(request)
    settings = node.settings
    if not _is_json(request.headers.get("content-type", "")):
        return _problem(
            415, "unsupported-media-type", "send the message as Content-Type: application/json"
        )
    if not origin_allowed(request.scope, settings.allowed_origins):
        return _problem(403, "origin-not-allowed", "this Origin is not in AETHER_ALLOWED_ORIGINS")
    limit = settings.max_message_bytes
    try:
        body = await read_body(request, limit)
    except ClientDisconnect:  # gone, or cut by the body deadline (bridge/http_guard.py)
        return _problem(400, "incomplete-body", "the body did not arrive")
    if body is None:
        # Connection: close, so uvicorn stops reading what the client still sends.
        return _problem(
            413, "message-too-big", f"the body is over {limit} bytes", {"connection": "close"}
        )
    try:
        message = parse_server_message(body)
        await node.manager.publish(message)
        node.manager.count_traffic("http", message.target)
    except MessageRejected as rejected:
        status = 503 if rejected.code == "publish-failed" else 422
        return _problem(status, rejected.code, rejected.detail)
    return JSONResponse({"status": "accepted"}, status_code=202)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to be over ``limit`` bytes: from its
    Content-Length before reading anything, else counted as it streams in (chunked)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _is_json(content_type: str) -> bool:
    return content_type.partition(";")[0].strip().lower() == "application/json"


def _problem(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail, "code": code}
    return JSONResponse(body, status_code=status, headers=headers)
