"""The Aether HTTP API's ID lookups, mocked in this process with respx.

The API is outside our system, so a node under test (served in the test's own process) asks a
fake: ``GET {UPSTREAM}/{groups,clients}/{legacy}`` answers ``{"vision_id": ...}``. Requests to
127.0.0.1 pass through, so the test still talks HTTP to its node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Literal

import httpx
import respx

UPSTREAM = "http://aether-api.test/api/v1"


def vision(namespace: str, legacy: str) -> str:
    """The Vision ID the fake answers for a legacy integer it was not told about."""
    return f"{'grp' if namespace == 'group' else 'cli'}_{legacy}x"


class FakeAetherApi:
    """Counts the lookups per namespace; ``known`` overrides answers (``None``: 404).

    ``mode`` fails (500) or hangs the *client* lookups; groups always resolve.
    """

    def __init__(self, router: respx.MockRouter) -> None:
        self.mode: Literal["answer", "error", "hang"] = "answer"
        self.known: dict[tuple[str, str], str | None] = {}
        self.calls: Counter[str] = Counter()
        router.get(url__regex=rf"{UPSTREAM}/(?P<namespace>group|client)s/(?P<legacy>\d+)").mock(
            side_effect=self._lookup
        )
        router.route(host="127.0.0.1").pass_through()

    @property
    def client_calls(self) -> int:
        return self.calls["client"]

    async def _lookup(self, request: httpx.Request, namespace: str, legacy: str) -> httpx.Response:
        self.calls[namespace] += 1
        if namespace == "client" and self.mode == "error":
            return httpx.Response(500)
        if namespace == "client" and self.mode == "hang":
            await asyncio.sleep(10)  # past any lookup deadline
        answer = self.known.get((namespace, legacy), vision(namespace, legacy))
        if answer is None:
            return httpx.Response(404)
        return httpx.Response(200, json={"vision_id": answer})


@contextlib.contextmanager
def mock_aether_api() -> Iterator[FakeAetherApi]:
    """The fake for the block's duration (respx patches httpx in this process)."""
    with respx.mock(assert_all_called=False) as router:
        yield FakeAetherApi(router)
