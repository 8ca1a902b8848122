"""The V2 phase-out over HTTP: read and change the V2 mode, and see who still uses V2.

With ``AETHER_API_TOKEN`` set it needs that bearer token, like publishing and presence;
without it anyone who reaches it can close V2: keep it off the public internet either way.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from bridge.api_token import require_api_token
from bridge.dead_letters import dead_letters_json
from bridge.node_state import node_of
from bridge.problems import problem_responses
from translators import IdMapper
from v3_core import (
    BackendUnavailable,
    CloseCode,
    ConnectionRejected,
    is_legacy_int,
    is_vision_id,
)

from .policy import Mode
from .usage import usage_json

router = APIRouter(
    prefix="/v2",
    tags=["V2 phase-out"],
    dependencies=[Depends(require_api_token)],
    responses=problem_responses(401),
)


class ModeChange(BaseModel):
    """``PUT /v2/mode``: ``mode`` null removes the entry (a group falls back to the global
    mode, the global mode to ``open``); without ``group_id`` it sets the global mode."""

    model_config = ConfigDict(extra="forbid", strict=True)

    mode: Mode | None
    group_id: str | int | None = None


@router.get("/mode")
async def get_mode(request: Request) -> JSONResponse:
    """The policy this node applies (refreshed from the store every second or so)."""
    return JSONResponse(node_of(request).v2_control.policy.as_json())


@router.put(
    "/mode",
    responses=problem_responses(422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ModeChange.model_json_schema()}},
        }
    },
)
async def put_mode(request: Request) -> JSONResponse:
    try:
        change = ModeChange.model_validate_json(await request.body())
    except ValidationError as exc:
        return _problem(422, "invalid-body", _reasons(exc))
    try:
        node = node_of(request)
        group_id = await _group_vision_id(node.id_mapper, change.group_id)
        policy = await node.v2_control.set_mode(group_id, change.mode)
    except ConnectionRejected as exc:
        status, code = (
            (422, "invalid-id")
            if exc.close_code == CloseCode.POLICY_VIOLATION
            else (503, "backend-unavailable")
        )
        return _problem(status, code, exc.reason)
    except BackendUnavailable as exc:
        return _problem(503, "backend-unavailable", str(exc))
    return JSONResponse(policy.as_json())


@router.get("/usage", responses=problem_responses(503))
async def get_usage(request: Request) -> JSONResponse:
    """Legacy groups and clients seen by any node, with message counts and last seen."""
    try:
        groups = await node_of(request).v2_control.usage()
    except BackendUnavailable as exc:
        return _problem(503, "backend-unavailable", str(exc))
    return JSONResponse(usage_json(groups))


@router.get("/dead-letters", responses=problem_responses(422, 503))
async def get_dead_letters(request: Request, limit: int = 100) -> JSONResponse:
    """Samples of what the bridge refused to pass on (every node), newest first, with the
    counts per code; tokens and long payloads are cut."""
    try:
        letters, counts = await node_of(request).dead_letters.recent(max(1, min(limit, 1000)))
    except BackendUnavailable as exc:
        return _problem(503, "backend-unavailable", str(exc))
    return JSONResponse(dead_letters_json(letters, counts))


async def _group_vision_id(mapper: IdMapper, raw: str | int | None) -> str | None:
    """A group given as a Vision ID or a legacy integer, as the Vision ID the policy keys on."""
    if raw is None:
        return None
    text = str(raw)
    if not (is_vision_id(text) or is_legacy_int(text)):
        raise ConnectionRejected(
            CloseCode.POLICY_VIOLATION, f"group_id {text[:40]!r} is not a Vision ID or an integer"
        )
    return (await mapper.resolve("group", text)).vision_id


def _reasons(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )


def _problem(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status)
