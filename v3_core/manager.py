"""ConnectionManager (WS_Manager_V3): local connections, broker, presence; encodes once.

Every message a node delivers is encoded once and the same string is queued for every local
recipient of its dialect. Subscriptions follow the registry: a channel is subscribed when its
first local member arrives (before that member's handshake completes) and dropped with the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType

from .backends.base import RECONNECTED, Backends, BrokerMessage, Discontinuity
from .connection import Connection, Dialect, Outgoing, QueueLimits, Sender, V3Dialect
from .errors import BackendUnavailable, CloseCode, ConnectionRejected, MessageRejected
from .ids import new_conn_id
from .latency import SAMPLE_MASK, Latencies
from .logthrottle import ThrottledLog
from .messages import MessageV3, encode
from .node_streams import NodeStreams
from .presence import (
    heartbeat_reply,
    members_reply,
    presence_event,
    refresh_interval,
    resync_notice,
)
from .ratelimit import RateLimit, may_be_heartbeat
from .recovery import ClientRecovery
from .refusals import RefusalSink
from .registry import LocalRegistry
from .routing import ECHO, NO_TAGS, Channels, Envelope, Tags, UnreadableEnvelope
from .streams import (
    Position,
    StreamName,
    with_position,
)

log = logging.getLogger("aether.manager")
_perf_counter = time.perf_counter  # a module global: one lookup, not two, per timed message

UNREADABLE_LOG_EVERY = 60.0  # seconds between log lines about unreadable broker messages
RETRY_REFRESH = 1.0  # seconds between presence refresh attempts while the store fails
REJOIN_BATCH = 32  # concurrent presence calls when re-registering after an outage
REFRESH_SLICE = 100  # connections per presence touch in a paced refresh
SHUTDOWN_LEAVE_TIMEOUT = 3.0  # seconds the connections left at shutdown get to leave presence
CLOSE_TIMEOUT = 1.0  # seconds a 1012 close may take before uvicorn's own shutdown cuts it


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Connections one node admits; 0 means no limit (matrix X7, X11).

    Counted per node (per process) from the registry, so the check costs no Redis round trip
    on connect; a cluster-wide count would. Across N nodes a client may hold N × per_client.
    """

    per_client: int = 0  # connections of one client_id, any group; over it: 4529
    per_node: int = 0  # all connections of this node; over it: 1013, try another node

    def __post_init__(self) -> None:
        if self.per_client < 0 or self.per_node < 0:
            raise ValueError("connection limits must be >= 0 (0: no limit)")


