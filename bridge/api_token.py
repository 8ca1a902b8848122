"""An optional bearer token for the HTTP API (``AETHER_API_TOKEN``): publishing as the platform,
presence, and the V2 phase-out controls. Health, readiness and metrics stay open for probes
and scrapers.
"""

from __future__ import annotations

import secrets

from fastapi import Request


class ApiUnauthorized(Exception):
    """Answered 401 with ``code: unauthorized`` (see ``create_app``)."""


def require_api_token(request: Request) -> None:
    """A FastAPI dependency: pass when no token is configured or the right one is presented."""
    expected: str | None = request.app.state.settings.api_token
    if expected is None:
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise ApiUnauthorized("this endpoint needs Authorization: Bearer <AETHER_API_TOKEN>")
    if not secrets.compare_digest(presented.encode(), expected.encode()):
        raise ApiUnauthorized("the API token is not valid")
