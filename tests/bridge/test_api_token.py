"""AETHER_API_TOKEN: publishing, presence and the V2 controls need the bearer token; health,
readiness and metrics stay open. Without the setting nothing changes (test_http_api.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from bridge.settings import Settings

from ..conftest import RunningServer, serve_app
from ..helpers import recv_msg, v3

TOKEN = "api-token-for-the-tests"
MESSAGE = {"msg_type": "msg", "target": "group", "group_id": "g1", "msg": "from the platform"}


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    async with serve_app(make_settings(api_token=TOKEN)) as running:
        yield running


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "this endpoint needs Authorization: Bearer <AETHER_API_TOKEN>"),
        ({"Authorization": f"Basic {TOKEN}"}, "this endpoint needs Authorization: Bearer"),
        ({"Authorization": "Bearer wrong"}, "the API token is not valid"),
    ],
)
async def test_every_protected_endpoint_refuses_without_the_token(
    server: RunningServer, headers: dict[str, str], detail: str
) -> None:
    async with httpx.AsyncClient(base_url=server.http, headers=headers) as http:
        answers = [
            await http.post("/v3/messages", json=MESSAGE),
            await http.get("/v3/groups/g1/presence"),
            await http.get("/v2/mode"),
            await http.put("/v2/mode", json={"mode": "closed"}),
            await http.get("/v2/usage"),
        ]
        for response in answers:
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["code"] == "unauthorized"
            assert response.json()["detail"].startswith(detail)
        assert (await http.get("/v2/mode")).status_code == 401
    async with httpx.AsyncClient(base_url=server.http) as http:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await http.get(path)).status_code == 200
        assert (await http.get("/v2/mode", headers={"Authorization": f"Bearer {TOKEN}"})).json()[
            "global"
        ] == "open"  # the refused PUT changed nothing


async def test_the_token_opens_them(server: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with await v3(server.ws, "g1", "alice") as alice:
        async with httpx.AsyncClient(base_url=server.http, headers=headers) as http:
            assert (await http.post("/v3/messages", json=MESSAGE)).status_code == 202
            assert (await recv_msg(alice))["msg"] == "from the platform"
            presence = await http.get("/v3/groups/g1/presence")
            assert presence.json()["clients"] == ["alice"]
            assert (await http.get("/v2/usage")).status_code == 200
