"""``/openapi.json``, ``/docs`` and ``/redoc``, behind ``AETHER_API_TOKEN`` when one is set.

FastAPI's own routes for them take no dependency, so they are switched off in ``create_app``
and served here. The pages' scripts and styles come from this node, not a CDN: the
``fastapi-offline`` package ships Swagger UI's and ReDoc's builds, served under
``/docs-assets/`` (open like the pages when no token is set; a browser sends no bearer token
for a script, so with a token set the assets stay open while the pages and the document do not).
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from .api_token import require_api_token

OPENAPI_URL = "/openapi.json"
ASSETS_URL = "/docs-assets"
_ASSETS = resources.files("fastapi_offline").joinpath("static")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
ASSET_NAMES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")

router = APIRouter(dependencies=[Depends(require_api_token)], include_in_schema=False)
assets = APIRouter(include_in_schema=False)


@router.get(OPENAPI_URL)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{request.app.title} - docs",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=OPENAPI_URL,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )


@assets.get(ASSETS_URL + "/{name}")
async def asset(name: str) -> Response:
    """One of the few files the pages load; nothing else of the package is reachable."""
    if name not in ASSET_NAMES:
        raise HTTPException(404)
    body = _ASSETS.joinpath(name).read_bytes()
    suffix = name[name.rindex(".") :]
    return Response(
        body, media_type=_TYPES[suffix], headers={"cache-control": "public, max-age=86400"}
    )
