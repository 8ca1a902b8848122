"""backend_errors: every Redis failure reaches callers as one BackendUnavailable."""

from __future__ import annotations

import pytest

from v3_core.backends.redis_client import backend_errors, redis_client
from v3_core.errors import BackendUnavailable

from ...helpers import free_port


async def test_an_unreachable_redis_is_backend_unavailable_saying_what_failed() -> None:
    client = redis_client(f"redis://127.0.0.1:{free_port()}", timeout=0.5)
    try:
        with pytest.raises(BackendUnavailable, match=r"^presence add failed: ConnectionError: .+"):
            with backend_errors("presence add failed"):
                await client.ping()
    finally:
        await client.aclose()


async def test_a_reply_error_is_backend_unavailable_too(redis_url: str, prefix: str) -> None:
    client = redis_client(redis_url, timeout=0.5)
    try:
        await client.set(f"{prefix}text", "not a number")
        refused = r"^V2 store call failed: ResponseError: value is not an integer"
        with pytest.raises(BackendUnavailable, match=refused) as raised:
            with backend_errors("V2 store call failed"):
                await client.incr(f"{prefix}text")
        assert raised.value.__cause__ is not None
    finally:
        await client.delete(f"{prefix}text")
        await client.aclose()


def test_other_errors_pass_through() -> None:
    with pytest.raises(KeyError), backend_errors("ID store read failed"):
        raise KeyError("a bug, not an outage")
