"""FanOut: what the broker brings, handed to this node's connections, encoded once.

Every message a node delivers is encoded once per dialect and the same object is queued for
every local recipient of that dialect. When the broker loses its connection, the streams it
held are filled from history, or their clients are told to resync.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from .backends.base import RECONNECTED, Broker, BrokerMessage, Discontinuity
from .connection import Connection, Outgoing, V3Dialect
from .latency import SAMPLE_MASK, Histogram
from .node_streams import NodeStreams
from .presence import resync_notice
from .refusals import RefusalSink
from .registry import LocalRegistry
from .routing import Channels, Envelope, UnreadableEnvelope
from .stats import ManagerStats
from .streams import with_position

log = logging.getLogger("aether.manager")

UNREADABLE_LOG_EVERY = 60.0  # seconds between log lines about unreadable broker messages


class FanOut:
    """The manager's delivery half: `run` reads the broker's events for the node's life."""

    def __init__(
        self,
        broker: Broker,
        registry: LocalRegistry[Connection],
        *,
        node_id: str,
        channels: Channels,
        v3: V3Dialect,
        stats: ManagerStats,
        timing: Histogram,
        refusals: RefusalSink | None,
        clock: Callable[[], float],
        on_reconnect: Callable[[], None],
    ) -> None:
        self._broker = broker
        self._registry = registry
        self._node_id = node_id
        self._channels = channels
        self._v3 = v3
        self._stats = stats
        self._timing = timing
        self._refusals = refusals
        self._clock = clock
        self._on_reconnect = on_reconnect  # Redis may have restarted empty: rejoin presence
        self._unreadable_logged_at = -UNREADABLE_LOG_EVERY
        self.streams = NodeStreams(broker, self.decode, self._deliver_message, self.announce_gap)

    async def run(self) -> None:
        """Deliver each broker message to the local members of its channel, in stream order."""
        streams, registry, observe = self.streams, self._registry, self._timing.observe
        clock, tick = time.perf_counter, 0
        async for event in self._broker.events():
            if isinstance(event, Discontinuity):
                self._discontinuity(event)
                continue
            self._stats.broker_messages += 1
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
        self._on_reconnect()
        reason, registry = event.reason, self._registry
        channels = registry.channels if event.channels is None else event.channels
        held = [channel for channel in channels if registry.has_channel(channel)]
        if self._broker.history.enabled and reason == RECONNECTED:
            self.streams.fill_all(held, reason)
        elif event.channels is None:
            self.streams.reset()
            self._announce_resync(reason)
        else:
            self._stats.discontinuities += 1
            self.streams.forget(held)
            for channel in held:
                self.announce_gap(channel, reason)

    def decode(self, message: BrokerMessage) -> Envelope | None:
        """The envelope of ``message``, or None for what this node cannot read (counted)."""
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
        self._stats.broker_unreadable += 1
        if self._refusals is not None:
            self._refusals.broker_unreadable(message, str(why))
        now = self._clock()
        if now - self._unreadable_logged_at >= UNREADABLE_LOG_EVERY:
            self._unreadable_logged_at = now
            log.warning(
                "dropped a message on %s this node cannot read (%s); %d so far, "
                "aether_broker_unreadable_total counts them",
                message.channel,
                why,
                self._stats.broker_unreadable,
            )

    def _deliver(
        self,
        envelope: Envelope,
        members: Iterable[Connection],
        message: BrokerMessage | None = None,
    ) -> None:
        # Encoded once per node and dialect: every recipient gets the same object.
        v3, skip = self._v3, envelope.skip_conn
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
        self._stats.deliveries += count

    def _announce_resync(self, reason: str) -> None:
        self._stats.discontinuities += 1
        envelope = Envelope(origin=self._node_id, text=resync_notice(reason))
        self._deliver(envelope, self._registry.connections)

    def announce_gap(self, channel: str, reason: str) -> None:
        """A stream's gap that history cannot fill: its local members must resync it."""
        stream = self._channels.stream_name(channel)
        envelope = Envelope(origin=self._node_id, text=resync_notice(reason, stream))
        self._deliver(envelope, self._registry.members(channel))
