"""A recovering connection: replay and live messages merged by offset, over any interleaving."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from v3_core.connection import Connection, Outgoing, QueueLimits, V3Dialect
from v3_core.ids import ConnId
from v3_core.streams import Position

from ..support.senders import RecordingSender

CHANNEL = "t:g:g"


def message(offset: int) -> Outgoing:
    return Outgoing(str(offset), CHANNEL, Position("e", offset))


@st.composite
def interleavings(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    """(n published, s seen by the client, k first live, m newest read, j first after release).

    The node registers the connection before it reads history, so live delivery starts at
    some k (anything published earlier may still be in flight) and the read holds everything
    up to at least k - 1; live messages before j arrive while the replay is held back.
    """
    n = draw(st.integers(0, 30))
    s = draw(st.integers(0, n))
    k = draw(st.integers(1, n + 1))
    m = draw(st.integers(max(s, k - 1), n))
    j = draw(st.integers(k, n + 1))
    return n, s, k, m, j


@settings(deadline=None)
@given(interleavings())
def test_each_missed_message_once_in_order_whatever_the_interleaving(case):
    n, s, k, m, j = case

    async def run() -> list[str]:
        sender = RecordingSender()
        conn = Connection(
            conn_id=ConnId("c1"),
            group_id="g",
            client_id="alice",
            sender=sender,
            dialect=V3Dialect(),
            limits=QueueLimits(),
            recover={CHANNEL: Position("e", s)},
        )
        conn.enqueue("reply")  # an echo reply waits behind the replay too
        conn.start_writer()
        for offset in range(k, j):
            conn.deliver(message(offset))
        assert sender.sent == []  # held until the replay is sent
        replayed = {CHANNEL: Position("e", max(s, m))}
        await conn.replay([message(o) for o in range(s + 1, m + 1)], replayed)
        for offset in range(j, n + 1):
            conn.deliver(message(offset))
        await conn.aclose()
        return sender.sent

    received = asyncio.run(run())
    assert [r for r in received if r != "reply"] == [str(o) for o in range(s + 1, n + 1)]
    assert received.count("reply") == 1


async def test_after_a_replay_a_new_epoch_is_not_mistaken_for_copies():
    """History expired (or Redis restarted empty) after the replay: the new epoch starts at
    offset 1 again, below what was replayed, and must still be delivered."""
    sender = RecordingSender()
    conn = Connection(
        conn_id=ConnId("c1"),
        group_id="g",
        client_id="alice",
        sender=sender,
        dialect=V3Dialect(),
        limits=QueueLimits(),
        recover={CHANNEL: Position("e", 2)},
    )
    conn.start_writer()
    await conn.replay([message(3), message(4)], {CHANNEL: Position("e", 4)})
    for offset in (1, 2):
        conn.deliver(Outgoing(f"new {offset}", CHANNEL, Position("f", offset)))
    assert sender.sent == ["3", "4", "new 1", "new 2"]
    await conn.aclose()
