"""Scenario F8: the upstream ID API fails or hangs while legacy clients connect.

A real node on the test Redis; the Aether API, outside our system, is mocked with respx (it
returns 500, then hangs, then recovers). 100 legacy connects over 20 distinct client IDs
with a cold cache in each phase.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
import websockets

from bridge.settings import Settings

from ..conftest import RunningServer, serve_app
from ..helpers import presence
from ..support.aether_api import UPSTREAM, FakeAetherApi, mock_aether_api

pytestmark = pytest.mark.chaos

LOOKUP_TIMEOUT = 1.0  # full size: 2 s, handshake refused within 3 s
FAILURE_TTL = 2.0  # IdMapper remembers a failed lookup this long (its default)
GROUP, GROUP_VISION = "7", "grp_seven01"
CLIENTS = [str(1000 + i) for i in range(20)]
CONNECTS = [CLIENTS[i % 20] for i in range(100)]


@pytest.fixture
def api() -> Iterator[FakeAetherApi]:
    with mock_aether_api() as api:
        api.mode = "error"
        api.known[("group", GROUP)] = GROUP_VISION
        yield api


async def legacy_connect(node: RunningServer, client: str) -> tuple[int | None, float]:
    """Connect as a V2 client; the close code (None: still open) and seconds until known."""
    started = time.monotonic()
    # A refused handshake completes only once the lookup has failed, then closes at once.
    async with websockets.connect(f"{node.ws}/ws/group/{GROUP}/client/{client}") as ws:
        try:
            async with asyncio.timeout(0.5):
                while True:
                    await ws.recv()  # a presence event or two for an open socket; then silence
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            return code, time.monotonic() - started
        except TimeoutError:
            return None, time.monotonic() - started


async def connect_all(node: RunningServer) -> list[tuple[int | None, float]]:
    return await asyncio.gather(*(legacy_connect(node, client) for client in CONNECTS))


async def test_f8_failing_then_hanging_upstream_then_recovery(
    api: FakeAetherApi, redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        redis_url=redis_url, id_lookup_url=UPSTREAM, id_lookup_timeout=LOOKUP_TIMEOUT
    )
    async with serve_app(settings) as node:
        # 1. The API answers 500: every handshake is refused with 1013, one call per ID.
        results = await connect_all(node)
        assert {code for code, _ in results} == {1013}
        assert api.client_calls <= len(CLIENTS)  # single-flight, then the failure is remembered
        assert await presence(node.http, GROUP_VISION) == []  # no half-open session left behind
        worst_error = max(seconds for _, seconds in results)

        # 2. The API hangs: refused with 1013 once the lookup times out, not after 10 s.
        await asyncio.sleep(FAILURE_TTL)
        api.mode, before = "hang", api.client_calls
        results = await connect_all(node)
        assert {code for code, _ in results} == {1013}
        assert api.client_calls - before <= len(CLIENTS)
        worst_hang = max(seconds for _, seconds in results)
        assert worst_hang <= LOOKUP_TIMEOUT + 1.0
        assert await presence(node.http, GROUP_VISION) == []

        # 3. The API is back: every connect succeeds, one call per distinct ID ...
        await asyncio.sleep(FAILURE_TTL)
        api.mode, before = "answer", api.client_calls
        results = await connect_all(node)
        assert {code for code, _ in results} == {None}
        assert api.client_calls - before == len(CLIENTS)
        # ... and reconnects are served from the cache: no call at all.
        before = api.client_calls
        results = await connect_all(node)
        assert {code for code, _ in results} == {None}
        assert api.client_calls == before
    print(
        f"FIGURE F8 refused with 1013 after at most {worst_error:.2f} s (API 500) and "
        f"{worst_hang:.2f} s (API hanging, lookup timeout {LOOKUP_TIMEOUT} s); "
        f"client lookups {api.client_calls} for 400 connects over {len(CLIENTS)} IDs"
    )
