"""Shared fixtures: a throwaway Redis, per-test prefixes, in-process servers and node processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.dead_letter_store import MemoryDeadLetterStore
from bridge.node_registry import MemoryNodeStore
from bridge.settings import Settings
from bridge.v2.store import MemoryV2Store
from translators import MemoryIdStore
from v3_core.backends import MemoryHub

from .helpers import free_port
from .support.clock import FakeClock
from .support.redis_cluster import redis_cluster
from .support.redis_server import RedisServer
from .support.servers import RunningServer as RunningServer  # re-exported
from .support.servers import serve_app as serve_app  # re-exported

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """$REDIS_URL when set (never flushed), else a redis-server this session starts and stops."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.exit("redis-server not found: apt-get install redis-server, or set REDIS_URL", 2)
    with RedisServer(binary=binary) as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """$REDIS_CLUSTER_URL when set, else a three-master Redis Cluster this session starts."""
    if url := os.environ.get("REDIS_CLUSTER_URL"):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.exit("redis-server not found: apt-get install redis-server", 2)
    with (
        tempfile.TemporaryDirectory(prefix="aether-cluster-") as workdir,
        redis_cluster(Path(workdir), binary=binary) as cluster,
    ):
        yield cluster.url


@pytest.fixture
def prefix() -> str:
    """A key and channel prefix unique to this test, so tests never see each other."""
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand (``clock.now += seconds``), for ``clock=`` parameters."""
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """Run a test on the embedded backends and on Redis."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
def make_settings(prefix: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "channel_prefix": prefix,
            "presence_ttl": 2.0,
            "redis_timeout": 1.0,
            "probe_interval": 1.0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def server(
    backend_url: str | None, make_settings: Callable[..., Settings]
) -> AsyncIterator[RunningServer]:
    """One node on the parametrized backend."""
    async with serve_app(make_settings(redis_url=backend_url)) as running:
        yield running


@pytest.fixture
async def two_nodes(
    backend_url: str | None, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    """Two nodes sharing a backend: one Redis, or one in-process memory hub."""
    shared = embedded_backends() if backend_url is None else {}
    async with (
        serve_app(make_settings(redis_url=backend_url, node_id="nodeA"), **shared) as a,
        serve_app(make_settings(redis_url=backend_url, node_id="nodeB"), **shared) as b,
    ):
        yield a, b


def embedded_backends() -> dict[str, Any]:
    """What in-process nodes on the embedded backends share, as real nodes share one Redis."""
    return {
        "hub": MemoryHub(),
        "id_store": MemoryIdStore(),
        "v2_store": MemoryV2Store(),
        "dead_letter_store": MemoryDeadLetterStore(),
        "node_store": MemoryNodeStore(),
    }


class NodeProcess:
    """A real ``aether-bridge serve`` process."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.http = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.contextmanager
def node_launcher(log_dir: Path, prefix: str) -> Iterator[Callable[..., NodeProcess]]:
    """Start ``aether-bridge serve`` subprocesses; all are stopped on exit."""
    started: list[NodeProcess] = []

    def start(
        *args: str, env: dict[str, str] | None = None, wait: bool = True, cwd: Path = ROOT
    ) -> NodeProcess:
        """``cwd``: where ``python -m bridge.cli`` finds the packages (another build's copy)."""
        port = free_port()
        log = log_dir / f"node-{port}.log"
        full_env = {
            **os.environ,
            "AETHER_CHANNEL_PREFIX": prefix,
            "AETHER_LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        command = [sys.executable, "-m", "bridge.cli", "serve", "--port", str(port), *args]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, env=full_env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd
            )
        node = NodeProcess(proc, port, log)
        started.append(node)
        if wait:
            wait_ready(node)
        return node

    try:
        yield start
    finally:
        for node in started:
            if node.proc.poll() is None:
                node.proc.terminate()
        for node in started:
            try:
                node.proc.wait(10)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(5)


@pytest.fixture
def start_node(tmp_path: Path, prefix: str) -> Iterator[Callable[..., NodeProcess]]:
    """Start node processes for one test."""
    with node_launcher(tmp_path, prefix) as start:
        yield start


@pytest.fixture(scope="module")
def module_prefix() -> str:
    return f"m{uuid.uuid4().hex[:10]}:"


@pytest.fixture(scope="module")
def redis_node_pair(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, module_prefix: str
) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """Two node processes on the test Redis, shared by a module's tests (start-up is slow)."""
    with node_launcher(tmp_path_factory.mktemp("nodes"), module_prefix) as start:
        yield start("--redis-url", redis_url), start("--redis-url", redis_url)


def wait_ready(node: NodeProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise AssertionError(f"node exited early:\n{node.log.read_text()}")
        try:
            if httpx.get(f"{node.http}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"node not ready in {timeout}s:\n{node.log.read_text()}")
