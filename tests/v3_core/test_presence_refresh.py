"""A node's periodic presence refresh: paced, complete, one per interval (embedded backends)."""

from __future__ import annotations

import asyncio
import contextlib

from v3_core import Channels, ConnectionManager
from v3_core.backends import MemoryHub, MemoryPresenceStore
from v3_core.presence import refresh_interval
from v3_core.presence_keeper import REFRESH_SLICE

from ..helpers import memory_backends
from ..support.senders import RecordingSender

TTL = 1.5  # refresh every 0.5 s, paced over a third of that


class RecordingPresence(MemoryPresenceStore):
    """Notes when each touch came and how many connections it carried."""

    def __init__(self, hub: MemoryHub) -> None:
        super().__init__(ttl=TTL, hub=hub)
        self.touches: list[tuple[float, int]] = []

    async def touch(self, entries: list[tuple[str, str, str]]) -> None:
        self.touches.append((asyncio.get_running_loop().time(), len(entries)))
        await super().touch(entries)


async def test_a_big_refresh_is_paced_in_slices_and_comes_once_per_interval():
    hub = MemoryHub()
    presence = RecordingPresence(hub)
    backends = memory_backends(hub, presence=presence)
    conns = 2 * REFRESH_SLICE + 50
    async with (
        ConnectionManager(
            backends, node_id="n1", channels=Channels("t:"), presence_ttl=TTL
        ) as manager,
        contextlib.AsyncExitStack() as stack,
    ):
        for i in range(conns):
            await stack.enter_async_context(
                manager.connect(f"g{i % 7}", f"c{i}", RecordingSender())
            )
        await asyncio.sleep(3.5 * refresh_interval(TTL))
        # Everything a refresh saw is still online.
        assert sum([len(await presence.members(f"g{i}")) for i in range(7)]) == conns

    # rounds: runs of touches closer together than half an interval
    rounds: list[list[tuple[float, int]]] = []
    for at, n in presence.touches:
        if not rounds or at - rounds[-1][-1][0] > refresh_interval(TTL) / 2:
            rounds.append([])
        rounds[-1].append((at, n))
    rounds = [r for r in rounds if sum(n for _, n in r) == conns]  # whole rounds only
    assert len(rounds) >= 2, presence.touches
    interval = refresh_interval(TTL)
    for touches in rounds[:2]:
        assert [n for _, n in touches] == [REFRESH_SLICE, REFRESH_SLICE, 50]
        spread = touches[-1][0] - touches[0][0]
        # spread over a third of the interval: neither all at once nor longer than that
        assert interval / 3 * 0.5 <= spread <= interval / 3 + 0.05
    # start to start, one refresh per interval even though each one takes a while
    assert abs((rounds[1][0][0] - rounds[0][0][0]) - interval) < 0.08
