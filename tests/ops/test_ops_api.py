"""/ops/ on real nodes: the page's files and CSP, who may read, and the JSON it polls."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from bridge.app import create_app
from bridge.node_registry import RedisNodeStore
from bridge.settings import Settings

from ..conftest import embedded_backends, serve_app
from ..helpers import MS, connect, eventually, free_port, send_json, v3


async def test_the_page_and_its_files_come_with_a_strict_csp(server):
    async with httpx.AsyncClient(base_url=server.http) as http:
        for path, kind in (
            ("/ops/", "text/html"),
            ("/ops/ops.js", "text/javascript"),
            ("/ops/ops.css", "text/css"),
        ):
            response = await http.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith(kind)
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
            assert response.headers["x-content-type-options"] == "nosniff"
        page = (await http.get("/ops/")).text
        assert (await http.get("/ops/app.py")).status_code == 404
        assert (await http.get("/ops/..%2Fapp.py")).status_code == 404
    # No inline script or style, nothing from another origin.
    assert "<script>" not in page and "style=" not in page and "http" not in page.lower()


async def test_with_a_token_the_json_needs_it_and_the_page_does_not(make_settings):
    async with serve_app(make_settings(api_token="s3cret"), **embedded_backends()) as node:
        async with httpx.AsyncClient(base_url=node.http) as http:
            assert (await http.get("/ops/")).status_code == 200  # no data in it
            for path in ("/ops/api/cluster", "/ops/api/presence/42"):
                refused = await http.get(path)
                assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
            allowed = await http.get("/ops/api/cluster", headers={"authorization": "Bearer s3cret"})
            assert allowed.status_code == 200


@pytest.mark.parametrize(("client", "status"), [("203.0.113.9", 403), ("::1", 200)])
async def test_without_a_token_only_loopback_may_read(client, status):
    # The client address is the one thing a real socket here cannot vary: ASGI in process.
    app = create_app(Settings(), **embedded_backends())
    transport = httpx.ASGITransport(app=app, client=(client, 5000))
    assert isinstance(app.http_app, Starlette)
    async with (
        app.http_app.router.lifespan_context(app.http_app),  # ASGITransport runs no lifespan
        httpx.AsyncClient(transport=transport, base_url="http://node") as http,
    ):
        response = await http.get("/ops/")
    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "forbidden"


async def test_cluster_json_lists_both_nodes_groups_and_modes(two_nodes):
    a, b = two_nodes
    async with (
        await connect(b.ws, "/ws/group/42/client/7") as legacy,
        await v3(a.ws, "grp_v3group00000000000", "dev_1") as modern,
        httpx.AsyncClient(base_url=a.http) as http,
    ):
        await send_json(modern, {"msg_type": "msg", "target": "echo", "msg": "hi"})
        await http.put("/v2/mode", json={"mode": "warn", "group_id": "42"})

        async def both_seen() -> bool:
            body = (await http.get("/ops/api/cluster")).json()
            return {n["node_id"]: n["legacy_connections"] for n in body["nodes"]} == {
                "nodeA": 0,
                "nodeB": 1,
            }

        await eventually(both_seen, timeout=3000 * MS)
        body = (await http.get("/ops/api/cluster")).json()
        assert body["self"] == "nodeA" and body["global_mode"] == "open"
        nodes = {n["node_id"]: n for n in body["nodes"]}
        assert nodes["nodeA"]["v3_connections"] == 1 and nodes["nodeA"]["ready"] is True
        assert nodes["nodeB"]["version"] == nodes["nodeA"]["version"]
        groups = {g["legacy_id"] or g["group_id"]: g for g in body["groups"]}
        assert groups["42"]["v2_clients"] == 1 and groups["42"]["connections"] == 1
        assert (groups["42"]["mode"], groups["42"]["own_mode"]) == ("warn", True)
        assert groups["grp_v3group00000000000"]["v2_clients"] == 0
        presence = (await http.get("/ops/api/presence/42")).json()
        assert presence["legacy_id"] == "42" and len(presence["clients"]) == 1
        bad = await http.get("/ops/api/presence/not*valid")
        assert bad.status_code == 400 and bad.json()["code"] == "invalid-id"
        await legacy.close()


async def test_a_node_that_stops_leaves_the_cluster_view(make_settings, backend_url):
    shared = embedded_backends() if backend_url is None else {}
    async with serve_app(make_settings(redis_url=backend_url, node_id="nodeA"), **shared) as a:
        async with serve_app(make_settings(redis_url=backend_url, node_id="nodeB"), **shared):

            async def listed() -> list[str]:
                async with httpx.AsyncClient(base_url=a.http) as http:
                    body = (await http.get("/ops/api/cluster")).json()
                return [n["node_id"] for n in body["nodes"]]

            async def both() -> bool:
                return await listed() == ["nodeA", "nodeB"]

            await eventually(both, timeout=3000 * MS)
        assert await listed() == ["nodeA"]  # at once, not after three missed heartbeats


async def test_without_the_registry_the_page_still_shows_this_node(make_settings, prefix):
    dead = RedisNodeStore(f"redis://127.0.0.1:{free_port()}", prefix=prefix, timeout=0.3)
    shared = {**embedded_backends(), "node_store": dead}
    async with (
        serve_app(make_settings(node_id="nodeA"), **shared) as node,
        await connect(node.ws, "/ws/group/42/client/7"),
    ):
        async with httpx.AsyncClient(base_url=node.http) as http:
            body = (await http.get("/ops/api/cluster")).json()
        assert [n["node_id"] for n in body["nodes"]] == ["nodeA"]
        assert body["nodes"][0]["legacy_connections"] == 1
        assert body["warning"].startswith("other nodes unknown")


async def test_a_groups_legacy_id_stays_after_its_legacy_clients_leave(server):
    async with httpx.AsyncClient(base_url=server.http) as http:
        async with await connect(server.ws, "/ws/group/42/client/7"):
            await http.put("/v2/mode", json={"mode": "warn", "group_id": "42"})
        body = (await http.get("/ops/api/cluster")).json()
    [group] = body["groups"]
    assert (group["legacy_id"], group["v2_clients"], group["mode"]) == ("42", 0, "warn")
