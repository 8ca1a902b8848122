"""ConnectionManager (WS_Manager_V3): a node's connections, the broker and presence, together.

The manager handles what clients send (`receive`: reply, or `publish` through the broker) and
owns the parts that do the rest, each in its own module: `Membership` lists a connection in
the registry, the broker's channels and presence while it is open; `FanOut` hands what the
broker brings to the local connections, encoded once per dialect; `PresenceKeeper` keeps this
node's presence entries fresh; `watch_writers` closes connections whose sends hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType, TracebackType

from .backends.base import Backends
from .connection import Connection, Dialect, QueueLimits, Sender, SendsInProgress, V3Dialect
from .drain import close_all
from .errors import BackendUnavailable, CloseCode, ConnectionRejected, MessageRejected
from .fan_out import FanOut
from .ids import new_conn_id
from .latency import SAMPLE_MASK, Latencies
from .membership import ConnectionLimits, Membership
from .messages import MessageV3, encode
from .presence import heartbeat_reply, members_reply
from .presence_keeper import PresenceKeeper
from .ratelimit import RateLimit, may_be_heartbeat
from .recovery import ClientRecovery
from .refusals import RefusalSink
from .registry import LocalRegistry
from .routing import ECHO, NO_TAGS, Channels, Envelope, Tags
from .session import Session
from .stats import ManagerStats
from .streams import Position, StreamName
from .writer_watchdog import watch_writers

__all__ = ["ConnectionLimits", "ConnectionManager", "ManagerStats", "Session"]

log = logging.getLogger("aether.manager")
_perf_counter = time.perf_counter  # a module global: one lookup, not two, per timed message

SHUTDOWN_LEAVE_TIMEOUT = 3.0  # seconds the connections left at shutdown get to leave presence


class ConnectionManager:
    """Use as ``async with ConnectionManager(...) as manager`` for its background tasks."""

    def __init__(
        self,
        backends: Backends,
        *,
        node_id: str,
        channels: Channels,
        presence_ttl: float,
        limits: QueueLimits | None = None,
        allow_client_broadcast: bool = True,
        rate_limit: RateLimit | None = None,
        connection_limits: ConnectionLimits | None = None,
        refusals: RefusalSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_id = node_id
        self.channels = channels
        self.presence_ttl = presence_ttl
        self.stats = ManagerStats()
        self.latency = Latencies()
        self._observe_publish = self.latency.publish.observe  # bound once: the hot path's
        self._publish_tick = 0  # publishes are timed one in SAMPLE_MASK + 1
        self.refusals = refusals  # dead letters: told of refusals only, never of deliveries
        self.v3 = V3Dialect(allow_broadcast=allow_client_broadcast)
        self._broker = backends.broker
        self._presence = backends.presence
        self._limits = limits or QueueLimits()
        self._rate_limit = rate_limit
        self._clock = clock  # monotonic seconds, read once per inbound frame
        self._registry: LocalRegistry[Connection] = LocalRegistry()
        self._sends = SendsInProgress()  # what the writer watchdog looks at
        self._group_sizes: tuple[int, dict[str, int]] = (-1, {})  # registry.changes, sizes
        self.history = backends.broker.history
        self._keeper = PresenceKeeper(
            backends.presence,
            self._broker,
            self._registry,
            node_id=node_id,
            channels=channels,
            ttl=presence_ttl,
            stats=self.stats,
        )
        self._fan_out = FanOut(
            self._broker,
            self._registry,
            node_id=node_id,
            channels=channels,
            v3=self.v3,
            stats=self.stats,
            timing=self.latency.fan_out,
            refusals=refusals,
            clock=clock,
            on_reconnect=self._keeper.refresh_now,
        )
        self.streams = self._fan_out.streams
        self._membership = Membership(
            self._broker,
            backends.presence,
            self._registry,
            streams=self.streams,
            channels=channels,
            limits=connection_limits or ConnectionLimits(),
            stats=self.stats,
            announce=self._keeper.announce,
        )
        self.recovery = ClientRecovery(
            self._broker,
            backends.cursors,
            channels=channels,
            streams=self.streams,
            v3=self.v3,
            node_id=node_id,
            decode=self._fan_out.decode,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.draining = False  # shutting down: /readyz says 503 so no new clients come

    # -- lifetime ------------------------------------------------------------------------

    async def __aenter__(self) -> ConnectionManager:
        self._tasks = [
            asyncio.create_task(self._fan_out.run(), name="fan-out"),
            asyncio.create_task(self._keeper.run(), name="presence"),
            asyncio.create_task(
                watch_writers(self._sends, self._limits.send_timeout), name="writer-watchdog"
            ),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.streams.aclose()
        # Connections still open at shutdown leave presence now, not after the TTL; all at
        # once and bounded, so an unreachable Redis cannot hold the exit (entries expire).
        conns = self._registry.connections
        if conns:
            leaving = asyncio.gather(*(self.close(c) for c in conns))
            try:
                await asyncio.wait_for(leaving, SHUTDOWN_LEAVE_TIMEOUT)
            except TimeoutError:
                log.warning("%d connections left without a clean presence removal", len(conns))

    @property
    def ready(self) -> bool:
        return self._broker.ready and not self.draining

    async def close_all(self, code: int, reason: str, *, spread: float = 0.0) -> None:
        """Close every socket of a node that shuts down, legacy positions stored first.

        ``spread``: the closes are paced evenly over that many seconds (`drain.close_all`).
        """
        conns = [c for c in self._registry.connections if not c.closing]
        await close_all(conns, code, reason, spread=spread, leave_positions=self.leave_positions)

    async def ping(self) -> None:
        await self._broker.ping()

    def __len__(self) -> int:
        return len(self._registry)

    def group_sizes(self) -> Mapping[str, int]:
        """Local connections per group, for the ops page (each node heartbeat): O(channels),
        so counted again only after a connect or a close, not every beat of a quiet node."""
        registry, prefix = self._registry, self.channels.group("")
        counted_at, sizes = self._group_sizes
        if counted_at != registry.changes:
            sizes = {
                channel[len(prefix) :]: len(registry.members(channel))
                for channel in registry.channels
                if channel.startswith(prefix)
            }
            self._group_sizes = (registry.changes, sizes)
        return MappingProxyType(sizes)

    # -- connections ---------------------------------------------------------------------

    def connect(
        self,
        group_id: str,
        client_id: str,
        sender: Sender,
        *,
        dialect: Dialect | None = None,
        tags: Tags = NO_TAGS,
        recover: dict[StreamName, Position] | None = None,
    ) -> Session:
        """``async with manager.connect(...) as conn``: a registered connection.

        Its subscriptions are live when the block starts. The caller completes the WebSocket
        handshake inside the block, then calls ``conn.start_writer()`` and, for a connection
        that recovers (``recover``, or a legacy one with stored positions), ``recover()``
        before reading frames: live messages wait behind the replay. Entering raises
        ConnectionRejected: 1013 when the broker is down or the node is at its connection
        limit, 4529 when the client is at its own. ``tags``: what ``dialect`` attaches to the
        connection, carried on every message it sends (`Tags`).
        """
        conn = Connection(
            conn_id=new_conn_id(),
            group_id=group_id,
            client_id=client_id,
            sender=sender,
            dialect=dialect or self.v3,
            limits=self._limits,
            tags=tags,
            on_slow=self._count_slow,
            recover=self.channels.by_channel(group_id, client_id, recover) if recover else None,
            sends=self._sends,
        )
        return Session(self, conn)

    async def open(self, conn: Connection) -> None:
        """Register, subscribe and announce ``conn``; Session calls this on entry."""
        if conn.dialect is not self.v3 and self.history.enabled:
            await self.recovery.take_positions(conn)
        await self._membership.join(conn)

    async def close(self, conn: Connection) -> None:
        """Stop ``conn``'s writer, drop its subscriptions and presence; Session calls this."""
        await conn.aclose()
        await self.leave_positions(conn)
        await self._membership.leave(conn)

    def _count_slow(self, conn: Connection) -> None:
        self.stats.slow_consumers += 1
        if self.refusals is not None:
            lost = conn.undelivered()
            self.refusals.slow_consumer(conn, lost[0].text if lost else None)

    # -- inbound -------------------------------------------------------------------------

    async def receive(self, conn: Connection, text: str) -> None:
        """Handle one frame from a client: reply, publish, or answer with one error.

        Raises ConnectionRejected (4529) once the client has sent too many frames over its
        rate limit in a row; the frame that tipped it still gets its error reply first.
        """
        self.stats.messages_received += 1
        conn.messages_in += 1
        try:
            if self._rate_limit is None:
                message = await conn.dialect.parse(text, conn)
            else:
                message = await self._admit(conn, text, self._rate_limit)
            await self._handle(conn, message)
        except MessageRejected as rejected:
            stats = self.stats
            stats.messages_rejected += 1
            stats.error_replies[rejected.code] = stats.error_replies.get(rejected.code, 0) + 1
            conn.reply_error(rejected)
            if rejected.code == "rate-limited":
                self._count_rate_limited(conn)
            elif self.refusals is not None and conn.dialect is not self.v3:
                self.refusals.frame_refused(conn, text, rejected)

    async def _admit(self, conn: Connection, text: str, limit: RateLimit) -> MessageV3:
        """Charge the frame to the bucket before parsing it; parse only what may pass.

        Counting frames first costs a few float operations, covers invalid frames too, and
        keeps a flood from costing parses (or, on the V2 path, ID lookups). A heartbeat gets
        its token back, once a second; over the limit, a frame that may be a heartbeat is
        checked by `Dialect.heartbeat` (no translation, no I/O), while a free one is due.
        """
        now = self._clock()
        if limit.take(conn, now):
            message = await conn.dialect.parse(text, conn)
            if message.msg_type == "heartbeat":
                limit.free_heartbeat(conn, now, charged=True)
            return message
        if limit.heartbeat_due(conn, now) and may_be_heartbeat(text, conn.dialect.heartbeat_hints):
            # Not `parse`: over the limit nothing is translated or looked up (no ID store).
            beat = conn.dialect.heartbeat(text, conn)
            if beat is not None:
                limit.free_heartbeat(conn, now, charged=False)
                return beat
        raise limit.reject(conn, now)

    def refuse(self, conn: Connection, rejected: MessageRejected) -> None:
        """A frame refused before any dialect could read it (a binary frame that is not UTF-8):
        counted and rate-limited like any frame, answered with one error reply.

        Raises ConnectionRejected (4529) as `receive` does.
        """
        self.stats.messages_received += 1
        conn.messages_in += 1
        limit = self._rate_limit
        if limit is not None:
            now = self._clock()
            if not limit.take(conn, now):
                rejected = limit.reject(conn, now)
        self.stats.messages_rejected += 1
        conn.reply_error(rejected)
        if rejected.code == "rate-limited":
            self._count_rate_limited(conn)

    def _count_rate_limited(self, conn: Connection) -> None:
        self.stats.messages_rate_limited += 1
        limit = self._rate_limit
        if limit is not None and limit.exhausted(conn):
            self.stats.rate_limit_closes += 1
            log.warning(
                "closing %r: %d messages over the rate limit in a row", conn, limit.close_after
            )
            raise ConnectionRejected(
                CloseCode.RATE_LIMITED,
                f"rate limit exceeded: {limit.close_after} messages over the limit in a row; "
                "reconnect after a pause",
            )

    async def _handle(self, conn: Connection, message: MessageV3) -> None:
        self.stats.traffic[conn.dialect.name][message.target] += 1  # ~0.1 us
        if message.target != "echo":
            await self.publish(message, origin=conn)
        elif message.msg_type == "heartbeat":
            await self._heartbeat(conn)
        elif message.msg_type == "presence":
            clients = await self._members_or_reject(conn.group_id)
            self._reply(conn, members_reply(conn.group_id, conn.client_id, clients))
        else:
            self._reply(conn, encode(message))

    def count_traffic(self, protocol: str, target: str) -> None:
        self.stats.traffic[protocol][target] += 1

    def _reply(self, conn: Connection, text: str) -> None:
        conn.enqueue(conn.dialect.render(Envelope(origin=self.node_id, text=text)))

    async def _heartbeat(self, conn: Connection) -> None:
        try:
            await self._presence.touch([(conn.group_id, conn.client_id, conn.conn_id)])
        except BackendUnavailable as exc:
            raise MessageRejected("publish-failed", "presence store unavailable; retry") from exc
        self._reply(conn, heartbeat_reply(conn.group_id, conn.client_id))

    async def _members_or_reject(self, group_id: str) -> list[str]:
        try:
            return await self._presence.members(group_id)
        except BackendUnavailable as exc:
            raise MessageRejected("publish-failed", "presence store unavailable; retry") from exc

    async def publish(self, message: MessageV3, *, origin: Connection | None = None) -> None:
        """Route a validated, stamped message to its channel (the HTTP API calls this too).

        Raises MessageRejected("publish-failed") when the broker cannot take it.
        """
        channel = self.channels.route(message)
        if channel is ECHO:
            raise MessageRejected("invalid-target", "target 'echo' needs a connection")
        envelope = Envelope(
            origin=self.node_id,
            text=encode(message),
            skip_conn=origin.conn_id if origin is not None and message.target == "direct" else "",
            tags=origin.tags if origin is not None else NO_TAGS,
        )
        self._publish_tick = tick = (self._publish_tick + 1) & SAMPLE_MASK
        started = _perf_counter() if not tick else 0.0
        try:
            receivers = await self._broker.publish(channel, envelope.pack())
        except BackendUnavailable as exc:
            self.stats.publish_failures += 1
            raise MessageRejected(
                "publish-failed", "the message could not be sent (broker unavailable); retry"
            ) from exc
        if started:
            self._observe_publish(_perf_counter() - started)
        self.stats.messages_published += 1
        if not receivers and message.target == "direct":
            self.stats.no_recipient += 1
            if self.refusals is not None:
                self.refusals.no_recipient(channel, envelope.text, origin)

    async def members(self, group_id: str) -> list[str]:
        """Clients online in ``group_id`` on any node. Raises BackendUnavailable."""
        return await self._presence.members(group_id)

    # -- recovery ------------------------------------------------------------------------

    async def recover(self, conn: Connection) -> None:
        """Send ``conn`` what it missed, then its held live messages (see ClientRecovery)."""
        await self.recovery.recover(conn)

    async def leave_positions(self, conn: Connection) -> None:
        await self.recovery.leave_positions(conn)
