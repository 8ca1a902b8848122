"""PresenceKeeper: keeps this node's members listed in the presence store, and announces
who comes and goes.

Entries expire after the TTL unless refreshed, so a node re-touches its own members three times
per TTL (`refresh_interval`) and sweeps the groups it holds for entries another node left to
expire. After an outage long enough for its entries to expire it re-adds them all and
announces the joins other nodes may have missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .backends.base import Broker, PresenceStore
from .connection import Connection
from .errors import BackendUnavailable
from .presence import PresenceEvent, presence_event, refresh_interval
from .registry import LocalRegistry
from .routing import Channels, Envelope
from .stats import ManagerStats

log = logging.getLogger("aether.manager")

RETRY_REFRESH = 1.0  # seconds between presence refresh attempts while the store fails
REJOIN_BATCH = 32  # concurrent presence calls when re-registering after an outage
REFRESH_SLICE = 100  # connections per presence touch in a paced refresh


class PresenceKeeper:
    """The manager's presence upkeep: `run` is its background task."""

    def __init__(
        self,
        presence: PresenceStore,
        broker: Broker,
        registry: LocalRegistry[Connection],
        *,
        node_id: str,
        channels: Channels,
        ttl: float,
        stats: ManagerStats,
    ) -> None:
        self._presence = presence
        self._broker = broker
        self._registry = registry
        self._node_id = node_id
        self._channels = channels
        self._ttl = ttl
        self._stats = stats
        self._due = asyncio.Event()  # set: refresh now, not at the next tick
        self._refreshed_at = 0.0  # loop time of the last refresh that succeeded

    async def announce(self, group_id: str, client_id: str, event: PresenceEvent) -> None:
        """Tell the members of ``group_id`` that ``client_id`` came online or went offline."""
        envelope = Envelope(origin=self._node_id, text=presence_event(group_id, client_id, event))
        try:
            await self._broker.publish(self._channels.group(group_id), envelope.pack())
        except BackendUnavailable as exc:
            log.warning("could not announce %s of %s in %s: %s", event, client_id, group_id, exc)

    def refresh_now(self) -> None:
        """Refresh at once (the broker reconnected: Redis may have restarted empty)."""
        self._due.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = refresh_interval(self._ttl)
        wait = interval
        self._refreshed_at = loop.time()
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), wait)
            self._due.clear()
            started = loop.time()
            try:
                if started - self._refreshed_at > self._ttl / 2:
                    # Cut off long enough for our entries to expire: other nodes may have swept
                    # them and announced a leave, which a silent refresh would never undo.
                    await self.rejoin()
                await self.refresh_and_sweep()
                self._refreshed_at = started
            except BackendUnavailable as exc:
                if not failing:
                    log.warning("presence refresh failed: %s", exc)
                failing = True
                # Retry soon: entries are expiring while the store is unreachable.
                wait = min(interval, RETRY_REFRESH)
            else:
                failing = False
                # A paced refresh takes a while: keep one refresh per interval, start to start.
                wait = max(0.0, interval - (loop.time() - started))

    async def rejoin(self) -> None:
        """Re-add every local connection; announce a join for each client that was offline.

        `add` tells which clients had no live entry left. Some of those joins may be redundant
        (Redis restarted rather than swept them); a redundant join is harmless, a missing one
        leaves every other member believing the client is gone.
        """
        conns = [c for c in self._registry.connections if not c.closing]
        for start in range(0, len(conns), REJOIN_BATCH):
            batch = conns[start : start + REJOIN_BATCH]
            online = await asyncio.gather(
                *(self._presence.add(c.group_id, c.client_id, c.conn_id) for c in batch)
            )
            await self._drop_closed(batch)
            for conn, came_online in zip(batch, online, strict=True):
                if came_online and not conn.closing:
                    await self.announce(conn.group_id, conn.client_id, "join")

    async def refresh_and_sweep(self) -> None:
        """Touch every local connection's entry, then announce the leaves of expired ones."""
        # Paced: REFRESH_SLICE connections at a time, spread over a third of the interval, so
        # a big node's refresh never stalls its fan-out, nor Redis, for long at once.
        # Entries are built a slice at a time: tens of thousands of tuples alive across the
        # whole paced refresh would each survive into the oldest GC generation, and a node
        # that churns through that many long-lived objects runs full collections (a second
        # with the loop stopped, at 19,000 connections) far more often.
        conns = [c for c in self._registry.connections if not c.closing]
        slices = range(0, len(conns), REFRESH_SLICE)
        gap = refresh_interval(self._ttl) / 3 / len(slices) if slices else 0.0
        for start in slices:
            if start:
                await asyncio.sleep(gap)
            batch = conns[start : start + REFRESH_SLICE]
            await self._presence.touch([(c.group_id, c.client_id, c.conn_id) for c in batch])
        await self._drop_closed(conns)
        for group_id, client_id in await self._presence.sweep({c.group_id for c in conns}):
            self._stats.presence_expired += 1
            await self.announce(group_id, client_id, "leave")

    async def _drop_closed(self, conns: list[Connection]) -> None:
        """Remove again the entries of connections that closed while they were being re-added.

        A refresh re-adds a snapshot; if it reached Redis after a connection's own removal, the
        closed connection would stay listed until its entry expired (and then get a second
        leave). Its leave was already announced, so the result is ignored.
        """
        for conn in conns:
            if conn.closing:
                await self._presence.remove(conn.group_id, conn.client_id, conn.conn_id)
