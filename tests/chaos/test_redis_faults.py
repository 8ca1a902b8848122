"""Matrix rows F1-F7: Redis killed, down, frozen, dropping us, blackholed; a node crashing.

Each test runs group traffic between two real ``aether-bridge serve`` processes, injects
one fault, and checks the row's pass figure with the exact checker in traffic.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass, field

import httpx
import pytest
import websockets

from v3_core.routing import Envelope

from ..helpers import eventually
from .conftest import PROBE, TTL, LaunchNode
from .proxy import blackhole_proxy
from .redis_server import RedisServer
from .traffic import (
    Member,
    Outcome,
    Publisher,
    ReadyWatch,
    check_delivery,
    is_resync,
    numsub,
    percentile,
    presence,
)

pytestmark = pytest.mark.chaos

GROUPS = ("g1", "g2")
PER_NODE = 3  # members per group per node (matrix D1: 40 per group)
RATE = 20.0  # msg/s per publisher, one publisher per node per group (as the matrix)


async def open_members(nodes: dict[str, str], groups=GROUPS, per_node=PER_NODE):
    """Members of every group on every node; the first of each (group, node) publishes."""
    members: dict[str, list[Member]] = {g: [] for g in groups}
    publishers: dict[str, list[Publisher]] = {g: [] for g in groups}
    for group in groups:
        for name, base in nodes.items():
            for i in range(per_node):
                member = await Member.open(base, group, f"{group}-{name}-{i}")
                members[group].append(member)
                if i == 0:
                    publishers[group].append(Publisher(member, RATE))
    return members, publishers


def everyone(members: dict[str, list[Member]]) -> list[Member]:
    return [m for group in members.values() for m in group]


async def run_publishers(publishers: dict[str, list[Publisher]], until: float) -> None:
    await asyncio.gather(*(p.run(until) for group in publishers.values() for p in group))


async def close_all(members: dict[str, list[Member]]) -> None:
    await asyncio.gather(*(m.aclose() for m in everyone(members)))


def assert_delivery(members, publishers, healthy_after: float):
    reports = {}
    for group in members:
        report = check_delivery(members[group], publishers[group], healthy_after=healthy_after)
        assert report.lost_silently == [], f"{group}: silent loss {report.lost_silently[:10]}"
        assert report.lost_after_healthy == [], f"{group}: {report.lost_after_healthy[:10]}"
        assert report.duplicates == [] and report.out_of_order == [], report
        reports[group] = report
    return reports


def assert_no_closes(members: dict[str, list[Member]]) -> None:
    closed = [(m.name, m.close_code) for m in everyone(members) if m.closed_at is not None]
    assert closed == [], f"sockets closed: {closed}"


async def time_to_subscriptions(server: RedisServer, channels: list[str], want: int) -> float:
    """Seconds until every channel has ``want`` subscribers on ``server``."""
    start = time.monotonic()
    client = server.client()
    try:
        async with asyncio.timeout(15):
            while True:
                try:
                    counts = await numsub(client, channels)
                    if all(counts[c] == want for c in channels):
                        return time.monotonic() - start
                except OSError:
                    pass
                except Exception as exc:  # redis-py errors while the server comes back
                    if "Connection" not in type(exc).__name__:
                        raise
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()


def errors_after(publishers: dict[str, list[Publisher]], t: float) -> list[str]:
    """Publishes refused although every node was ready again."""
    outcomes = ((p.name, o) for group in publishers.values() for p in group for o in p.outcomes)
    return [f"{name}#{o.seq}" for name, o in outcomes if o.kind == "error" and o.sent >= t]


def reasons(members: list[Member]) -> set[str]:
    return {f["payload"]["reason"] for m in members for _, _, f in m.resyncs()}


def resync_times(members: list[Member]) -> dict[str, list[float]]:
    return {m.name: [at for _, at, _ in m.resyncs()] for m in members}


def figure(name: str, value: float | int | str) -> None:
    """Measured figures, shown with ``pytest -s``; docs/reliability.md quotes them."""
    print(f"FIGURE {name}: {value if isinstance(value, str | int) else round(value, 3)}")


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
        await redis_server.start()
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
        await asyncio.sleep(max(0.0, killed + 6 - time.monotonic()))
        await redis_server.start()
        restarted = time.monotonic()
        resubscribed = await time_to_subscriptions(redis_server, channels, want=2)
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


async def echo_rtts_for(member: Member, duration: float) -> list[float]:
    """Round trips of echo messages (no Redis involved) sent every 20 ms for ``duration``."""
    rtts, end, n = [], time.monotonic() + duration, 0
    while time.monotonic() < end:
        n += 1
        start, sent = len(member.frames), time.monotonic()
        await member.ws.send(json.dumps({"msg_type": "msg", "target": "echo", "msg": f"e{n}"}))
        found = await member.wait_frame(lambda f, n=n: f.get("msg") == f"e{n}", start, 2.0)
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


async def test_f4_pubsub_connection_killed(redis_server, launch: LaunchNode, prefix):
    """F4: CLIENT KILL TYPE pubsub under traffic: each node resyncs within 5 s, no closes."""
    a = launch(redis_server.url, "nodeA")
    b = launch(redis_server.url, "nodeB")
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


@dataclass
class SentLog:
    """What a publisher that bypasses the gateway (a raw Redis client) sent."""

    name: str
    outcomes: list[Outcome] = field(default_factory=list)


def stamped_envelope(group: str, seq: int, pad: int) -> bytes:
    text = json.dumps(
        {
            "version": "3",
            "msg_type": "msg",
            "target": "group",
            "group_id": group,
            "payload": {"pub": "redis", "seq": seq, "pad": "x" * pad},
            "sent_at": "2026-01-01T00:00:00Z",
        }
    )
    return Envelope(origin="chaos", text=text).pack()


async def publish_raw(client, channel: str, log: SentLog, seqs: range, group: str, pad: int):
    async with client.pipeline(transaction=False) as pipe:
        for seq in seqs:
            pipe.publish(channel, stamped_envelope(group, seq, pad))
        sent = time.monotonic()
        await pipe.execute()
    log.outcomes += [Outcome(seq, sent, "ok", sent) for seq in seqs]


async def test_f5_slow_node_dropped_by_redis(redis_server, launch: LaunchNode, prefix):
    """F5: Redis drops a stalled node (output buffer limit): every lost message is announced."""
    a = launch(redis_server.url, "nodeA")
    receivers = [await Member.open(a.ws, "g1", f"r{i}") for i in range(2)]
    client = redis_server.client()
    await client.config_set("client-output-buffer-limit", "pubsub 256kb 128kb 1")
    channel, log = f"{prefix}g:g1", SentLog("redis")
    os.kill(a.pid, signal.SIGSTOP)  # the node's reader (and everything else) stalls
    stopped = time.monotonic()
    try:
        for first in range(1, BURST + 1, 250):  # 40 MB of 16 KiB messages (as the matrix)
            seqs = range(first, min(first + 250, BURST + 1))
            await publish_raw(client, channel, log, seqs, "g1", 16 * 1024)
        await asyncio.sleep(max(0.0, stopped + 2.0 - time.monotonic()))
    finally:
        os.kill(a.pid, signal.SIGCONT)
    resumed = time.monotonic()
    announced = await asyncio.gather(*(r.wait_frame(is_resync, 0, 10.0) for r in receivers))
    healthy = time.monotonic()
    for seq in range(BURST + 1, BURST + 41):  # after recovery: 2 s at 20 msg/s
        await publish_raw(client, channel, log, range(seq, seq + 1), "g1", 100)
        await asyncio.sleep(0.05)
    await asyncio.sleep(1)
    await client.aclose()
    dropped = "output buffer limits" in redis_server.logfile.read_text()
    assert dropped, "Redis never dropped the stalled node: the fault did not happen"
    assert all(announced), "a receiver got no resync notice"
    resync_delay = (
        max(r.frames[found[0]][0] for r, found in zip(receivers, announced, strict=True)) - resumed
    )
    report = check_delivery(receivers, [log], healthy_after=healthy)
    figure("F5 published (messages / MB)", f"{len(log.outcomes)} / {BURST * 16 // 1024}")
    figure("F5 lost (all announced)", report.lost)
    figure("F5 resync after SIGCONT (s)", resync_delay)
    assert report.lost > 0
    assert report.lost_silently == [] and report.lost_after_healthy == []
    assert report.duplicates == [] and report.out_of_order == []
    assert resync_delay <= 5.0
    assert [r.closed_at for r in receivers] == [None, None]
    for r in receivers:
        await r.aclose()


BURST = 2560


async def test_f6_blackhole_half_open(redis_server, launch: LaunchNode, prefix):
    """F6: the path to Redis goes silent (no FIN, no RST): the probe notices, the node recovers."""
    with blackhole_proxy(redis_server.port) as proxy:
        a = launch(proxy.url, "nodeA")
        b = launch(redis_server.url, "nodeB")
        members, publishers = await open_members({"A": a.ws, "B": b.ws})
        client = redis_server.client()
        subscriber = f"{prefix}n:nodeA:sub"
        before = await subscriber_ids(client, subscriber)
        async with ReadyWatch({"A": a.http, "B": b.http}) as watch:
            start = time.monotonic()
            traffic = asyncio.create_task(run_publishers(publishers, start + 13))
            await asyncio.sleep(3)
            proxy.blackhole(True)
            holed = time.monotonic()
            detected = await time_to_metric(a.http, "aether_broker_ready", 0.0, 15.0)
            await asyncio.sleep(max(0.0, holed + BLACKHOLE - time.monotonic()))
            proxy.blackhole(False)
            restored = time.monotonic()
            await traffic
            await asyncio.sleep(1)
        after = await subscriber_ids(client, subscriber)
        await client.aclose()
    healthy = watch.healthy_since(restored)
    assert healthy is not None
    figure("F6 blackhole (s)", BLACKHOLE)
    figure("F6 detected after (s)", detected - holed)
    figure("F6 ready after the path is back (s)", healthy - restored)
    assert detected - holed <= PROBE + 5.0
    assert len(before) == 1 and len(after) == 1 and before != after, (before, after)
    assert_no_closes(members)
    a_members = [m for m in everyone(members) if "-A-" in m.name]
    late = [m.name for m in a_members if not any(t >= holed for t in resync_times([m])[m.name])]
    assert late == [], f"no resync after the blackhole for {late}"
    assert_delivery(members, publishers, healthy_after=healthy + 1.0)
    # Others may have swept A's members (and sent their leave) while A was cut off for longer
    # than the TTL: then A announced their join again, so the event stream ends consistent.
    assert await presence(b.http, "g1") == sorted(m.name for m in members["g1"])
    for observer in (m for m in everyone(members) if "-B-" in m.name):
        last = last_presence_events(observer)
        assert all(last.get(m.name, "join") == "join" for m in a_members), (observer.name, last)
    await close_all(members)


BLACKHOLE = 6.0  # seconds (matrix: 30 s); still twice the TTL, so others sweep A's members


def last_presence_events(member: Member) -> dict[str, str]:
    """client_id -> the last presence event (join/leave) ``member`` saw for it."""
    last = {}
    for _, f in member.frames:
        if f.get("msg_type") == "presence" and f.get("target") == "group":
            last[f["payload"]["client_id"]] = f["payload"]["event"]
    return last


async def subscriber_ids(client, name: str) -> list[str]:
    """Redis client ids of the pub/sub connections named ``name`` (CLIENT SETNAME)."""
    return [c["id"] for c in await client.client_list(_type="pubsub") if c["name"] == name]


async def time_to_metric(base: str, metric: str, value: float, timeout: float) -> float:
    """When ``metric`` in ``/metrics`` first reads ``value`` (polled every 50 ms)."""
    async with httpx.AsyncClient(timeout=1.0) as http, asyncio.timeout(timeout):
        while True:
            for line in (await http.get(f"{base}/metrics")).text.splitlines():
                if line.startswith(metric + " ") and float(line.split()[1]) == value:
                    return time.monotonic()
            await asyncio.sleep(0.05)


async def test_f7_node_crash_stale_presence(redis_url, launch: LaunchNode):
    """F7: kill -9 a node: its members leave presence within TTL + one sweep, with leave events."""
    a = launch(redis_url, "nodeA")
    b = launch(redis_url, "nodeB")
    observers = [await Member.open(b.ws, "g1", f"obs{i}") for i in range(3)]
    victims = [await Member.open(a.ws, "g1", f"victim{i:02d}") for i in range(VICTIMS)]
    everybody = sorted(m.name for m in observers + victims)

    async def listed_everyone() -> bool:
        return await presence(b.http, "g1") == everybody

    await eventually(listed_everyone, 5.0)
    os.kill(a.pid, signal.SIGKILL)
    killed = time.monotonic()
    survivors = sorted(m.name for m in observers)

    async def only_survivors() -> bool:
        return await presence(b.http, "g1") == survivors

    await eventually(only_survivors, TTL + 10)
    gone = time.monotonic() - killed
    # Never reappear: watch for another TTL.
    end = time.monotonic() + TTL
    while time.monotonic() < end:
        assert await presence(b.http, "g1") == survivors
        await asyncio.sleep(0.2)
    figure("F7 victims", VICTIMS)
    figure("F7 presence cleared after kill (s)", gone)
    assert gone <= TTL + TTL / 3 + 1.0  # TTL + one refresh/sweep period + polling slack
    for observer in observers:
        leaves = [
            f["payload"]["client_id"]
            for _, f in observer.frames
            if f.get("msg_type") == "presence" and f["payload"].get("event") == "leave"
        ]
        assert sorted(leaves) == sorted(m.name for m in victims), observer.name
        assert observer.closed_at is None
    for member in observers + victims:
        await member.aclose()


VICTIMS = 50  # matrix: 100
