"""The error body every HTTP endpoint answers with, and its OpenAPI description.

``{"detail": "<for a human>", "code": "<stable, for a program>"}``; routes list the statuses
they really answer (``problem_responses``), so the OpenAPI document tells the truth.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel


class Problem(BaseModel):
    """An error answer."""

    detail: str
    code: str


_WHY = {
    400: "A path ID is not a Vision ID (or legacy integer where one is accepted): `invalid-id`.",
    401: "AETHER_API_TOKEN is set and the request has no valid `Authorization: Bearer` token: "
    "`unauthorized`.",
    403: "No AETHER_API_TOKEN is set and the request is not from loopback: `forbidden`.",
    413: "The body is over AETHER_MAX_MESSAGE_BYTES: `message-too-big`.",
    415: "The body is not sent as `Content-Type: application/json`: `unsupported-media-type`.",
    422: "The request is not valid: `invalid-request` (query or path), `invalid-body`, or the "
    "message's own error code (`invalid-field`, `invalid-target`, ...).",
    503: "Redis (or the upstream ID API) did not answer: `backend-unavailable`, or "
    "`publish-failed` for a message; retry with backoff.",
}


def problem_responses(
    *statuses: int, why: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with the Problem body and why it happens
    (``why`` for a route whose reason differs from the usual one)."""
    reasons = {**_WHY, **(why or {})}
    return {status: {"model": Problem, "description": reasons[status]} for status in statuses}


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own validation errors (a bad query parameter) in the Problem shape."""
    assert isinstance(exc, RequestValidationError)
    reasons = "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return JSONResponse({"detail": reasons, "code": "invalid-request"}, status_code=422)


def install_openapi(app: FastAPI) -> None:
    """FastAPI documents its own 422 body (HTTPValidationError) on every route that takes a
    parameter; ``invalid_request`` answers those with a Problem, so the document says so."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            ours = {"$ref": "#/components/schemas/Problem"}
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    invalid = operation.get("responses", {}).get("422")
                    if invalid is not None and "HTTPValidationError" in str(invalid):
                        invalid["content"] = {"application/json": {"schema": ours}}
                        invalid["description"] = _WHY[422]
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.setdefault("Problem", Problem.model_json_schema())
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
