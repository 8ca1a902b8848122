"""The OpenAPI document tells the truth: the bearer scheme where a token is checked, and every
error status an endpoint really answers, with the ``{detail, code}`` body it really has."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ..conftest import embedded_backends, serve_app

PROTECTED = {
    ("get", "/v3/groups/{group_id}/presence"),
    ("post", "/v3/messages"),
    ("get", "/v2/mode"),
    ("put", "/v2/mode"),
    ("get", "/v2/usage"),
    ("get", "/v2/dead-letters"),
    ("get", "/ops/api/cluster"),
    ("get", "/ops/api/presence/{group}"),
}

# Requests that really fail, and the documented operation each must be listed under.
AUTH = {"authorization": "Bearer s3cret"}
JSON_AUTH = {**AUTH, "content-type": "application/json"}
FAILING: list[tuple[str, str, str, dict[str, Any], int]] = [
    ("get", "/v2/mode", "/v2/mode", {}, 401),
    (
        "get",
        "/v2/dead-letters",
        "/v2/dead-letters",
        {"headers": {"authorization": "Bearer x"}},
        401,
    ),
    ("get", "/v2/dead-letters?limit=lots", "/v2/dead-letters", {"headers": AUTH}, 422),
    ("put", "/v2/mode", "/v2/mode", {"headers": AUTH, "json": {"mode": "shut"}}, 422),
    ("get", "/v3/groups/bad*id/presence", "/v3/groups/{group_id}/presence", {"headers": AUTH}, 400),
    ("post", "/v3/messages", "/v3/messages", {"headers": JSON_AUTH, "content": b"x" * 70_000}, 413),
    ("post", "/v3/messages", "/v3/messages", {"headers": AUTH, "content": b"{}"}, 415),
    (
        "post",
        "/v3/messages",
        "/v3/messages",
        {"headers": {**JSON_AUTH, "origin": "https://elsewhere.example"}, "json": {"msg": 1}},
        403,
    ),
    ("post", "/v3/messages", "/v3/messages", {"headers": AUTH, "json": {"msg": 1}}, 422),
    ("post", "/v3/messages", "/v3/messages", {}, 401),
    ("get", "/ops/api/cluster", "/ops/api/cluster", {}, 401),
    ("get", "/ops/api/presence/no*pe", "/ops/api/presence/{group}", {"headers": AUTH}, 400),
]


@pytest.fixture
async def node(make_settings):
    settings = make_settings(api_token="s3cret", allowed_origins=["https://app.example"])
    async with serve_app(settings, **embedded_backends()) as running:
        yield running


async def openapi(node) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=node.http) as http:
        document: dict[str, Any] = (await http.get("/openapi.json", headers=AUTH)).json()
    return document


async def test_the_bearer_scheme_is_declared_where_the_token_is_checked(node):
    document = await openapi(node)
    scheme = document["components"]["securitySchemes"]["apiToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            secured = operation.get("security") == [{"apiToken": []}]
            assert secured == ((method, path) in PROTECTED), (method, path)
            if secured:
                assert "401" in operation["responses"], (method, path)


async def test_every_error_documented_is_the_problem_body(node):
    document = await openapi(node)
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"detail", "code"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path not in ("/readyz",):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]


@pytest.mark.parametrize(("method", "url", "path", "options", "status"), FAILING)
async def test_real_failures_are_documented_with_their_body(
    node, method, url, path, options, status
):
    document = await openapi(node)
    async with httpx.AsyncClient(base_url=node.http) as http:
        response = await http.request(method.upper(), url, **options)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "code"} and all(isinstance(v, str) for v in body.values())
    assert str(status) in document["paths"][path][method]["responses"], (method, path, status)
