"""Membership: where an open connection is listed, kept in step as connections come and go.

A connection is listed in three places: this node's registry, the broker channels the node
listens on, and the cluster's presence. A channel is subscribed when its first local member
arrives (before that member's handshake completes) and dropped with the last; a client's join
is announced when its first connection anywhere arrives, its leave when its last one goes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from .backends.base import Broker, PresenceStore
from .connection import Connection
from .errors import BackendUnavailable, CloseCode, ConnectionRejected
from .logthrottle import ThrottledLog
from .node_streams import NodeStreams
from .presence import PresenceEvent
from .registry import LocalRegistry
from .routing import Channels
from .stats import ManagerStats

log = logging.getLogger("aether.manager")

Announce = Callable[[str, str, PresenceEvent], Awaitable[None]]
"""``(group_id, client_id, event)``: tell a group that one of its clients came or went."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Connections one node admits; 0 means no limit (scenarios X7, X11 in docs/reliability.md).

    Counted per node (per process) from the registry, so the check costs no Redis round trip
    on connect; a cluster-wide count would. Across N nodes a client may hold N × per_client.
    """

    per_client: int = 0  # connections of one client_id, any group; over it: 4529
    per_node: int = 0  # all connections of this node; over it: 1013, try another node

    def __post_init__(self) -> None:
        if self.per_client < 0 or self.per_node < 0:
            raise ValueError("connection limits must be >= 0 (0: no limit)")


class Membership:
    """The manager's connection side: `join` lists a connection everywhere, `leave` unlists it."""

    def __init__(
        self,
        broker: Broker,
        presence: PresenceStore,
        registry: LocalRegistry[Connection],
        *,
        streams: NodeStreams,
        channels: Channels,
        limits: ConnectionLimits,
        stats: ManagerStats,
        announce: Announce,
    ) -> None:
        self._broker = broker
        self._presence = presence
        self._registry = registry
        self._streams = streams
        self._channels = channels
        self._limits = limits
        self._stats = stats
        self._announce = announce
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        self._throttled_log = ThrottledLog(log)  # lines anonymous clients can cause

    async def join(self, conn: Connection) -> None:
        """Register, subscribe and list ``conn``; announce its client's join if it came online.

        Raises ConnectionRejected: 1013 when the broker is down or the node is at its
        connection limit, 4529 when the client is at its own.
        """
        group_id, client_id = conn.group_id, conn.client_id
        # Checked and registered with no await between, so concurrent connects count each other.
        self._check_limits(client_id)
        channels = self._channels_of(conn)
        first = self._registry.add(conn, channels)
        try:
            await self._subscribe(first, channels)
            came_online = await self._presence.add(group_id, client_id, conn.conn_id)
        except BackendUnavailable as exc:
            self._stats.connections_rejected += 1
            # Ops need the cause (Redis down, or too slow for the node's load); one line per
            # interval, since every client retrying would log one.
            self._throttled_log.log(
                "backend-refusal", logging.WARNING, "refusing %r with 1013: %s", conn, exc
            )
            await self._unregister(conn)
            raise ConnectionRejected(
                CloseCode.TRY_AGAIN_LATER, "message broker unavailable; retry with backoff"
            ) from exc
        self._stats.connections_opened += 1
        if came_online:
            await self._announce(group_id, client_id, "join")

    async def leave(self, conn: Connection) -> None:
        """Unregister ``conn`` and drop its presence; announce its client's leave if it went."""
        await self._unregister(conn)
        try:
            went_offline = await self._presence.remove(conn.group_id, conn.client_id, conn.conn_id)
        except BackendUnavailable as exc:
            # The entry expires after the TTL and a sweep announces the leave then.
            log.warning("presence remove failed for %r: %s", conn, exc)
            return
        if went_offline:
            await self._announce(conn.group_id, conn.client_id, "leave")

    def _check_limits(self, client_id: str) -> None:
        """Refuse a connection over a limit before it touches the registry, broker or presence.

        Both counts are this node's, read from the registry: O(1), and no Redis round trip.
        """
        limits = self._limits
        if limits.per_client:
            held = len(self._registry.members(self._channels.client(client_id)))
            if held >= limits.per_client:
                self._stats.client_limit_refusals += 1
                # Anyone may retry in a loop: one line per interval, with the count since.
                self._throttled_log.log(
                    "per-client-cap",
                    logging.WARNING,
                    "refusing client %r: %d connections on this node already",
                    client_id[:40],
                    held,
                )
                raise ConnectionRejected(
                    CloseCode.RATE_LIMITED,
                    f"too many connections for client {client_id[:40]!r} on this node "
                    f"(limit {limits.per_client})",
                )
        if limits.per_node and len(self._registry) >= limits.per_node:
            # Not logged one by one: a full node would log every retry. The counter shows it.
            self._stats.node_limit_refusals += 1
            raise ConnectionRejected(
                CloseCode.TRY_AGAIN_LATER, "node at its connection limit; retry with backoff"
            )

    def _channels_of(self, conn: Connection) -> tuple[str, ...]:
        return (
            self._channels.group(conn.group_id),
            self._channels.client(conn.client_id),
            self._channels.broadcast,
        )

    async def _subscribe(self, first: list[str], channels: Iterable[str]) -> None:
        # A channel another connection is still subscribing to is not live yet: wait for it.
        await self._subscribe_each(first, channels)
        if first and self._broker.history.enabled:
            # Where each new stream stood, so a gap in it can be measured and filled.
            await asyncio.gather(*(self._learn_position(channel) for channel in first))

    async def _learn_position(self, channel: str) -> None:
        try:
            self._streams.learn(channel, await self._broker.position(channel))
        except BackendUnavailable as exc:
            log.warning("no position for %s: a gap in it will resync: %s", channel, exc)

    async def _subscribe_each(self, first: list[str], channels: Iterable[str]) -> None:
        loop = asyncio.get_running_loop()
        for channel in channels:
            if channel in first:
                done = self._subscribing[channel] = loop.create_future()
                done.add_done_callback(_retrieve)
                try:
                    await self._broker.subscribe(channel)
                except BaseException as exc:
                    done.set_exception(BackendUnavailable(str(exc)))
                    raise
                else:
                    done.set_result(None)
                finally:
                    if self._subscribing.get(channel) is done:
                        del self._subscribing[channel]
            elif (pending := self._subscribing.get(channel)) is not None:
                await asyncio.shield(pending)

    async def _unregister(self, conn: Connection) -> None:
        dropped = self._registry.remove(conn)
        self._streams.forget(dropped)
        for channel in dropped:
            await self._broker.unsubscribe(channel)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
