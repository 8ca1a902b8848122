"""V2Control without sockets: admission, usage deltas, and a store that fails."""

from __future__ import annotations

from typing import cast

import pytest

from bridge.v2.control import V2Control
from bridge.v2.store import MemoryV2Store
from translators import legacy_tags
from v3_core import BackendUnavailable, ConnectionRejected
from v3_core.connection import Connection


class FlakyStore(MemoryV2Store):
    """A memory store whose calls fail while ``down`` is set."""

    down = False

    async def policy(self):
        if self.down:
            raise BackendUnavailable("down")
        return await super().policy()

    async def record(self, delta):
        if self.down:
            raise BackendUnavailable("down")
        await super().record(delta)


class LegacyConn:
    """The attributes V2Control reads from a Connection (hashable by identity, like one)."""

    def __init__(self) -> None:
        self.group_id, self.client_id = "grp_a", "dev_1"
        self.tags = legacy_tags(group="3")
        self.messages_in = 0


def legacy_conn() -> Connection:
    """A LegacyConn where V2Control expects a Connection (it reads no more than the above)."""
    return cast(Connection, LegacyConn())


async def test_admit_counts_refusals_and_track_counts_warnings_sent():
    v2 = V2Control(MemoryV2Store(), clock=lambda: 100.0)
    await v2.set_mode(None, "warn")
    assert v2.admit("grp_a", "dev_1") is not None
    assert v2.stats.warned == 0  # not sent yet: the socket may still be refused
    with v2.track(legacy_conn(), greeted=True):
        pass
    await v2.set_mode("grp_a", "closed")
    with pytest.raises(ConnectionRejected) as refused:
        v2.admit("grp_a", "dev_1")
    assert refused.value.close_code == 1008
    assert (v2.stats.warned, v2.stats.refused) == (1, 1)


async def test_collect_takes_only_what_is_new():
    v2 = V2Control(MemoryV2Store(), clock=lambda: 100.0)
    conn = legacy_conn()
    with v2.track(conn):
        conn.messages_in = 3
        first = v2.collect()[("grp_a", "dev_1")]
        assert (first.messages, first.connects, first.last_seen) == (3, 1, 100.0)
        conn.messages_in = 5
        assert v2.collect()[("grp_a", "dev_1")].messages == 2
        assert v2.messages_total == 5
    closing = v2.collect()[("grp_a", "dev_1")]  # a close counts as seen, with no new frames
    assert (closing.messages, closing.connects) == (0, 0)
    assert v2.collect() == {}
    assert (v2.connections, v2.messages_total) == (0, 5)


async def test_a_failed_flush_is_retried_and_the_last_policy_kept():
    store = FlakyStore()
    v2 = V2Control(store)
    await v2.set_mode(None, "closed")
    store.down = True
    await v2.refresh()
    assert v2.mode_for("grp_a") == "closed"
    conn = legacy_conn()
    with v2.track(conn):
        conn.messages_in = 2
        await v2.flush()
    store.down = False
    await v2.flush()
    [group] = await store.usage()
    assert (group.clients[0].messages, group.clients[0].connects) == (2, 1)


async def test_set_mode_raises_when_the_store_is_down():
    store = FlakyStore()
    store.down = True
    with pytest.raises(BackendUnavailable):
        await V2Control(store).set_mode(None, "warn")
