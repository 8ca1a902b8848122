"""Scenarios F1-F4: Redis killed and restarted, down for longer, frozen, and the
subscriber connection killed server-side.

Each test runs group traffic between two real ``aether-bridge serve`` processes, injects one
fault, and checks the row's pass figure with the exact checker in traffic.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import websockets

import aether_client

from ..helpers import metrics, presence
from .conftest import LaunchNode
from .scenario import (
    GROUPS,
    assert_delivery,
    assert_no_closes,
    close_all,
    errors_after,
    everyone,
    figure,
    open_members,
    reasons,
    resync_times,
    run_publishers,
    time_to_subscriptions,
)
from .traffic import Member, ReadyWatch, percentile

pytestmark = pytest.mark.chaos


async def test_f1_redis_killed_and_back_in_2s(redis_server, launch: LaunchNode, prefix):
    """F1: kill -9 Redis under traffic, restart it 2 s later: no closes, gaps announced."""
    # A long TTL: presence must come back on the empty Redis at once, not at the next refresh.
    a = launch(redis_server.url, "nodeA", AETHER_PRESENCE_TTL="30")
    b = launch(redis_server.url, "nodeB", AETHER_PRESENCE_TTL="30")
    members, publishers = await open_members({"A": a.ws, "B": b.ws})
    channels = [f"{prefix}g:{g}" for g in GROUPS]
    async with ReadyWatch({"A": a.http, "B": b.http}) as watch:
        start = time.monotonic()
        traffic = asyncio.create_task(run_publishers(publishers, start + 10))
        await asyncio.sleep(3)
        redis_server.kill()
        killed = time.monotonic()
        await asyncio.sleep(2)
        await redis_server.start_async()
        restarted = time.monotonic()
        resubscribed = await time_to_subscriptions(redis_server, channels, want=2)
        await traffic
        await asyncio.sleep(1)  # let the last messages land
    healthy = watch.healthy_since(restarted)
    assert healthy is not None, "a node never reported ready again"
    figure("F1 down for (s)", restarted - killed)
    figure("F1 subscriptions restored after restart (s)", resubscribed)
    figure("F1 ready after restart (s)", healthy - restarted)
    assert_no_closes(members)
    assert resubscribed <= 5.0
    reports = assert_delivery(members, publishers, healthy_after=healthy + 1.0)
    lossy = set().union(*(r.receivers_with_loss for r in reports.values()))
    figure(
        "F1 messages expected / lost (announced)",
        f"{sum(r.expected for r in reports.values())} / {sum(r.lost for r in reports.values())}",
    )
    resyncs = resync_times(everyone(members))
    late = {
        n: t for n, t in resyncs.items() if n in lossy and not any(x <= restarted + 5 for x in t)
    }
    assert late == {}, f"resync later than 5 s after restart: {late}"
    # Every client on a node whose subscriber reconnected is told, lossy or not.
    assert all(resyncs.values()), "some clients got no resync notice"
    assert reasons(everyone(members)) == {"broker-restarted"}
    # Redis lost every stream's history (no persistence): the streams start new epochs.
    for member in everyone(members):
        epochs = {f["epoch"] for at, f in member.frames if "epoch" in f and at < killed}
        after = {f["epoch"] for at, f in member.frames if "epoch" in f and at > healthy + 1.0}
        assert epochs and after and not epochs & after, (member.name, epochs, after)
    # One notice per restart: no stale pooled connection fails afterwards and recycles again.
    assert {len(t) for t in resyncs.values()} == {1}, resyncs
    assert errors_after(publishers, healthy) == []
    figure("F1 resync after restart, max (s)", max(min(t) for t in resyncs.values()) - restarted)
    # Presence was re-registered on the empty Redis without waiting for a refresh period.
    for group in GROUPS:
        assert await presence(a.http, group) == sorted(m.name for m in members[group])
    await close_all(members)


async def test_f2_redis_down_10s(redis_server, launch: LaunchNode, prefix):
    """F2: Redis down for a while: failed publishes get an error reply, /readyz says 503."""
    a = launch(redis_server.url, "nodeA")
    b = launch(redis_server.url, "nodeB")
    members, publishers = await open_members({"A": a.ws, "B": b.ws})
    channels = [f"{prefix}g:{g}" for g in GROUPS]
    async with ReadyWatch({"A": a.http, "B": b.http}) as watch:
        start = time.monotonic()
        traffic = asyncio.create_task(run_publishers(publishers, start + 14))
        await asyncio.sleep(3)
        redis_server.kill()
        killed = time.monotonic()
        await asyncio.sleep(1)
        refused = await refused_with(b.ws, "g1", "latecomer")
        # A latecomer on the client library: accepted, closed with 1013, retried with backoff
        # until Redis is back, with nothing for the application to do.
        library = aether_client.connect(
            b.ws, group_id="g1", client_id="late_lib", backoff_base=0.2, backoff_cap=1.0
        )
        await library.start()
        await asyncio.sleep(max(0.0, killed + 6 - time.monotonic()))
        await redis_server.start_async()
        restarted = time.monotonic()
        resubscribed = await time_to_subscriptions(redis_server, channels, want=2)
        try:
            listed = await library.members(timeout=10)
            figure("F2 library latecomer: attempts until served", library.attempts)
        finally:
            await library.close()
        assert "late_lib" in listed and library.attempts >= 2, library.attempts
        await traffic
        await asyncio.sleep(1)
    healthy = watch.healthy_since(restarted)
    assert healthy is not None
    assert_no_closes(members)
    outcomes = [o for group in publishers.values() for p in group for o in p.outcomes]
    errors = [o for o in outcomes if o.kind == "error"]
    assert errors, "the outage produced no error reply at all"
    error_delay = max(o.answered - o.sent for o in errors)
    degraded = {name: watch.first(name, False, killed) for name in ("A", "B")}
    figure("F2 down for (s)", restarted - killed)
    figure(
        "F2 publishes / error replies / unknown",
        f"{len(outcomes)} / {len(errors)} / {sum(o.kind == 'unknown' for o in outcomes)}",
    )
    figure("F2 error reply delay, max (s)", error_delay)
    figure(
        "F2 /readyz 503 after kill, max (s)", max((t or 1e9) - killed for t in degraded.values())
    )
    figure("F2 subscriptions restored after restart (s)", resubscribed)
    figure("F2 close code for a client connecting during the outage", str(refused))
    assert error_delay <= 5.0
    assert refused == 1013, "a client connecting while Redis is down must be told to retry"
    assert all(t is not None and t - killed <= 5.0 for t in degraded.values()), degraded
    assert resubscribed <= 5.0
    # Every message not refused reached everyone or sits in an announced gap (no silent drop).
    assert_delivery(members, publishers, healthy_after=healthy + 1.0)
    assert errors_after(publishers, healthy) == []
    await close_all(members)


async def refused_with(base: str, group: str, client: str) -> int | None:
    """The close code a new client gets (None if it was accepted and left open)."""
    async with websockets.connect(f"{base}/v3/ws/group/{group}/client/{client}") as ws:
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        return ws.close_code


async def test_f3_redis_frozen(redis_server, launch: LaunchNode, prefix):
    """F3: Redis stopped (SIGSTOP): the loop stays live, Redis calls time out, all recovers."""
    a = launch(redis_server.url, "nodeA")
    b = launch(redis_server.url, "nodeB")
    members, publishers = await open_members({"A": a.ws, "B": b.ws}, per_node=2)
    # Two sockets: frames of one connection are handled in order, so a heartbeat waiting
    # on the frozen Redis would hold back an echo queued behind it on the same socket.
    prober = await Member.open(a.ws, "probe", "prober")
    beater = await Member.open(a.ws, "probe", "beater")
    async with ReadyWatch({"A": a.http, "B": b.http}) as watch:
        start = time.monotonic()
        traffic = asyncio.create_task(run_publishers(publishers, start + 11))
        await asyncio.sleep(2)
        redis_server.freeze()
        frozen = time.monotonic()
        echo_rtts, beat_delays = await asyncio.gather(
            echo_rtts_for(prober, 5.0), heartbeat_delays_for(beater, 5.0, after=0.2)
        )
        redis_server.thaw()
        thawed = time.monotonic()
        await traffic
        await asyncio.sleep(1)
        recovered = watch.healthy_since(thawed)
        beat_after = await heartbeat_delays_for(beater, 0.1)
    assert recovered is not None
    figure("F3 frozen for (s)", thawed - frozen)
    figure("F3 local echo p99 during freeze (ms)", 1000 * percentile(echo_rtts, 0.99))
    figure("F3 echo samples", len(echo_rtts))
    figure("F3 heartbeat answer during freeze, max (s)", max(d for d, _ in beat_delays))
    figure("F3 ready after thaw (s)", recovered - thawed)
    assert percentile(echo_rtts, 0.99) <= 0.100
    assert all(d <= 2.0 for d, _ in beat_delays), beat_delays
    assert {kind for _, kind in beat_delays} == {"error"}, "heartbeats during a freeze must fail"
    assert recovered - thawed <= 5.0
    assert beat_after[0][1] == "heartbeat"
    assert_no_closes(members)
    assert_delivery(members, publishers, healthy_after=recovered + 1.0)
    await close_all(members)
    await prober.aclose()
    await beater.aclose()


def echo_of(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame.get("msg") == text


async def echo_rtts_for(member: Member, duration: float) -> list[float]:
    """Round trips of echo messages (no Redis involved) sent every 20 ms for ``duration``."""
    rtts, end, n = [], time.monotonic() + duration, 0
    while time.monotonic() < end:
        n += 1
        start, sent = len(member.frames), time.monotonic()
        await member.ws.send(json.dumps({"msg_type": "msg", "target": "echo", "msg": f"e{n}"}))
        found = await member.wait_frame(echo_of(f"e{n}"), start, 2.0)
        assert found is not None, "echo lost"
        rtts.append(time.monotonic() - sent)
        await asyncio.sleep(0.02)
    return rtts


async def heartbeat_delays_for(
    member: Member, duration: float, after: float = 0.0
) -> list[tuple[float, str]]:
    """(seconds to the answer, its msg_type) for heartbeats sent every 0.5 s."""
    await asyncio.sleep(after)
    delays, end = [], time.monotonic() + duration
    while True:
        start, sent = len(member.frames), time.monotonic()
        await member.ws.send(json.dumps({"msg_type": "heartbeat", "target": "echo"}))
        found = await member.wait_frame(
            lambda f: f.get("msg_type") in ("heartbeat", "error"), start, 5.0
        )
        assert found is not None, "heartbeat never answered"
        delays.append((time.monotonic() - sent, found[1]["msg_type"]))
        if time.monotonic() >= end:
            return delays
        await asyncio.sleep(0.5)


async def test_f4_pubsub_connection_killed_history_fills_the_gap(
    redis_server, launch: LaunchNode, prefix
):
    """F4 with history on (the default): CLIENT KILL TYPE pubsub under traffic; each node
    fills what it missed from history: every message reaches every client, no resync."""
    a = launch(redis_server.url, "nodeA")
    b = launch(redis_server.url, "nodeB")
    members, publishers = await open_members({"A": a.ws, "B": b.ws})
    client = redis_server.client()
    start = time.monotonic()
    traffic = asyncio.create_task(run_publishers(publishers, start + 6))
    await asyncio.sleep(2)
    killed_count = await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    await traffic
    await asyncio.sleep(1)
    await client.aclose()
    assert killed_count == 2
    assert reasons(everyone(members)) == set(), "a resync went out: history should cover it"
    assert_no_closes(members)
    reports = assert_delivery(members, publishers, healthy_after=start)
    assert all(report.lost == 0 for report in reports.values())
    fills = [
        (await metrics(node.http))['aether_gap_fills_total{result="filled"}'] for node in (a, b)
    ]
    figure("F4 gap fills (node A, node B)", f"{fills[0]:.0f}, {fills[1]:.0f}")
    assert all(count > 0 for count in fills), "no gap was filled: the fault did not bite"
    await close_all(members)


async def test_f4_pubsub_connection_killed_without_history(
    redis_server, launch: LaunchNode, prefix
):
    """F4 with AETHER_HISTORY_SIZE=0: each node resyncs within 5 s, no closes."""
    a = launch(redis_server.url, "nodeA", AETHER_HISTORY_SIZE="0")
    b = launch(redis_server.url, "nodeB", AETHER_HISTORY_SIZE="0")
    members, publishers = await open_members({"A": a.ws, "B": b.ws})
    client = redis_server.client()
    start = time.monotonic()
    traffic = asyncio.create_task(run_publishers(publishers, start + 6))
    await asyncio.sleep(2)
    killed_count = await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    killed = time.monotonic()
    await traffic
    await asyncio.sleep(1)
    await client.aclose()
    resyncs = resync_times(everyone(members))
    first = {name: min(times, default=None) for name, times in resyncs.items()}
    missing = [name for name, t in first.items() if t is None]
    assert killed_count == 2
    assert missing == [], f"no resync for {missing}"
    delay = max(t - killed for t in first.values() if t is not None)
    assert reasons(everyone(members)) == {"broker-reconnected"}
    figure("F4 resync after CLIENT KILL, max (s)", delay)
    assert delay <= 5.0
    assert_no_closes(members)
    assert_delivery(members, publishers, healthy_after=killed + delay + 1.0)
    await close_all(members)
