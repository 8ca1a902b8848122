"""Scenarios F5-F7: Redis dropping a node that reads too slowly, a blackholed (half-open)
path to Redis, and a node that crashes with clients on it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass, field

import httpx
import pytest

from v3_core.backends import RedisBroker
from v3_core.routing import Envelope
from v3_core.streams import HistoryPolicy

from ..helpers import eventually, metrics, parse_metrics, presence
from .conftest import PROBE, TTL, LaunchNode
from .proxy import blackhole_proxy
from .scenario import (
    assert_delivery,
    assert_no_closes,
    close_all,
    everyone,
    figure,
    open_members,
    resync_times,
    run_publishers,
)
from .traffic import Member, Outcome, ReadyWatch, check_delivery, is_resync

pytestmark = pytest.mark.chaos


@dataclass
class SentLog:
    """What a publisher that bypasses the gateway's sockets (a broker of its own) sent."""

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


async def publish_raw(
    broker: RedisBroker, channel: str, log: SentLog, seqs: range, group: str, pad: int
) -> None:
    """Publish as a node does (numbered into history), all at once."""
    sent = time.monotonic()
    await asyncio.gather(
        *(broker.publish(channel, stamped_envelope(group, seq, pad)) for seq in seqs)
    )
    log.outcomes += [Outcome(seq, sent, "ok", sent) for seq in seqs]


async def test_f5_slow_node_dropped_by_redis(redis_server, launch: LaunchNode, prefix):
    """F5: Redis drops a stalled node (output buffer limit): what it lost beyond history
    (BURST messages, history keeps 1,000) is announced, never lost silently."""
    a = launch(redis_server.url, "nodeA")
    receivers = [await Member.open(a.ws, "g1", f"r{i}") for i in range(2)]
    client = redis_server.client()
    await client.config_set("client-output-buffer-limit", "pubsub 256kb 128kb 1")
    broker = RedisBroker(redis_server.url, node_channel=f"{prefix}n:chaos", history=HistoryPolicy())
    channel, log = f"{prefix}g:g1", SentLog("redis")
    os.kill(a.pid, signal.SIGSTOP)  # the node's reader (and everything else) stalls
    stopped = time.monotonic()
    try:
        for first in range(1, BURST + 1, 250):  # 40 MB of 16 KiB messages (as at full size)
            seqs = range(first, min(first + 250, BURST + 1))
            await publish_raw(broker, channel, log, seqs, "g1", 16 * 1024)
        await asyncio.sleep(max(0.0, stopped + 2.0 - time.monotonic()))
    finally:
        os.kill(a.pid, signal.SIGCONT)
    resumed = time.monotonic()
    announced = await asyncio.gather(*(r.wait_frame(is_resync, 0, 10.0) for r in receivers))
    healthy = time.monotonic()
    for seq in range(BURST + 1, BURST + 41):  # after recovery: 2 s at 20 msg/s
        await publish_raw(broker, channel, log, range(seq, seq + 1), "g1", 100)
        await asyncio.sleep(0.05)
    await asyncio.sleep(1)
    await client.aclose()
    await broker.aclose()
    dropped = "output buffer limits" in redis_server.logfile.read_text()
    assert dropped, "Redis never dropped the stalled node: the fault did not happen"
    assert all(announced), "a receiver got no resync notice"
    resync_delay = (
        max(r.frames[found[0]][0] for r, found in zip(receivers, announced, strict=True) if found)
        - resumed
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
    """F6: the path to Redis goes silent (no FIN, no RST): the probe notices, the node recovers
    and fills what its clients missed from history (no resync)."""
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
    resynced = [m.name for m in a_members if resync_times([m])[m.name]]
    assert resynced == [], f"history should have covered the blackhole: {resynced} resynced"
    reports = assert_delivery(members, publishers, healthy_after=start)
    figure("F6 lost by A's members", sum(r.lost for r in reports.values()))
    assert all(report.lost == 0 for report in reports.values())
    assert (await metrics(a.http))['aether_gap_fills_total{result="filled"}'] > 0
    # Others may have swept A's members (and sent their leave) while A was cut off for longer
    # than the TTL: then A announced their join again, so the event stream ends consistent.
    assert await presence(b.http, "g1") == sorted(m.name for m in members["g1"])
    for observer in (m for m in everyone(members) if "-B-" in m.name):
        last = last_presence_events(observer)
        assert all(last.get(m.name, "join") == "join" for m in a_members), (observer.name, last)
    await close_all(members)


BLACKHOLE = 6.0  # seconds (full size: 30 s); still twice the TTL, so others sweep A's members


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
            if parse_metrics((await http.get(f"{base}/metrics")).text).get(metric) == value:
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


VICTIMS = 50  # full size: 100
