"""``/ops/``: the ops page and the JSON it polls.

The page (bridge/ops_static: plain HTML, CSS and JS, no build step, nothing from outside) is
served with a Content-Security-Policy that allows only this origin's files: no inline script,
no eval, no outside connection. Access: with ``AETHER_API_TOKEN`` set, the JSON needs it as a
bearer token (the page asks for it and keeps it in memory); without one, the page and its JSON
answer only requests from loopback (127.0.0.1, ::1): anyone who reaches the node from outside
could otherwise read its groups and clients.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from v3_core import BackendUnavailable, ConnectionRejected, is_legacy_int, is_vision_id

from .api_token import bearer, check_api_token
from .node_state import node_of
from .ops_state import cluster_json
from .problems import problem_responses

STATIC = Path(__file__).with_name("ops_static")
FILES = {"index.html": "text/html", "ops.css": "text/css", "ops.js": "text/javascript"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class OpsForbidden(Exception):
    """Answered 403 with ``code: forbidden`` (see ``create_app``)."""


def from_loopback(request: Request) -> None:
    """Without an API token, only a request from this machine may see the ops page."""
    if node_of(request).settings.api_token is not None:
        return
    host = request.client.host if request.client is not None else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise OpsForbidden("the ops page answers only from loopback unless AETHER_API_TOKEN is set")


def ops_access(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> None:
    """The JSON: the API token when one is set, else loopback only."""
    from_loopback(request)
    check_api_token(request)


pages = APIRouter(prefix="/ops", dependencies=[Depends(from_loopback)], include_in_schema=False)
router = APIRouter(
    prefix="/ops/api",
    tags=["ops"],
    dependencies=[Depends(ops_access)],
    responses=problem_responses(401, 403),
)


@pages.get("/")
async def index() -> FileResponse:
    return _file("index.html")


@pages.get("/{name}")
async def static_file(name: str) -> Response:
    if name not in FILES:
        return JSONResponse({"detail": "no such file", "code": "not-found"}, status_code=404)
    return _file(name)


def _file(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type=FILES[name], headers=SECURITY_HEADERS)


@router.get("/cluster")
async def cluster(request: Request) -> JSONResponse:
    """Nodes, traffic over the last minutes, and groups with their V2 mode."""
    node = node_of(request)
    warning = None
    try:
        nodes = await node.heartbeat.nodes()
    except BackendUnavailable as exc:
        nodes, warning = [node.heartbeat.info()], f"other nodes unknown: {exc}"
    body = cluster_json(nodes, node.v2_control, node.settings.node_id, node.id_mapper.cached_legacy)
    if warning is not None:
        body["warning"] = warning
    return JSONResponse(body)


@router.get("/presence/{group}", responses=problem_responses(400, 503))
async def presence(group: str, request: Request) -> JSONResponse:
    """Clients online in a group, given as a Vision ID or a legacy integer."""
    if not (is_vision_id(group) or is_legacy_int(group)):
        return _problem(400, "invalid-id", f"{group[:40]!r} is not a Vision ID or an integer")
    try:
        node = node_of(request)
        resolved = await node.id_mapper.resolve("group", group)
        clients = await node.manager.members(resolved.vision_id)
    except ConnectionRejected as exc:
        return _problem(503 if exc.close_code == 1013 else 400, "invalid-id", exc.reason)
    except BackendUnavailable as exc:
        return _problem(503, "backend-unavailable", str(exc))
    body = {"group_id": resolved.vision_id, "legacy_id": resolved.legacy, "clients": clients}
    return JSONResponse(body)


def _problem(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status)
