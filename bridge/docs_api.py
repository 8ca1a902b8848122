"""``/openapi.json``, ``/docs`` and ``/redoc``, behind ``AETHER_API_TOKEN`` when one is set.

FastAPI's own routes for them take no dependency, so they are switched off in ``create_app``
and served here. The pages load the Swagger UI and ReDoc scripts from FastAPI's default CDN:
no installed package ships those assets.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from .api_token import require_api_token

OPENAPI_URL = "/openapi.json"

router = APIRouter(dependencies=[Depends(require_api_token)], include_in_schema=False)


@router.get(OPENAPI_URL)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - docs")


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - ReDoc")
