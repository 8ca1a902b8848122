"""An optional bearer token for the HTTP API (``AETHER_API_TOKEN``): publishing as the platform,
presence, and the V2 phase-out controls. Health, readiness and metrics stay open for probes
and scrapers.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .node_state import node_of


class ApiUnauthorized(Exception):
    """Answered 401 with ``code: unauthorized`` (see ``create_app``)."""


# Declares the bearer scheme in the OpenAPI document; the check itself is check_api_token's.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiToken",
    description="AETHER_API_TOKEN, when the node has one set (without one these endpoints are "
    "open: keep them off the public internet).",
)


def require_api_token(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> None:
    """A FastAPI dependency: pass when no token is configured or the right one is presented."""
    check_api_token(request)


def check_api_token(request: Request) -> None:
    """Raise ApiUnauthorized unless no token is configured or the right one is presented."""
    expected = node_of(request).settings.api_token
    if expected is None:
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise ApiUnauthorized("this endpoint needs Authorization: Bearer <AETHER_API_TOKEN>")
    if not secrets.compare_digest(presented.encode(), expected.encode()):
        raise ApiUnauthorized("the API token is not valid")
