"""The scenario around every Redis fault: members in groups on two nodes, lock-step publishers,
and the assertions each F row shares (no closes, no silent loss, resync timing)."""

from __future__ import annotations

import asyncio
import time

from ..support.redis_server import RedisServer
from .traffic import Member, Publisher, check_delivery, numsub

GROUPS = ("g1", "g2")
PER_NODE = 3  # members per group per node (D1 at full size: 40 per group)
RATE = 20.0  # msg/s per publisher, one publisher per node per group (as at full size)


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
