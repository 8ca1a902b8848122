"""The PresenceStore contract, run on every implementation (TTL 0.5 s)."""

from __future__ import annotations

import asyncio

from .conftest import TTL


async def test_first_connection_brings_a_client_online(make_presence):
    store = make_presence()
    assert await store.add("g", "alice", "c1") is True
    assert await store.members("g") == ["alice"]


async def test_second_tab_does_not_announce_again_and_is_listed_once(make_presence):
    store = make_presence()
    await store.add("g", "alice", "c1")
    assert await store.add("g", "alice", "c2") is False
    assert await store.members("g") == ["alice"]


async def test_client_goes_offline_with_its_last_tab(make_presence):
    store = make_presence()
    await store.add("g", "alice", "c1")
    await store.add("g", "alice", "c2")
    assert await store.remove("g", "alice", "c1") is False
    assert await store.members("g") == ["alice"]
    assert await store.remove("g", "alice", "c2") is True
    assert await store.members("g") == []


async def test_removing_twice_announces_once(make_presence):
    store = make_presence()
    await store.add("g", "alice", "c1")
    assert await store.remove("g", "alice", "c1") is True
    assert await store.remove("g", "alice", "c1") is False


async def test_groups_are_separate(make_presence):
    store = make_presence()
    await store.add("g1", "alice", "c1")
    await store.add("g2", "bob", "c2")
    assert await store.members("g1") == ["alice"]
    assert await store.members("g2") == ["bob"]
    assert await store.members("empty") == []


async def test_entries_expire_after_the_ttl(make_presence):
    store = make_presence()
    await store.add("g", "alice", "c1")
    await asyncio.sleep(TTL * 1.5)
    assert await store.members("g") == []


async def test_touch_keeps_entries_alive(make_presence):
    store = make_presence()
    await store.add("g", "alice", "c1")
    for _ in range(4):
        await asyncio.sleep(TTL / 3)
        await store.touch([("g", "alice", "c1")])
    assert await store.members("g") == ["alice"]


async def test_expire_returns_each_expired_client_to_exactly_one_node(make_presence):
    node_a, node_b = make_presence(), make_presence()
    await node_a.add("g", "alice", "c1")
    await node_a.add("g", "bob", "c2")
    await asyncio.sleep(TTL * 1.5)
    await node_b.add("g", "carol", "c3")
    first, second = await asyncio.gather(node_a.expire("g"), node_b.expire("g"))
    assert sorted(first + second) == ["alice", "bob"]
    assert await node_b.members("g") == ["carol"]


async def test_expire_keeps_a_client_with_one_live_tab(make_presence):
    store = make_presence()
    await store.add("g", "alice", "old")
    await asyncio.sleep(TTL * 1.5)
    await store.add("g", "alice", "new")
    assert await store.expire("g") == []
    assert await store.members("g") == ["alice"]


async def test_remove_after_expiry_announced_does_not_announce_again(make_presence):
    store = make_presence()
    await store.add("g", "alice", "c1")
    await asyncio.sleep(TTL * 1.5)
    assert await store.expire("g") == ["alice"]
    assert await store.remove("g", "alice", "c1") is False


async def test_stores_share_state_like_nodes(make_presence):
    node_a, node_b = make_presence(), make_presence()
    assert await node_a.add("g", "alice", "c1") is True
    assert await node_b.add("g", "alice", "c2") is False
    assert await node_a.members("g") == await node_b.members("g") == ["alice"]


async def test_touch_refreshes_every_entry_of_a_large_batch(make_presence):
    """A node refreshes all its connections at once; every one of them must stay alive."""
    store = make_presence()
    entries = [("g", f"c{i}", f"conn{i}") for i in range(250)]
    for entry in entries:
        await store.add(*entry)
    for _ in range(4):
        await asyncio.sleep(TTL / 3)
        await store.touch(entries)
    assert len(await store.members("g")) == 250
