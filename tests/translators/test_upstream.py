"""UpstreamIdLookup against a mocked Aether API (respx): answers, errors, deadline, retry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from translators import UpstreamIdLookup
from v3_core.errors import BackendUnavailable

BASE = "http://ids.test/api/v1"


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def lookup() -> AsyncIterator[UpstreamIdLookup]:
    client = UpstreamIdLookup(BASE + "/", timeout=0.2)
    yield client
    await client.aclose()


async def test_lookup_found(api: respx.MockRouter, lookup: UpstreamIdLookup) -> None:
    api.get("/clients/42").respond(200, json={"vision_id": "dev_x1"})
    assert await lookup.lookup("client", "42") == "dev_x1"


async def test_lookup_uses_the_namespace_in_the_path(
    api: respx.MockRouter, lookup: UpstreamIdLookup
) -> None:
    api.get("/groups/42").respond(200, json={"vision_id": "grp_x1"})
    assert await lookup.lookup("group", "42") == "grp_x1"


async def test_lookup_accepts_the_aether_column_name(
    api: respx.MockRouter, lookup: UpstreamIdLookup
) -> None:
    api.get("/clients/42").respond(200, json={"id": 42, "id_random": "dev_x1"})
    assert await lookup.lookup("client", "42") == "dev_x1"


async def test_lookup_unknown_id_is_none(api: respx.MockRouter, lookup: UpstreamIdLookup) -> None:
    api.get("/clients/42").respond(404, json={"detail": "not found"})
    assert await lookup.lookup("client", "42") is None


async def test_lookup_sends_the_token() -> None:
    with respx.mock(base_url=BASE) as api:
        route = api.get("/clients/1").respond(200, json={"vision_id": "dev_x1"})
        client = UpstreamIdLookup(BASE, token="s3cret")
        try:
            await client.lookup("client", "1")
        finally:
            await client.aclose()
    assert route.calls.last.request.headers["authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(500), "ID lookup answered HTTP 500"),
        (httpx.Response(503), "ID lookup answered HTTP 503"),
        (httpx.Response(401), "ID lookup answered HTTP 401"),
        (httpx.Response(200, text="not json"), "ID lookup answered with invalid JSON"),
        (httpx.Response(200, json={"vision_id": "123"}), "holds no valid 'vision_id'"),
        (httpx.Response(200, json=["dev_x1"]), "holds no valid 'vision_id'"),
    ],
    ids=["500", "503", "401", "not-json", "integer-answer", "not-an-object"],
)
async def test_lookup_bad_answers_are_backend_unavailable(
    api: respx.MockRouter, lookup: UpstreamIdLookup, response: httpx.Response, message: str
) -> None:
    api.get("/clients/42").mock(return_value=response)
    with pytest.raises(BackendUnavailable, match=message):
        await lookup.lookup("client", "42")


async def test_lookup_5xx_is_not_retried(api: respx.MockRouter, lookup: UpstreamIdLookup) -> None:
    """A struggling upstream sees one call per lookup (scenario F8)."""
    route = api.get("/clients/42").respond(500)
    with pytest.raises(BackendUnavailable):
        await lookup.lookup("client", "42")
    assert route.call_count == 1


async def test_lookup_httpx_timeout_is_backend_unavailable(
    api: respx.MockRouter, lookup: UpstreamIdLookup
) -> None:
    api.get("/clients/42").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(BackendUnavailable, match="ID lookup failed"):
        await lookup.lookup("client", "42")


async def test_lookup_slow_upstream_fails_within_the_timeout(
    api: respx.MockRouter, lookup: UpstreamIdLookup
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200, json={"vision_id": "dev_x1"})

    api.get("/clients/42").mock(side_effect=slow)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"timed out after 0\.2s"):
        await lookup.lookup("client", "42")
    assert time.monotonic() - started < 1.0


async def test_lookup_retries_a_refused_connection_once(
    api: respx.MockRouter, lookup: UpstreamIdLookup
) -> None:
    route = api.get("/clients/42").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json={"vision_id": "d1"})]
    )
    assert await lookup.lookup("client", "42") == "d1"
    assert route.call_count == 2


async def test_lookup_gives_up_after_the_retry(
    api: respx.MockRouter, lookup: UpstreamIdLookup
) -> None:
    route = api.get("/clients/42").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(BackendUnavailable, match="ConnectError"):
        await lookup.lookup("client", "42")
    assert route.call_count == 2


async def test_lookup_keeps_a_client_it_was_given() -> None:
    """aclose() closes only the httpx client the lookup created itself."""
    async with httpx.AsyncClient() as shared:
        lookup = UpstreamIdLookup(BASE, client=shared)
        await lookup.aclose()
        assert not shared.is_closed
