"""One client connection: its identity, its dialect and its bounded outgoing queue.

Fan-out only ever calls `deliver`, which never awaits: a slow socket delays nobody else.
While a client keeps up, a message is written straight to its socket, with no task switch
(as websockets' broadcast() does). Once the socket pushes back, messages wait in a bounded
queue drained by a writer task that exists only while there is a backlog; a connection whose
backlog passes its bound, or whose send hangs, is closed as a slow consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .errors import CloseCode, MessageRejected
from .ids import ConnId
from .messages import MessageV3, error_reply, parse_client_message
from .routing import NO_TAGS, Envelope, Tags
from .streams import Position

log = logging.getLogger("aether.connection")


class Outgoing:
    """One message as a node sends it; the wire form is built by the first sender that needs it
    and reused for every other recipient. ``channel``/``position``: where it stands in its
    stream, when it has a position (recovery tells replayed messages from live ones by it)."""

    __slots__ = ("channel", "frame", "position", "text")

    def __init__(self, text: str, channel: str = "", position: Position | None = None) -> None:
        self.text = text
        self.frame: bytes | None = None
        self.channel = channel
        self.position = position


class RecoveryGate:
    """Stands in front of a recovering connection: holds its live messages while the replay of
    what it missed is sent, then lets through only the live ones the replay did not send."""

    __slots__ = ("held", "replayed", "since")

    def __init__(self, since: dict[str, Position]) -> None:
        self.since = since  # channel -> the position the client last saw
        self.held: list[Outgoing] | None = []  # None once released
        self.replayed: dict[str, Position] = {}  # channel -> the newest the replay sent

    def admit(self, message: Outgoing) -> bool:
        """False for a message to hold or to drop; True for one to send now."""
        if self.held is not None:
            self.held.append(message)
            return False
        upto = self.replayed.get(message.channel)
        position = message.position
        if upto is None or position is None:
            return True
        if position.epoch != upto.epoch or position.offset > upto.offset:
            del self.replayed[message.channel]  # live is past the replay (or a new epoch)
            return True
        return False


class Sender(Protocol):
    """The socket side of a connection, injected by the web layer."""

    def write_now(self, message: Outgoing) -> bool:
        """Write at once if the socket can take it without waiting; False to queue instead."""
        ...

    async def send_text(self, text: str) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...
    def abort(self, code: int, reason: str) -> None:
        """Close at once, without waiting for the peer to read (its buffer may be full)."""
        ...


class Dialect(Protocol):
    """How one family of clients speaks: V3 natively, or a legacy dialect translated."""

    name: str
    heartbeat_hints: tuple[str, ...]
    """Words every heartbeat frame of this dialect contains: over the rate limit, a frame with
    none of them is refused without being read (`v3_core.ratelimit.may_be_heartbeat`)."""

    async def parse(self, text: str, conn: Connection) -> MessageV3:
        """A stamped, valid MessageV3 from the client's frame, or MessageRejected."""
        ...

    def heartbeat(self, text: str, conn: Connection) -> MessageV3 | None:
        """The stamped heartbeat ``text`` is, else None; no I/O (frames over the rate limit)."""
        ...

    def render(self, envelope: Envelope) -> str:
        """The text this dialect's clients receive for a message; called once per node."""
        ...

    def render_error(self, rejected: MessageRejected) -> str: ...


class V3Dialect:
    """WS_Message_V3 as is: the text from the broker goes to the socket untouched."""

    name = "v3"
    heartbeat_hints: tuple[str, ...] = ("heartbeat",)  # its msg_type

    def __init__(self, *, allow_broadcast: bool = True) -> None:
        self.allow_broadcast = allow_broadcast

    async def parse(self, text: str, conn: Connection) -> MessageV3:
        return parse_client_message(
            text,
            group_id=conn.group_id,
            client_id=conn.client_id,
            allow_broadcast=self.allow_broadcast,
        )

    def heartbeat(self, text: str, conn: Connection) -> MessageV3 | None:
        try:
            message = parse_client_message(text, group_id=conn.group_id, client_id=conn.client_id)
        except MessageRejected:
            return None
        return message if message.msg_type == "heartbeat" else None

    def render(self, envelope: Envelope) -> str:
        return envelope.text

    def render_error(self, rejected: MessageRejected) -> str:
        return error_reply(rejected.code, rejected.detail, **rejected.extra)


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """How much a connection may have waiting before it counts as a slow consumer."""

    max_bytes: int = 1 << 20
    max_messages: int = 4096
    send_timeout: float = 1.0


