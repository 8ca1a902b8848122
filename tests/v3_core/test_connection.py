"""Connection's write paths with a recording Sender: straight writes, backlog order, slow close."""

from __future__ import annotations

from v3_core.connection import Connection, Outgoing, QueueLimits, V3Dialect
from v3_core.ids import ConnId

from ..helpers import wait_until
from ..support.senders import RecordingSender


def connection(sender: RecordingSender, **limits) -> Connection:
    return Connection(
        conn_id=ConnId("c1"),
        group_id="g",
        client_id="alice",
        sender=sender,
        dialect=V3Dialect(),
        limits=QueueLimits(**limits),
    )


async def test_messages_before_the_handshake_wait_then_go_first():
    sender = RecordingSender()
    conn = connection(sender)
    conn.enqueue("early")
    assert sender.sent == []
    conn.start_writer()
    conn.enqueue("late")
    await wait_until(lambda: len(sender.sent) == 2)
    assert sender.sent == ["early", "late"]
    await conn.aclose()


async def test_what_came_during_the_handshake_is_written_straight_at_start():
    """Presence joins queued while a socket opens: written at once, no writer task for them."""
    sender = RecordingSender()
    conn = connection(sender)
    for text in ("join bob", "join carol"):
        conn.enqueue(text)
    conn.start_writer()
    assert sender.direct == ["join bob", "join carol"]  # before any task could run
    assert conn._writer is None


async def test_what_the_socket_does_not_take_at_start_is_left_to_the_writer_in_order():
    sender = RecordingSender()
    conn = connection(sender)
    conn.enqueue("first")
    sender.writable = False
    conn.start_writer()
    assert conn._writer is not None
    sender.writable = True
    conn.enqueue("second")  # behind the backlog, not straight to the socket
    await wait_until(lambda: len(sender.sent) == 2)
    assert sender.sent == ["first", "second"]
    await conn.aclose()


async def test_a_keeping_up_client_is_written_straight_without_a_task():
    sender = RecordingSender()
    conn = connection(sender)
    conn.start_writer()
    for i in range(3):
        conn.enqueue(str(i))
    assert sender.direct == ["0", "1", "2"]
    assert conn._writer is None


async def test_backlog_keeps_order_when_the_socket_frees_up():
    sender = RecordingSender()
    conn = connection(sender)
    conn.start_writer()
    conn.enqueue("a")
    sender.writable = False
    sender.release.clear()
    conn.enqueue("b")
    conn.enqueue("c")
    sender.writable = True
    conn.enqueue("d")  # must not overtake b and c, although the socket is writable again
    sender.release.set()
    await wait_until(lambda: len(sender.sent) == 4)
    assert sender.sent == ["a", "b", "c", "d"]
    conn.enqueue("e")
    assert sender.direct[-1] == "e"


async def test_overflowing_the_queue_closes_with_4008():
    sender = RecordingSender()
    conn = connection(sender, max_bytes=1024)
    conn.start_writer()
    sender.writable = False
    sender.release.clear()
    for _ in range(20):
        conn.enqueue("x" * 100)
    assert sender.closed == (4008, "slow consumer")
    assert conn.closing


async def test_one_outgoing_object_is_shared_by_all_recipients():
    message = Outgoing("same")
    senders = [RecordingSender() for _ in range(3)]
    for sender in senders:
        conn = connection(sender)
        conn.start_writer()
        conn.deliver(message)
    assert [s.direct for s in senders] == [["same"]] * 3
