"""What the PresenceStore Protocol promises, run on every implementation (TTL 0.5 s)."""

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
    await asyncio.sleep(TTL * 1.5)  # time passes: past the TTL (the point)
    assert await store.members("g") == []


async def test_touch_keeps_entries_alive(make_presence):
    store = make_presence()
    await store.add("g", "alice", "c1")
    for _ in range(4):
        await asyncio.sleep(TTL / 3)  # a third of the TTL between touches
        await store.touch([("g", "alice", "c1")])
    assert await store.members("g") == ["alice"]


async def test_expire_returns_each_expired_client_to_exactly_one_node(make_presence):
    node_a, node_b = make_presence(), make_presence()
    await node_a.add("g", "alice", "c1")
    await node_a.add("g", "bob", "c2")
    await asyncio.sleep(TTL * 1.5)  # time passes: past the TTL (the point)
    await node_b.add("g", "carol", "c3")
    first, second = await asyncio.gather(node_a.expire("g"), node_b.expire("g"))
    assert sorted(first + second) == ["alice", "bob"]
    assert await node_b.members("g") == ["carol"]


async def test_expire_keeps_a_client_with_one_live_tab(make_presence):
    store = make_presence()
    await store.add("g", "alice", "old")
    await asyncio.sleep(TTL * 1.5)  # time passes: past the TTL (the point)
    await store.add("g", "alice", "new")
    assert await store.expire("g") == []
    assert await store.members("g") == ["alice"]


async def test_remove_after_expiry_announced_does_not_announce_again(make_presence):
    store = make_presence()
    await store.add("g", "alice", "c1")
    await asyncio.sleep(TTL * 1.5)  # time passes: past the TTL (the point)
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
        await asyncio.sleep(TTL / 3)  # a third of the TTL between touches
        await store.touch(entries)
    assert len(await store.members("g")) == 250


async def test_touch_across_many_groups_keeps_only_what_it_touches(make_presence):
    """A node's refresh spans many groups and second tabs; what it leaves out still expires."""
    store = make_presence()
    touched = [(f"g{i % 37}", f"c{i}", f"conn{i}") for i in range(1200)]
    touched += [("g0", "c0", "second-tab"), ("g1", "c1", "second-tab")]
    forgotten = [("g0", "gone", "conn-x"), ("g5", "gone-too", "conn-y")]
    for entry in touched + forgotten:
        await store.add(*entry)
    for _ in range(4):
        await asyncio.sleep(TTL / 3)  # a third of the TTL between touches
        await store.touch(touched)
    for group in ("g0", "g5"):
        expected = sorted({c for g, c, _ in touched if g == group})
        assert sorted(await store.members(group)) == expected
        assert await store.expire(group) in (["gone"], ["gone-too"])
    assert await store.remove("g0", "c0", "conn0") is False  # its second tab was touched too
    assert await store.remove("g0", "c0", "second-tab") is True


async def test_sweep_returns_the_expired_clients_of_every_group_once(make_presence):
    node_a, node_b = make_presence(), make_presence()
    groups = [f"g{i}" for i in range(60)]  # more than one pipeline's worth on Redis
    for group in groups:
        await node_a.add(group, "gone", f"{group}-1")
    await node_a.add("g7", "gone-too", "x")
    await asyncio.sleep(TTL * 1.5)  # time passes: past the TTL (the point)
    await node_a.add("g7", "stays", "y")
    first, second = await asyncio.gather(node_a.sweep(groups), node_b.sweep(groups))
    assert sorted(first + second) == sorted([(g, "gone") for g in groups] + [("g7", "gone-too")])
    assert await node_a.members("g7") == ["stays"]
    assert await node_a.sweep([]) == []