class SendsInProgress:
    """The node's connections with a send under way, and the loop time each began.

    Direct writes are the rule, so only a client whose socket is full has one: the writer
    watchdog reads these few, not every connection of the node on each pass.
    """

    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started: dict[Connection, float] = {}

    def overdue(self, now: float, timeout: float) -> tuple[list[Connection], float]:
        """The connections whose send began ``timeout`` ago or more, and when the next is due
        (``now + timeout`` when none is under way)."""
        late: list[Connection] = []
        next_due = now + timeout
        for conn, started in self.started.items():
            if started + timeout <= now:
                late.append(conn)
            else:
                next_due = min(next_due, started + timeout)
        return late, next_due


class Connection:
    """A client connection as the manager sees it. Created by ConnectionManager.connect()."""

    # Thousands live per node for hours: slots keep each one small.
    __slots__ = (
        "_closing",
        "_gate",
        "_limits",
        "_on_slow",
        "_open",
        "_queue",
        "_queued_bytes",
        "_sends",
        "_writer",
        "client_id",
        "conn_id",
        "dialect",
        "group_id",
        "left_positions",
        "messages_in",
        "new_ids",
        "opened_at",
        "rate_beat_at",
        "rate_full_at",
        "rate_strikes",
        "resumed_from",
        "sender",
        "tags",
    )

    def __init__(
        self,
        *,
        conn_id: ConnId,
        group_id: str,
        client_id: str,
        sender: Sender,
        dialect: Dialect,
        limits: QueueLimits,
        tags: Tags = NO_TAGS,
        on_slow: Callable[[Connection], None] | None = None,
        recover: dict[str, Position] | None = None,
        sends: SendsInProgress | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.group_id = group_id
        self.client_id = client_id
        self.sender = sender
        self.dialect = dialect
        self.tags = tags  # opaque (routing.Tags): every message it sends carries them
        self.messages_in = 0
        self.new_ids = 0  # legacy integers this connection had looked up that were not cached
        # The inbound rate limit's bucket (v3_core.ratelimit.Metered): all zero means full.
        self.rate_full_at = 0.0
        self.rate_beat_at = 0.0
        self.rate_strikes = 0
        self._limits = limits
        self._gate = RecoveryGate(recover) if recover else None
        self.left_positions = False  # a legacy connection's positions are stored (once)
        self.resumed_from: dict[str, Position] | None = None  # stored positions it took
        self.opened_at = time.monotonic()
        self._queue: deque[Outgoing] | None = None  # allocated only while a backlog exists
        self._queued_bytes = 0
        self._open = False
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._sends = sends if sends is not None else SendsInProgress()
        self._on_slow = on_slow

    def __repr__(self) -> str:
        return f"<Connection {self.conn_id} {self.dialect.name} {self.group_id}/{self.client_id}>"

    @property
    def closing(self) -> bool:
        return self._closing

    def start_writer(self) -> None:
        """Start sending; call once the handshake is complete. What was queued goes first.

        What arrived during the handshake (presence joins, mostly) goes straight to the socket
        while it takes it, as fan-out does; a writer task is left only for what it does not.
        """
        self._open = True
        queue = self._queue
        while queue and self.sender.write_now(queue[0]):
            self._queued_bytes -= len(queue.popleft().text)
        if queue:
            self._spawn_writer()
        else:
            self._queue = None

    def deliver(self, message: Outgoing) -> None:
        """Send ``message`` to this client without awaiting; close a client that cannot keep up."""
        if self._closing:
            return
        if self._gate is not None and not self._gate_admits(message):
            return
        # Straight to the socket unless a backlog is waiting: order is kept.
        if self._writer is None and self._open and self.sender.write_now(message):
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(message)
        self._queued_bytes += len(message.text)
        if self._queued_bytes > self._limits.max_bytes or len(queue) > self._limits.max_messages:
            self.close_slow("outgoing queue full")
        elif self._writer is None and self._open:
            self._spawn_writer()

    def _gate_admits(self, message: Outgoing) -> bool:
        gate = self._gate
        assert gate is not None
        admitted = gate.admit(message)
        if gate.held is None and not gate.replayed:
            self._gate = None  # caught up: no more checks per message
        elif gate.held is not None and len(gate.held) > self._limits.max_messages:
            self.close_slow("too many live messages while recovering")
        return admitted

    # -- recovery --------------------------------------------------------------------------

    def hold_for_recovery(self, since: dict[str, Position]) -> None:
        """Hold live messages from now on until ``replay``; call before registering."""
        self._gate = RecoveryGate(since)

    @property
    def recovering_since(self) -> dict[str, Position] | None:
        """channel -> position, while this connection waits for its replay."""
        gate = self._gate
        return gate.since if gate is not None and gate.held is not None else None

    async def replay(self, messages: list[Outgoing], replayed: dict[str, Position]) -> None:
        """Send ``messages`` ahead of the live ones held meanwhile, then release those.

        The replay waits for the socket instead of queueing (a thousand messages may not fit
        the queue's bound); ``replayed`` (channel -> newest position sent) drops live copies.
        """
        gate = self._gate
        assert gate is not None, "replay() is for a connection that recovers"
        assert gate.held is not None, "replay() once"
        loop = asyncio.get_running_loop()
        for message in messages:
            if self._closing:
                return
            if self._writer is not None:
                await asyncio.wait({self._writer})
            if self.sender.write_now(message):
                continue
            self._sends.started[self] = loop.time()
            try:
                await self.sender.send_text(message.text)
            finally:
                self._sends.started.pop(self, None)
        held, gate.held = gate.held, None
        gate.replayed = replayed
        for message in held:
            self.deliver(message)
        if self._gate is gate and not gate.replayed:
            self._gate = None

    def undelivered(self) -> list[Outgoing]:
        """Messages held or queued for this client and not written to its socket."""
        gate = self._gate
        held = gate.held if gate is not None and gate.held is not None else []
        return [*(self._queue or ()), *held]

    def enqueue(self, text: str) -> None:
        """Send one message built for this connection alone (replies, errors)."""
        self.deliver(Outgoing(text))

    def reply_error(self, rejected: MessageRejected) -> None:
        self.enqueue(self.dialect.render_error(rejected))

    def send_stuck_since(self) -> float | None:
        """Loop time at which the send in progress started, or None when idle."""
        return self._sends.started.get(self)

    def _spawn_writer(self) -> None:
        self._writer = asyncio.create_task(self._drain(), name=f"writer-{self.conn_id}")

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        queue, send = self._queue or deque(), self.sender.send_text
        try:
            while queue and not self._closing:
                text = queue.popleft().text
                self._queued_bytes -= len(text)
                self._sends.started[self] = loop.time()
                await send(text)
                self._sends.started.pop(self, None)
        except Exception as exc:  # the socket went away: the receive loop will see it too
            log.debug("writer for %r stopped: %r", self, exc)
        finally:
            self._sends.started.pop(self, None)  # cancelled (a slow consumer), or failed
            self._writer = None
            if not queue:
                self._queue = None

    def close_slow(self, why: str) -> None:
        """Drop a client that does not read fast enough (close code 4008)."""
        if self._closing:
            return
        log.warning("closing slow consumer %r: %s", self, why)
        self._closing = True
        # The queue is kept, not sent: what it holds was not delivered (legacy positions).
        self._queued_bytes = 0
        if self._on_slow is not None:
            self._on_slow(self)
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
        # The socket buffer may be full, so a polite close could wait forever.
        self.sender.abort(CloseCode.SLOW_CONSUMER, "slow consumer")

    async def aclose(self) -> None:
        """Stop the writer; the web layer closes the socket itself."""
        self._closing = True
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
