"""The manager's writer watchdog: a send that lasts ``send_timeout`` closes its connection."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from v3_core import ConnectionManager
from v3_core.connection import Connection, QueueLimits, SendsInProgress

from ..helpers import embedded_manager, wait_until
from ..support.senders import RecordingSender

SEND_TIMEOUT = 0.4


def manager(limits: QueueLimits | None = None) -> ConnectionManager:
    return embedded_manager(limits=limits or QueueLimits(send_timeout=SEND_TIMEOUT))


def block(sender: RecordingSender, conn: Connection) -> None:
    """Start a send that never completes, as to a client that stopped reading."""
    sender.writable = False
    sender.release.clear()
    conn.enqueue("stuck")


async def wait_aborted(sender: RecordingSender, within: float) -> None:
    await wait_until(lambda: sender.closed is not None, within)


async def test_each_stuck_send_is_closed_once_it_has_lasted_the_timeout():
    loop = asyncio.get_running_loop()
    first, second, reading = RecordingSender(), RecordingSender(), RecordingSender()
    async with manager() as nodes, contextlib.AsyncExitStack() as stack:
        conns = [
            await stack.enter_async_context(nodes.connect("g", name, sender))
            for name, sender in (("first", first), ("second", second), ("reading", reading))
        ]
        for conn in conns:
            conn.start_writer()
        # The watchdog has just made a pass; sends starting now, and a little later, must
        # each be closed at their own deadline, not a whole pass late or early.
        await asyncio.sleep(0.05)
        block(first, conns[0])
        first_started = loop.time()
        await asyncio.sleep(SEND_TIMEOUT / 2)
        block(second, conns[1])
        second_started = loop.time()
        conns[2].enqueue("fine")

        await wait_aborted(first, within=5)
        assert loop.time() - first_started >= SEND_TIMEOUT
        assert second.closed is None or loop.time() - second_started >= SEND_TIMEOUT
        await wait_aborted(second, within=5)
        assert loop.time() - second_started >= SEND_TIMEOUT

    assert first.closed == second.closed == (4008, "slow consumer")
    assert reading.closed is None
    assert "fine" in reading.sent


async def test_a_send_that_completes_in_time_is_left_alone():
    sender = RecordingSender()
    async with manager() as nodes, nodes.connect("g", "alice", sender) as conn:
        conn.start_writer()
        block(sender, conn)
        await asyncio.sleep(SEND_TIMEOUT / 2)
        sender.release.set()  # the client read in time
        await asyncio.sleep(3 * SEND_TIMEOUT)
        assert sender.closed is None
        assert "stuck" in sender.sent


async def test_with_no_send_in_progress_the_watchdog_sleeps_a_whole_timeout(
    monkeypatch: pytest.MonkeyPatch,
):
    passes = 0
    overdue = SendsInProgress.overdue

    def counting(
        self: SendsInProgress, now: float, timeout: float
    ) -> tuple[list[Connection], float]:
        nonlocal passes
        passes += 1
        return overdue(self, now, timeout)

    monkeypatch.setattr(SendsInProgress, "overdue", counting)
    limits = QueueLimits(send_timeout=2.0)
    async with manager(limits) as nodes, nodes.connect("g", "alice", RecordingSender()):
        await asyncio.sleep(3.0)
    # one pass at start and one 2 s later; the old half-second cadence made five
    assert 1 <= passes <= 3


async def test_a_pass_reads_only_the_sends_under_way_and_forgets_each_when_it_ends(
    monkeypatch: pytest.MonkeyPatch,
):
    """At 19,000 connections a pass walked them all; it reads the few whose socket is full."""
    seen: list[int] = []
    overdue = SendsInProgress.overdue

    def recording(
        self: SendsInProgress, now: float, timeout: float
    ) -> tuple[list[Connection], float]:
        seen.append(len(self.started))
        return overdue(self, now, timeout)

    monkeypatch.setattr(SendsInProgress, "overdue", recording)
    senders = [RecordingSender() for _ in range(50)]
    async with manager() as nodes, contextlib.AsyncExitStack() as stack:
        conns = [
            await stack.enter_async_context(nodes.connect("g", f"c{i}", sender))
            for i, sender in enumerate(senders)
        ]
        for conn in conns:
            conn.start_writer()
        block(senders[7], conns[7])
        block(senders[8], conns[8])
        senders[8].release.set()  # this one reads in time
        await wait_aborted(senders[7], within=5)
        # the cancelled writer forgets its send too: nothing is kept alive by the watch
        await wait_until(lambda: all(conn.send_stuck_since() is None for conn in conns), 1)
    assert seen and max(seen) <= 2
    assert [s.closed for s in senders].count((4008, "slow consumer")) == 1
