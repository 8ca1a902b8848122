"""Scenario K2: churn leaves nothing behind (memory, fds, tasks, presence, channels)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
import websockets

from bridge.settings import Settings

from ..conftest import serve_app
from ..helpers import presence
from .conftest import LaunchNode
from .traffic import fds_to_port, open_fds, rss_kib

pytestmark = pytest.mark.chaos

GROUPS = [f"k{i}" for i in range(20)]
ROUND = 200  # connections held open at once per round (full size: 1,000)
SHORT = 400  # short connects (full size: 10,000)
CONCURRENCY = 50  # full size: 100


async def hold_round(base: str, tag: str) -> int:
    """Open ROUND connections spread over GROUPS, then close them all; return how many opened."""
    sockets = await asyncio.gather(
        *(
            websockets.connect(f"{base}/v3/ws/group/{GROUPS[i % 20]}/client/{tag}{i}")
            for i in range(ROUND)
        )
    )
    await asyncio.gather(*(ws.close() for ws in sockets))
    return len(sockets)


async def short_connects(base: str, count: int) -> int:
    """``count`` connect-then-close cycles, CONCURRENCY at a time; return how many succeeded."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> bool:
        async with limit:
            path = f"/v3/ws/group/{GROUPS[i % 20]}/client/s{i}"
            async with websockets.connect(f"{base}{path}", open_timeout=10):
                return True

    return sum(await asyncio.gather(*(one(i) for i in range(count))))


async def churn(base: str) -> int:
    opened = 0
    for n in range(3):
        opened += await hold_round(base, f"r{n}-")
    return opened + await short_connects(base, SHORT)


async def test_k2_churn_leaves_no_leaks(redis_url, launch: LaunchNode, prefix):
    """K2: after a warm-up, churn returns RSS, fds, presence and subscriptions to baseline."""
    node = launch(redis_url, "nodeA")
    # Warm-up: the same churn once, so allocator arenas, caches, the presence pool's connections
    # and the first Lua loads reach their high-water marks; a leak then shows as growth.
    await churn(node.ws)
    await asyncio.sleep(1.0)
    redis_port = urlsplit(redis_url).port or 6379
    rss0, fds0 = rss_kib(node.pid), open_fds(node.pid)
    redis0 = fds_to_port(node.pid, redis_port)
    # Two measured rounds: a leak grows RSS in each, while the allocator now and then maps
    # one more ~2 MiB of arenas in either and keeps it (seen 2.0-2.25 MiB in 1 run of 4-6,
    # VmData growing by the same, before and after this session's changes).
    growths, opened = [], 0
    for _ in range(2):
        before = rss_kib(node.pid)
        opened += await churn(node.ws)
        await asyncio.sleep(1.0)
        growths.append((rss_kib(node.pid) - before) / 1024)
    rss_growth, fds = min(growths), open_fds(node.pid)
    redis_fds = fds_to_port(node.pid, redis_port)
    members = {g: await presence(node.http, g) for g in GROUPS}
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    channels = sorted(await client.pubsub_channels(f"{prefix}*"))
    await client.aclose()
    total = (rss_kib(node.pid) - rss0) / 1024
    print(
        f"FIGURE K2 {opened} connections: RSS growth after warm-up, per round "
        f"{growths[0]:.2f} and {growths[1]:.2f} MiB (total {total:.2f}), "
        f"fds {fds0} -> {fds} ({redis0} -> {redis_fds} of them to Redis), "
        f"channels left {channels}"
    )
    assert opened == 2 * (3 * ROUND + SHORT)
    assert rss_growth <= 2.0
    # Every fd but Redis' returns to its baseline. The Redis pools (presence, IDs, broker
    # control) open a connection when a burst finds all of theirs busy and keep it, so
    # a churn's peak may add one the warm-up's did not reach (seen once in CI: fds
    # 53 -> 54, the new one a connection to Redis). Bounded by the pools' sizes, where a
    # leak per connection would add hundreds over 2,000 connections.
    assert fds - redis_fds <= fds0 - redis0
    assert redis_fds <= redis0 + 4
    assert all(m == [] for m in members.values()), members
    assert channels == [f"{prefix}n:nodeA"]  # only the node's own probe channel


async def test_k2_churn_leaves_no_tasks(redis_url, make_settings: Callable[..., Settings]):
    """K2: the node's asyncio task count returns to its baseline after churn (in-process)."""
    async with serve_app(make_settings(redis_url=redis_url)) as server:
        await hold_round(server.ws, "warm-")
        await asyncio.sleep(0.5)  # the round's closes finish: the count must not wait on it
        gc.collect()
        baseline = len(asyncio.all_tasks())
        await hold_round(server.ws, "r-")
        await short_connects(server.ws, 200)
        await asyncio.sleep(0.5)  # likewise: what is left after that is a leak
        gc.collect()
        after = len(asyncio.all_tasks())
    print(f"FIGURE K2 asyncio tasks {baseline} -> {after}")
    assert abs(after - baseline) <= 5
