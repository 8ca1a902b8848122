"""Chaos-tier fixtures: a Redis each test may kill, and nodes tuned for short fault windows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ..conftest import NodeProcess, wait_ready
from ..support.redis_server import RedisServer

# The full-size scenarios' figures (docs/reliability.md section 6), scaled down so the whole
# tier runs in a few minutes.
TTL = 3.0  # AETHER_PRESENCE_TTL (full size: 30 s)
PROBE = 1.0  # AETHER_PROBE_INTERVAL (default 5 s)
REDIS_TIMEOUT = 1.0  # AETHER_REDIS_TIMEOUT (default 2 s)

CHAOS_ENV = {
    "AETHER_PRESENCE_TTL": str(TTL),
    "AETHER_PROBE_INTERVAL": str(PROBE),
    "AETHER_REDIS_TIMEOUT": str(REDIS_TIMEOUT),
    "AETHER_LOG_LEVEL": "info",
}


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A throwaway redis-server this test may kill, freeze and restart."""
    server = RedisServer(tmp_path / "redis.log")
    await server.start_async()
    try:
        yield server
    finally:
        server.stop()


LaunchNode = Callable[..., NodeProcess]


@pytest.fixture
def launch(start_node: Callable[..., NodeProcess]) -> LaunchNode:
    """Start an ``aether-bridge serve`` process on ``redis_url`` with the chaos timings."""

    def launch(
        redis_url: str, node_id: str, *, port: int | None = None, wait: bool = True, **env: str
    ) -> NodeProcess:
        """``port``: restart a node on the port it had (else a free one); ``wait=False``
        returns at once, for a caller that polls readiness without blocking its event loop."""
        settings = {**CHAOS_ENV, "AETHER_NODE_ID": node_id, **env}
        if port is None:
            return start_node("--redis-url", redis_url, env=settings, wait=wait)
        # The launcher passes a free port first; argparse keeps the last --port given.
        node = start_node("--redis-url", redis_url, "--port", str(port), env=settings, wait=False)
        node = NodeProcess(node.proc, port, node.log)
        if wait:
            wait_ready(node)
        return node

    return launch
