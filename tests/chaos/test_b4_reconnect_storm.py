"""Scenario B4: a reconnect storm. Node A is killed and restarted with 200 clients on it.

Two real nodes on one throwaway Redis. Every client behaves like a frontend: when its socket
drops it reconnects with a jittered exponential backoff, alternating A and B (what a load
balancer in front of both would do). A mix of V3 clients and legacy V2 clients whose path IDs
are database integers: those are mapped by the Aether ID API, outside our system, played here
by a small HTTP server in the test process that counts its calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import redis.asyncio as aioredis
import websockets
from redis.maint_notifications import MaintNotificationsConfig
from websockets.asyncio.client import ClientConnection

from ..conftest import NodeProcess
from ..helpers import MS, eventually, metrics, presence
from ..support.redis_server import RedisServer
from .conftest import TTL, LaunchNode
from .traffic import ReadyWatch

pytestmark = pytest.mark.chaos

V3_CLIENTS = 150  # V3 sockets on node A (full size: 500 clients in all)
V2_CLIENTS = 50  # legacy sockets on node A, over ...
V2_CLIENT_IDS = [str(1000 + i) for i in range(10)]  # ... 10 database client integers
V2_GROUP_IDS = ["100", "101"]  # ... in 2 database group integers
LEAVERS = 10  # V3 clients that do not come back (their tab was closed while A was down)
BOUND = 10.0  # B4: every client reconnected within 10 s of the kill
BACKOFF_BASE, BACKOFF_MAX = 1.0, 5.0  # seconds, doubling; times a random 0.5-1.5 (socket.io)
MAX_TRIES = 10  # per drop: a client gives up after this many failed reconnects


def vision(namespace: str, legacy: str) -> str:
    """The Vision ID the fake Aether API answers for a database integer."""
    return f"{'grp' if namespace == 'group' else 'dev'}_{legacy}"


V3_GROUPS = ["g1", "g2", vision("group", "100"), vision("group", "101")]  # V3 and V2 mixed


class FakeAetherApi:
    """``GET /api/v1/{group,client}s/{legacy}`` -> ``{"vision_id": ...}``, counting each call."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = re.fullmatch(r"/api/v1/(group|client)s/(\d+)", self.path)
                if found is None:
                    self.send_error(404)
                    return
                namespace, legacy = found.groups()
                with api._lock:
                    api.calls[(namespace, legacy)] += 1
                body = json.dumps({"vision_id": vision(namespace, legacy)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.calls)


@pytest.fixture
def aether_api() -> Iterator[FakeAetherApi]:
    api = FakeAetherApi()
    thread = threading.Thread(target=api.server.serve_forever, daemon=True, name="aether-api")
    thread.start()
    try:
        yield api
    finally:
        api.server.shutdown()
        api.server.server_close()
        thread.join(5)


class StormClient:
    """One frontend: holds a socket; when it drops, reconnects with jittered backoff."""

    def __init__(self, path: str, group: str, client: str, comes_back: bool, first: int) -> None:
        self.path = path
        self.group = group  # the Vision IDs presence lists it under
        self.client = client
        self.comes_back = comes_back
        self.first = first  # which node its first retry tries (0: A, 1: B)
        self.ws: ClientConnection | None = None
        self.connects: list[tuple[float, str]] = []  # (when, node) of each open handshake
        self.drops: list[tuple[float, int | None]] = []  # (when, close code) not asked for
        self.failures: Counter[str] = Counter()  # failed handshakes by kind
        self.gave_up = False

    async def connect(self, node: str, base: str) -> bool:
        try:
            ws = await websockets.connect(base + self.path, open_timeout=5, max_queue=None)
        except ConnectionRefusedError:
            self.failures["refused"] += 1  # the node is down: expected while A restarts
            return False
        except (OSError, TimeoutError):
            self.failures["timeout"] += 1
            return False
        except websockets.InvalidHandshake:
            self.failures["http"] += 1
            return False
        self.ws = ws
        self.connects.append((time.monotonic(), node))
        return True

    async def run(self, nodes: list[tuple[str, str]], rng: random.Random, stop: asyncio.Event):
        while self.ws is not None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for _ in self.ws:
                    pass  # presence events and the like
            if stop.is_set():
                return
            self.drops.append((time.monotonic(), self.ws.close_code))
            self.ws = None
            if not self.comes_back:
                return
            for tries in range(MAX_TRIES):
                delay = min(BACKOFF_MAX, BACKOFF_BASE * 2**tries) * rng.uniform(0.5, 1.5)
                await asyncio.sleep(delay)
                if stop.is_set():
                    return
                if await self.connect(*nodes[(self.first + tries) % 2]):
                    break
            else:
                self.gave_up = True

    async def aclose(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def make_clients(rng: random.Random) -> list[StormClient]:
    clients = []
    for i in range(V3_CLIENTS + LEAVERS):
        group, name = V3_GROUPS[i % len(V3_GROUPS)], f"c{i:03d}"
        path = f"/v3/ws/group/{group}/client/{name}"
        clients.append(StormClient(path, group, name, i < V3_CLIENTS, rng.randrange(2)))
    for i in range(V2_CLIENTS):
        # client 1000 + k is always in group 100 + k % 2: 5 integers per group, 5 sockets each
        legacy_group, legacy_client = V2_GROUP_IDS[i % 2], V2_CLIENT_IDS[i % 10]
        path = f"/ws/group/{legacy_group}/client/{legacy_client}"
        group, name = vision("group", legacy_group), vision("client", legacy_client)
        clients.append(StormClient(path, group, name, True, rng.randrange(2)))
    return clients


def expected_presence(clients: list[StormClient]) -> dict[str, list[str]]:
    groups: dict[str, set[str]] = {}
    for c in clients:
        if c.comes_back:
            groups.setdefault(c.group, set()).add(c.client)
    return {group: sorted(members) for group, members in groups.items()}


async def presence_everywhere(base: str, groups: list[str]) -> dict[str, list[str]]:
    return dict(
        zip(groups, await asyncio.gather(*(presence(base, g) for g in groups)), strict=True)
    )


async def presence_is(base: str, want: dict[str, list[str]]) -> bool:
    return await presence_everywhere(base, list(want)) == want


async def wait_ready(node: NodeProcess, timeout: float) -> float:
    """When the node answered /readyz 200; polled without blocking the clients' event loop."""
    async with httpx.AsyncClient(timeout=1.0) as http, asyncio.timeout(timeout):
        while True:
            assert node.proc.poll() is None, node.log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{node.http}/readyz")).status_code == 200:
                    return time.monotonic()
            await asyncio.sleep(0.05)


def redis_client(server: RedisServer) -> aioredis.Redis:
    """Connects as the nodes do: no CLIENT MAINT_NOTIFICATIONS, which Redis 7.0 refuses."""
    off = MaintNotificationsConfig(enabled=False)
    return aioredis.Redis.from_url(server.url, socket_timeout=2, maint_notifications_config=off)


async def redis_stats(server: RedisServer) -> Counter[str]:
    """Error replies Redis sent so far by error prefix, connections accepted and rejected."""
    client = redis_client(server)
    try:
        stats, errors = await client.info("stats"), await client.info("errorstats")
    finally:
        await client.aclose()
    found = Counter({name: int(value["count"]) for name, value in errors.items()})
    for name in ("total_connections_received", "rejected_connections", "total_commands_processed"):
        found[name] = int(stats[name])
    return found


async def handshake_errors(server: RedisServer) -> int:
    """Error replies each new redis-py connection gets: it sends CLIENT SETINFO LIB-NAME and
    LIB-VER, which a Redis older than 7.2 answers with "ERR unknown subcommand"."""
    client = redis_client(server)
    try:
        version = (await client.info("server"))["redis_version"]
    finally:
        await client.aclose()
    major, minor = (int(part) for part in version.split(".")[:2])
    return 2 if (major, minor) < (7, 2) else 0


def log_trouble(node: NodeProcess) -> list[str]:
    """Lines above INFO (warnings, errors) and traceback lines: every healthy line is INFO."""
    lines = node.log.read_text(errors="replace").splitlines()
    return [line for line in lines if not line.startswith("INFO:")]


def accepted(node: NodeProcess) -> int:
    return node.log.read_text(errors="replace").count(" [accepted]")


async def test_b4_reconnect_storm(
    redis_server: RedisServer, launch: LaunchNode, aether_api: FakeAetherApi
) -> None:
    env = {"AETHER_ID_LOOKUP_URL": aether_api.url}
    a = launch(redis_server.url, "nodeA", **env)
    b = launch(redis_server.url, "nodeB", **env)
    rng = random.Random(4)
    clients = make_clients(rng)
    returning = [c for c in clients if c.comes_back]
    groups = sorted({c.group for c in clients})

    # All 210 open at once on A: a cold ID store, so A asks the API once per distinct integer.
    opened = await asyncio.gather(*(c.connect("A", a.ws) for c in clients))
    assert all(opened), Counter(k for c in clients for k in c.failures.elements())
    everyone = {g: sorted({c.client for c in clients if c.group == g}) for g in groups}
    await eventually(lambda: presence_is(b.http, everyone), 5000 * MS)
    assert (await metrics(a.http))["aether_connections"] == len(clients)
    calls_before = aether_api.counts()
    per_connection = await handshake_errors(redis_server)
    redis_before = await redis_stats(redis_server)

    stop = asyncio.Event()
    nodes = [("A", a.ws), ("B", b.ws)]
    tasks = [asyncio.create_task(c.run(nodes, rng, stop)) for c in clients]
    async with ReadyWatch({"A": a.http, "B": b.http}) as watch:
        os.kill(a.pid, signal.SIGKILL)
        killed = time.monotonic()
        a.proc.wait(5)
        a = launch(redis_server.url, "nodeA", port=a.port, wait=False, **env)
        a_ready = await wait_ready(a, 20.0)

        async def all_back() -> bool:
            return all(c.ws is not None or c.gave_up for c in returning)

        await eventually(all_back, BOUND + 5.0)
        # None missing, and after one TTL and a sweep, no ghost: the leavers are gone.
        want = expected_presence(clients)
        await eventually(lambda: presence_is(b.http, want), TTL + 10)
        settled = time.monotonic()
    redis_after = await redis_stats(redis_server)
    seen_by_a = await presence_everywhere(a.http, groups)
    metrics_a, metrics_b = await metrics(a.http), await metrics(b.http)
    calls = aether_api.counts()

    back = [max(t for t, _ in c.connects) - killed for c in returning if len(c.connects) > 1]
    landed = Counter(c.connects[-1][1] for c in returning if len(c.connects) > 1)
    failures = Counter(k for c in clients for k in c.failures.elements())
    b_samples = [ok for t, ok in watch.history["B"] if killed <= t <= settled]
    delta = redis_after - redis_before
    new_connections = delta["total_connections_received"]
    print(
        f"FIGURE B4 {len(returning)} clients on A ({V3_CLIENTS} V3, {V2_CLIENTS} V2) and "
        f"{LEAVERS} that leave; SIGKILL, restart: all reconnected after {max(back):.2f} s "
        f"(median {sorted(back)[len(back) // 2]:.2f} s), {landed['A']} to A and {landed['B']} "
        f"to B; A ready again after {a_ready - killed:.2f} s; failed handshakes "
        f"{dict(failures)}; presence exact after {settled - killed:.2f} s; upstream calls "
        f"{sum(calls.values())} for {len(calls)} distinct legacy IDs; Redis: "
        f"{new_connections} new connections, {delta['total_commands_processed']} commands"
    )

    # 100 % reconnected within the bound, each exactly once: no socket dropped after the storm.
    assert [c.path for c in returning if c.gave_up or len(c.connects) != 2] == []
    assert len(back) == len(returning) and max(back) <= BOUND
    drops = [c.drops for c in clients]
    assert all(len(d) == 1 and d[0][0] >= killed for d in drops), [d for d in drops if len(d) != 1]
    assert failures["http"] == 0 and failures["timeout"] == 0, failures
    assert landed["A"] + landed["B"] == len(returning)
    assert metrics_a["aether_connections"] == landed["A"]
    assert metrics_b["aether_connections"] == landed["B"]
    # Presence: exactly the live clients, the same seen from both nodes.
    assert seen_by_a == want
    # No Redis error spike: during the storm Redis answered no command with an error (beyond
    # the connection handshake's, see handshake_errors) and refused no connection; no node
    # refused a socket or a publish for a backend reason; B stayed ready throughout (polled
    # every 0.1 s); neither node logged a warning, an error or a traceback.
    other_errors = {k: v for k, v in delta.items() if k.startswith("errorstat_") and v}
    assert other_errors == (
        {"errorstat_ERR": per_connection * new_connections} if per_connection else {}
    ), (other_errors, new_connections)
    assert redis_after["rejected_connections"] == 0
    for name in ("aether_connections_rejected_total", "aether_publish_failures_total"):
        assert metrics_a[name] == 0 and metrics_b[name] == 0, name
    assert metrics_b["aether_discontinuities_total"] == 0
    assert len(b_samples) >= 10 and all(b_samples), b_samples
    assert accepted(b) >= landed["B"] and log_trouble(b) == [], log_trouble(b)
    assert log_trouble(a) == []

    # One legacy socket per distinct client integer now opens on the restarted A, whose cache
    # is cold: it must find every mapping in the Redis ID store.
    probes = [StormClient(c.path, c.group, c.client, False, 0) for c in clients[-10:]]
    assert sorted(p.client for p in probes) == [vision("client", c) for c in V2_CLIENT_IDS]
    assert all(await asyncio.gather(*(p.connect("A", a.ws) for p in probes)))
    probe_tasks = [asyncio.create_task(p.run(nodes, rng, stop)) for p in probes]
    await asyncio.sleep(0.3)  # a refused legacy handshake would be closed by now
    assert (await metrics(a.http))["aether_connections"] == landed["A"] + len(probes)
    assert await presence_everywhere(a.http, groups) == want

    # A clean close empties presence at once: no entry of the killed A holds anyone.
    stop.set()
    await asyncio.gather(*(c.aclose() for c in clients + probes))
    await asyncio.gather(*tasks, *probe_tasks)
    assert [p.drops for p in probes] == [[]] * len(probes)
    closed = time.monotonic()
    await eventually(lambda: presence_is(b.http, {key: [] for key in groups}), 1000 * MS)
    print(f"FIGURE B4 presence empty {time.monotonic() - closed:.2f} s after a clean close")

    # ≤ 1 upstream lookup per distinct legacy ID over the whole test. The store was cold, so
    # the first A asked once for each (single-flight); B and the restarted A, with cold caches,
    # must find every mapping in the Redis ID store and ask no more.
    distinct = {("group", g) for g in V2_GROUP_IDS} | {("client", c) for c in V2_CLIENT_IDS}
    assert calls_before == dict.fromkeys(distinct, 1)
    assert aether_api.counts() == calls_before
