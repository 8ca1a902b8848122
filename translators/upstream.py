"""The upstream Aether API that knows each database integer's Vision ID (AETHER_ID_LOOKUP_URL).

    GET {base_url}/groups/{legacy_id}    GET {base_url}/clients/{legacy_id}
    200 {"vision_id": "..."}  (or {"id_random": "..."}, the Aether column name)
    404 the integer is unknown; anything else means the upstream cannot answer now.

httpx errors are mapped here, at the boundary, to BackendUnavailable.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import httpx

from v3_core.errors import BackendUnavailable
from v3_core.ids import is_vision_id

from .id_stores import Namespace

log = logging.getLogger("aether.id_lookup")

_ANSWER_KEYS = ("vision_id", "id_random")


class IdLookup(Protocol):
    """An authority for the mapping: the Vision ID, or None for an unknown integer.

    Raises BackendUnavailable when it cannot answer (timeout, 5xx, connection refused).
    """

    async def lookup(self, namespace: Namespace, legacy: str) -> str | None: ...
    async def aclose(self) -> None: ...


class UpstreamIdLookup:
    """IdLookup over HTTP. ``timeout`` bounds a whole lookup, retry included.

    Only a refused connection is retried (once by default): the request never reached the
    server, so a retry costs it nothing. A timeout or 5xx is not retried, so a struggling
    upstream sees at most one call per lookup and the caller learns within ``timeout``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 2.0,
        retries: int = 1,
        token: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._retries = retries
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def lookup(self, namespace: Namespace, legacy: str) -> str | None:
        url = f"{self._base_url}/{namespace}s/{legacy}"
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._get(url)
        except TimeoutError as exc:
            raise BackendUnavailable(f"ID lookup timed out after {self._timeout}s") from exc
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"ID lookup failed: {exc!r}") from exc
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        if response.status_code != httpx.codes.OK:
            raise BackendUnavailable(f"ID lookup answered HTTP {response.status_code}")
        return _vision_id(response)

    async def _get(self, url: str) -> httpx.Response:
        retries = self._retries
        while True:
            try:
                return await self._client.get(url, headers=self._headers)
            except httpx.ConnectError:
                if retries <= 0:
                    raise
                retries -= 1
                log.info("ID lookup could not connect; retrying")

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _vision_id(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError as exc:
        raise BackendUnavailable("ID lookup answered with invalid JSON") from exc
    if isinstance(body, dict):
        for key in _ANSWER_KEYS:
            value = body.get(key)
            if isinstance(value, str) and is_vision_id(value):
                return value
    raise BackendUnavailable("ID lookup answer holds no valid 'vision_id'")