@dataclass(slots=True)
class ManagerStats:
    """Plain counters, read by /metrics at scrape time (no per-message metric calls)."""

    connections_opened: int = 0
    connections_rejected: int = 0
    client_limit_refusals: int = 0
    no_recipient: int = 0  # direct messages that reached no node
    node_limit_refusals: int = 0
    messages_received: int = 0
    messages_rejected: int = 0
    messages_rate_limited: int = 0
    rate_limit_closes: int = 0
    messages_published: int = 0
    publish_failures: int = 0
    broker_messages: int = 0
    deliveries: int = 0
    discontinuities: int = 0
    slow_consumers: int = 0
    presence_expired: int = 0
    broker_unreadable: int = 0  # messages from the broker this node could not read (dropped)
    error_replies: dict[str, int] = field(default_factory=dict)  # error code -> replies sent
    # protocol -> target -> client frames handled: "v3"/"v2" dialects, "http" for POST /v3/messages
    traffic: defaultdict[str, defaultdict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )

    def traffic_totals(self) -> dict[tuple[str, str], int]:
        return {(p, t): n for p, targets in self.traffic.items() for t, n in targets.items()}


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
        self._conn_limits = connection_limits or ConnectionLimits()
        self._clock = clock  # monotonic seconds, read once per inbound frame
        self._registry: LocalRegistry[Connection] = LocalRegistry()
        self._cursors = backends.cursors
        self.history = backends.broker.history
        self.streams = NodeStreams(
            self._broker, self._decode, self._deliver_message, self._announce_gap
        )
        self.recovery = ClientRecovery(
            self._broker,
            backends.cursors,
            channels=channels,
            streams=self.streams,
            v3=self.v3,
            node_id=node_id,
            decode=self._decode,
        )
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._unreadable_logged_at = -UNREADABLE_LOG_EVERY
        self._throttled_log = ThrottledLog(log)  # lines anonymous clients can cause
        self.draining = False  # shutting down: /readyz says 503 so no new clients come
        self._presence_due = asyncio.Event()  # set: refresh presence now, not at the next tick
        self._refreshed_at = 0.0  # loop time of the last presence refresh that succeeded

    # -- lifetime ------------------------------------------------------------------------

    async def __aenter__(self) -> ConnectionManager:
        self._tasks = [
            asyncio.create_task(self._fan_out(), name="fan-out"),
            asyncio.create_task(self._keep_presence(), name="presence"),
            asyncio.create_task(self._watch_writers(), name="writer-watchdog"),
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
            leaving = asyncio.gather(*(self._close_and_leave(c) for c in conns))
            try:
                await asyncio.wait_for(leaving, SHUTDOWN_LEAVE_TIMEOUT)
            except TimeoutError:
                log.warning("%d connections left without a clean presence removal", len(conns))

    async def _close_and_leave(self, conn: Connection) -> None:
        await conn.aclose()
        await self.leave_positions(conn)
        await self._leave(conn)

    @property
    def ready(self) -> bool:
        return self._broker.ready and not self.draining

    async def close_all(self, code: int, reason: str, *, spread: float = 0.0) -> None:
        """Close every socket of a node that shuts down, legacy positions stored first.

        ``spread``: the closes are paced evenly over that many seconds, so the clients do not
        all reconnect elsewhere in the same instant.
        """
        conns = [c for c in self._registry.connections if not c.closing]
        loop = asyncio.get_running_loop()
        start, closing = loop.time(), []
        for n, conn in enumerate(conns):
            due = start + spread * n / len(conns)
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            closing.append(asyncio.create_task(self._close_for_shutdown(conn, code, reason)))
        await asyncio.gather(*closing)

    async def _close_for_shutdown(self, conn: Connection, code: int, reason: str) -> None:
        stuck = conn.send_stuck_since() is not None or bool(conn.undelivered())
        await conn.aclose()  # nothing more is sent: the stored positions stay true
        await self.leave_positions(conn)
        if stuck:  # a client that does not read would hold a polite close
            conn.sender.abort(code, reason)
            return
        try:
            await asyncio.wait_for(conn.sender.close(code, reason), CLOSE_TIMEOUT)
        except Exception as exc:  # gone already: uvicorn cleans up
            log.debug("closing %r at shutdown: %r", conn, exc)

    async def ping(self) -> None:
        await self._broker.ping()

    def __len__(self) -> int:
        return len(self._registry)

    def group_sizes(self) -> dict[str, int]:
        """Local connections per group: O(channels), for the ops page, not per message."""
        prefix, registry = self.channels.group(""), self._registry
        return {
            channel[len(prefix) :]: len(registry.members(channel))
            for channel in registry.channels
            if channel.startswith(prefix)
        }

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
        limit, 4529 when the client is at its own.
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
        )
        return Session(self, conn)

    async def open(self, conn: Connection) -> None:
        """Register, subscribe and announce ``conn``; Session calls this on entry."""
        group_id, client_id = conn.group_id, conn.client_id
        if conn.dialect is not self.v3 and self.history.enabled:
            await self.recovery.take_positions(conn)
        # Checked and registered with no await between, so concurrent connects count each other.
        self._check_limits(client_id)
        channels = self._registry_channels(conn)
        first = self._registry.add(conn, channels)
        try:
            await self._subscribe(first, channels)
            came_online = await self._presence.add(group_id, client_id, conn.conn_id)
        except BackendUnavailable as exc:
            self.stats.connections_rejected += 1
            await self._unregister(conn)
            raise ConnectionRejected(
                CloseCode.TRY_AGAIN_LATER, "message broker unavailable; retry with backoff"
            ) from exc
        self.stats.connections_opened += 1
        if came_online:
            await self._announce(group_id, client_id, "join")

    def _check_limits(self, client_id: str) -> None:
        """Refuse a connection over a limit before it touches the registry, broker or presence.

        Both counts are this node's, read from the registry: O(1), and no Redis round trip.
        """
        limits = self._conn_limits
        if limits.per_client:
            held = len(self._registry.members(self.channels.client(client_id)))
            if held >= limits.per_client:
                self.stats.client_limit_refusals += 1
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
            self.stats.node_limit_refusals += 1
            raise ConnectionRejected(
                CloseCode.TRY_AGAIN_LATER, "node at its connection limit; retry with backoff"
            )

    async def close(self, conn: Connection) -> None:
        """Stop ``conn``'s writer, drop its subscriptions and presence; Session calls this."""
        await conn.aclose()
        await self.leave_positions(conn)
        await self._leave(conn)

    def _registry_channels(self, conn: Connection) -> tuple[str, ...]:
        return (
            self.channels.group(conn.group_id),
            self.channels.client(conn.client_id),
            self.channels.broadcast,
        )

    async def _subscribe(self, first: list[str], channels: Iterable[str]) -> None:
        # A channel another connection is still subscribing to is not live yet: wait for it.
        await self._subscribe_each(first, channels)
        if first and self.history.enabled:
            # Where each new stream stood, so a gap in it can be measured and filled.
            await asyncio.gather(*(self._learn_position(channel) for channel in first))

    async def _learn_position(self, channel: str) -> None:
        try:
            self.streams.learn(channel, await self._broker.position(channel))
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
        self.streams.forget(dropped)
        for channel in dropped:
            await self._broker.unsubscribe(channel)

    async def _leave(self, conn: Connection) -> None:
        await self._unregister(conn)
        try:
            went_offline = await self._presence.remove(conn.group_id, conn.client_id, conn.conn_id)
        except BackendUnavailable as exc:
            # The entry expires after the TTL and a sweep announces the leave then.
            log.warning("presence remove failed for %r: %s", conn, exc)
            return
        if went_offline:
            await self._announce(conn.group_id, conn.client_id, "leave")

    async def _announce(self, group_id: str, client_id: str, event: str) -> None:
        text = presence_event(group_id, client_id, "join" if event == "join" else "leave")
        envelope = Envelope(origin=self.node_id, text=text)
        try:
            await self._broker.publish(self.channels.group(group_id), envelope.pack())
        except BackendUnavailable as exc:
            log.warning("could not announce %s of %s in %s: %s", event, client_id, group_id, exc)

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

    # -- background ----------------------------------------------------------------------

    async def _fan_out(self) -> None:
        streams, registry, observe = self.streams, self._registry, self.latency.fan_out.observe
        clock, tick = _perf_counter, 0
        async for event in self._broker.events():
            if isinstance(event, Discontinuity):
                self._discontinuity(event)
                continue
            self.stats.broker_messages += 1
            if registry.has_channel(event.channel):
                tick = (tick + 1) & SAMPLE_MASK
                if tick:
                    streams.receive(event)  # in stream order: calls _deliver_message
                    continue
                started = clock()  # one broker message in SAMPLE_MASK + 1, not per recipient
                streams.receive(event)
                observe(clock() - started)

    def _discontinuity(self, event: Discontinuity) -> None:
        """The broker lost its connection (to one shard: ``event.channels``). With history
        kept (it reconnected to the same Redis), each stream is filled from history; else
        the clients of those streams must resync."""
        # Redis may have restarted empty: register this node's members again at once.
        self._presence_due.set()
        reason, registry = event.reason, self._registry
        channels = registry.channels if event.channels is None else event.channels
        held = [channel for channel in channels if registry.has_channel(channel)]
        if self.history.enabled and reason == RECONNECTED:
            self.streams.fill_all(held, reason)
        elif event.channels is None:
            self.streams.reset()
            self._announce_resync(reason)
        else:
            self.stats.discontinuities += 1
            self.streams.forget(held)
            for channel in held:
                self._announce_gap(channel, reason)

    def _decode(self, message: BrokerMessage) -> Envelope | None:
        try:
            return Envelope.unpack(message.data)
        except UnreadableEnvelope as exc:
            self._unreadable(message, exc)
            return None

    def _deliver_message(self, message: BrokerMessage, envelope: Envelope) -> None:
        members = self._registry.members(message.channel)
        if members:
            self._deliver(envelope, members, message)

    def _unreadable(self, message: BrokerMessage, why: UnreadableEnvelope) -> None:
        """Count and drop what this node cannot read (a newer release's format, garbage);
        log it once a minute at most, with how many came since."""
        self.stats.broker_unreadable += 1
        if self.refusals is not None:
            self.refusals.broker_unreadable(message, str(why))
        now = self._clock()
        if now - self._unreadable_logged_at >= UNREADABLE_LOG_EVERY:
            self._unreadable_logged_at = now
            log.warning(
                "dropped a message on %s this node cannot read (%s); %d so far, "
                "aether_broker_unreadable_total counts them",
                message.channel,
                why,
                self.stats.broker_unreadable,
            )

    def _deliver(
        self,
        envelope: Envelope,
        members: Iterable[Connection],
        message: BrokerMessage | None = None,
    ) -> None:
        # Encoded once per node and dialect: every recipient gets the same object.
        v3, skip = self.v3, envelope.skip_conn
        position = message.position if message is not None else None
        if position is None:
            channel = ""
            native = Outgoing(envelope.text)
        else:
            channel = message.channel  # type: ignore[union-attr]  # a position comes with one
            native = Outgoing(with_position(envelope.text, position), channel, position)
        rendered: dict[str, Outgoing] = {}
        count = 0
        for conn in members:
            if skip and conn.conn_id == skip:
                continue
            dialect = conn.dialect
            if dialect is v3:
                conn.deliver(native)
            else:
                out = rendered.get(dialect.name)
                if out is None:
                    text = dialect.render(envelope)
                    out = rendered[dialect.name] = Outgoing(text, channel, position)
                conn.deliver(out)
            count += 1
        self.stats.deliveries += count

    def _announce_resync(self, reason: str) -> None:
        self.stats.discontinuities += 1
        envelope = Envelope(origin=self.node_id, text=resync_notice(reason))
        self._deliver(envelope, self._registry.connections)

    def _announce_gap(self, channel: str, reason: str) -> None:
        """A stream's gap that history cannot fill: its local members must resync it."""
        stream = self.channels.stream_name(channel)
        envelope = Envelope(origin=self.node_id, text=resync_notice(reason, stream))
        self._deliver(envelope, self._registry.members(channel))

    # -- recovery ------------------------------------------------------------------------

    async def recover(self, conn: Connection) -> None:
        """Send ``conn`` what it missed, then its held live messages (see ClientRecovery)."""
        await self.recovery.recover(conn)

    async def leave_positions(self, conn: Connection) -> None:
        await self.recovery.leave_positions(conn)

    async def _keep_presence(self) -> None:
        loop = asyncio.get_running_loop()
        interval = refresh_interval(self.presence_ttl)
        wait = interval
        self._refreshed_at = loop.time()
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._presence_due.wait(), wait)
            self._presence_due.clear()
            started = loop.time()
            try:
                if started - self._refreshed_at > self.presence_ttl / 2:
                    # Cut off long enough for our entries to expire: other nodes may have swept
                    # them and announced a leave, which a silent refresh would never undo.
                    await self._rejoin()
                await self._refresh_and_sweep()
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

    async def _rejoin(self) -> None:
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
                    await self._announce(conn.group_id, conn.client_id, "join")

    async def _refresh_and_sweep(self) -> None:
        # Paced: REFRESH_SLICE connections at a time, spread over a third of the interval, so
        # a big node's refresh never stalls its fan-out, nor Redis, for long at once.
        # Entries are built a slice at a time: tens of thousands of tuples alive across the
        # whole paced refresh would each survive into the oldest GC generation, and a node
        # that churns through that many long-lived objects runs full collections (a second
        # with the loop stopped, at 19,000 connections) far more often.
        conns = [c for c in self._registry.connections if not c.closing]
        slices = range(0, len(conns), REFRESH_SLICE)
        gap = refresh_interval(self.presence_ttl) / 3 / len(slices) if slices else 0.0
        for start in slices:
            if start:
                await asyncio.sleep(gap)
            batch = conns[start : start + REFRESH_SLICE]
            await self._presence.touch([(c.group_id, c.client_id, c.conn_id) for c in batch])
        await self._drop_closed(conns)
        for group_id, client_id in await self._presence.sweep({c.group_id for c in conns}):
            self.stats.presence_expired += 1
            await self._announce(group_id, client_id, "leave")

    async def _drop_closed(self, conns: list[Connection]) -> None:
        """Remove again the entries of connections that closed while they were being re-added.

        A refresh re-adds a snapshot; if it reached Redis after a connection's own removal, the
        closed connection would stay listed until its entry expired (and then get a second
        leave). Its leave was already announced, so the result is ignored.
        """
        for conn in conns:
            if conn.closing:
                await self._presence.remove(conn.group_id, conn.client_id, conn.conn_id)

    async def _watch_writers(self) -> None:
        """Close each connection whose send has lasted ``send_timeout``, when it has.

        It sleeps until the oldest send in progress reaches the limit, or a whole
        ``send_timeout`` when none is: a send starting after a pass cannot be due before
        then. An idle node wakes once per ``send_timeout``, not every half second.
        """
        loop = asyncio.get_running_loop()
        timeout = self._limits.send_timeout
        while True:
            now = loop.time()
            next_pass = now + timeout
            for conn in self._registry.connections:
                started = conn.send_stuck_since()
                if started is None:
                    continue
                if started + timeout <= now:
                    conn.close_slow(f"a send took over {timeout}s")
                else:
                    next_pass = min(next_pass, started + timeout)
            await asyncio.sleep(next_pass - now)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class Session:
    """What ``ConnectionManager.connect`` returns: one connection's registration as a context.

    A class rather than an asynccontextmanager: it lives as long as the socket, and a suspended
    generator frame per idle connection costs memory a slotted object does not.
    """

    __slots__ = ("conn", "manager")

    def __init__(self, manager: ConnectionManager, conn: Connection) -> None:
        self.manager = manager
        self.conn = conn

    async def __aenter__(self) -> Connection:
        await self.manager.open(self.conn)
        return self.conn

    async def __aexit__(self, *exc_info: object) -> None:
        await self.manager.close(self.conn)
