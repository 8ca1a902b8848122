"""Redis Cluster faults under traffic: a master fails over, a slot migrates.

The bridge holds one shard-channel subscription per shard (SSUBSCRIBE); when a channel's slot
moves, it follows, and every message its clients may have missed is filled from history or
announced with a resync: never lost silently.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from .cluster import BreakableCluster, ClusterNode, cluster_with_replicas
from .conftest import LaunchNode
from .scenario import (
    assert_delivery,
    assert_no_closes,
    close_all,
    errors_after,
    everyone,
    figure,
    open_members,
    reasons,
    run_publishers,
)

pytestmark = pytest.mark.chaos


@pytest.fixture
def ha_cluster() -> Iterator[BreakableCluster]:
    """Three masters with a replica each, started for this test (it kills one)."""
    binary = shutil.which("redis-server")
    assert binary is not None
    with cluster_with_replicas(binary) as cluster:
        yield cluster


async def served_again(cluster: BreakableCluster, slot: int, old: ClusterNode) -> float:
    """When a node other than ``old`` serves ``slot`` (polled every 100 ms)."""
    async with asyncio.timeout(15):
        while True:
            if (await asyncio.to_thread(cluster.owner, slot)) is not old:
                return time.monotonic()
            await asyncio.sleep(0.1)


async def test_master_failover_under_traffic(
    ha_cluster: BreakableCluster, launch: LaunchNode, prefix
):
    """Kill the master that owns a busy group's slot while 100 clients talk: the bridge
    re-subscribes on the promoted replica, no socket closes, no message is lost silently."""
    a = launch(ha_cluster.url, "nodeA")
    b = launch(ha_cluster.url, "nodeB")
    members, publishers = await open_members({"A": a.ws, "B": b.ws}, per_node=25)
    slot = key_slot(f"{prefix}g:g1".encode())
    victim = ha_cluster.owner(slot)
    # Known before the kill: afterwards the promoted replica owns the victim's slots.
    g2_elsewhere = ha_cluster.owner(key_slot(f"{prefix}g:g2".encode())).port != victim.port
    start = time.monotonic()
    traffic = asyncio.create_task(run_publishers(publishers, start + 15))
    await asyncio.sleep(3)
    ha_cluster.kill(victim)
    killed = time.monotonic()
    promoted = await served_again(ha_cluster, slot, victim)
    await traffic
    await asyncio.sleep(1.5)
    try:
        check_failover(members, publishers, killed, promoted, g2_elsewhere)
    finally:
        await close_all(members)


def check_failover(members, publishers, killed, promoted, g2_elsewhere) -> None:
    """What the failover test asserts once the traffic is over."""
    assert_no_closes(members)
    healthy = promoted + 3.0
    reports = assert_delivery(members, publishers, healthy_after=healthy)
    assert errors_after(publishers, healthy) == []  # publishing goes to the promoted replica
    announced = {m.name for m in everyone(members) if m.resyncs()}
    figure("cluster failover: slot served again after (s)", promoted - killed)
    figure("cluster failover: clients", len(everyone(members)))
    figure(
        "cluster failover: messages expected / lost (all announced)",
        f"{sum(r.expected for r in reports.values())} / {sum(r.lost for r in reports.values())}",
    )
    figure("cluster failover: resync reasons", ", ".join(sorted(reasons(everyone(members)))))
    # The failed shard's streams are announced to their members (its data may lag).
    assert {m.name for m in members["g1"]} <= announced
    # Only the failed shard's streams were affected: g2 lives elsewhere unless it shares it.
    figure("cluster failover: g2 on another shard", g2_elsewhere)
    if g2_elsewhere:
        assert reports["g2"].lost == 0


def migrate_slot(cluster: BreakableCluster, slot: int, to: ClusterNode) -> None:
    """Move ``slot`` and its keys to ``to``: IMPORTING, MIGRATING, MIGRATE, then SETSLOT NODE
    everywhere (the source then pushes ``sunsubscribe`` to its shard-channel subscribers)."""
    source = cluster.owner(slot)
    src, dst = source.client(), to.client()
    dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source.node_id)
    src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", to.node_id)
    while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
        src.execute_command("MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "KEYS", *keys)
    for node in cluster.masters:
        node.client().execute_command("CLUSTER SETSLOT", slot, "NODE", to.node_id)


async def test_a_slot_in_use_migrates_under_traffic(
    ha_cluster: BreakableCluster, launch: LaunchNode, prefix
):
    """The slot of a busy group's channel moves to another master while its members talk:
    the bridge follows it (sunsubscribe pushed, MOVED/ASK on publish), and history moved with
    the keys fills what it missed, or a resync announces it."""
    a = launch(ha_cluster.url, "nodeA")
    b = launch(ha_cluster.url, "nodeB")
    members, publishers = await open_members({"A": a.ws, "B": b.ws}, per_node=5)
    channel = f"{prefix}g:g1"
    slot = key_slot(channel.encode())
    source = ha_cluster.owner(slot)
    target = next(m for m in ha_cluster.masters if m.port != source.port)
    start = time.monotonic()
    traffic = asyncio.create_task(run_publishers(publishers, start + 9))
    await asyncio.sleep(3)
    await asyncio.to_thread(migrate_slot, ha_cluster, slot, target)
    moved = time.monotonic()
    await traffic
    await asyncio.sleep(1.5)
    subscribers = target.client().execute_command("PUBSUB SHARDNUMSUB", channel)
    assert_no_closes(members)
    healthy = moved + 2.0
    reports = assert_delivery(members, publishers, healthy_after=healthy)
    assert errors_after(publishers, healthy) == []
    figure(
        "slot migration: messages expected / lost (all announced)",
        f"{sum(r.expected for r in reports.values())} / {sum(r.lost for r in reports.values())}",
    )
    figure("slot migration: resync reasons", ", ".join(sorted(reasons(everyone(members)))) or "-")
    assert subscribers == [(channel.encode(), 2)]  # both nodes subscribe on the new owner
    await close_all(members)
