"""uvicorn's websockets-sansio protocol, lean and hardened against clients that do not read.

- uvicorn holds the handshake's request, response and headers for a connection's whole life,
  though it, and our socket endpoints, only read them until the handshake completes: about
  3 KiB per connection (docs/performance.md has the figures). They are dropped after the accept.
- uvicorn answers every PING at once, whatever the socket's backpressure, and pings are not
  data frames, so they never pause reading: a client that floods pings and never reads grew
  the write buffer without bound (365 MB in 10 s). While writing is paused only the latest
  pong is kept (RFC 6455 allows answering only the latest ping), and a client that keeps
  pinging while its socket stays full for ``PONG_STUCK_AFTER`` is cut as a slow consumer.
- Parsing a flood of pings holds the loop for everyone else even when the flooder reads
  (~2,000 pings per read): past ``pings_per_second`` (a token bucket) a client is cut, 4529.
- ``transport.close()`` waits for the write buffer to drain, which never happens when the
  peer does not read: every close the protocol makes is followed by an abort after a deadline.
- A text frame that is not UTF-8 is one INFO line (at most one per interval), not an ERROR
  with a traceback per frame.
- A client that sent anything (a heartbeat) within the ping interval has just shown it is
  there: it is pinged only after a whole interval of silence.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol

from v3_core import CloseCode
from v3_core.logthrottle import ThrottledLog

from .http_guard import HttpGuard
from .lean_asyncio import LeanEvent, LeanQueue
from .sender import ABORT_AFTER

PONG_STUCK_AFTER = 2.0  # seconds a pinging client's socket may stay full before it is cut
PING_BURST_SECONDS = 5.0  # a client may send this many seconds' worth of pings at once

log = ThrottledLog(logging.getLogger("aether.sockets"))


class PingCloses:
    """Clients this process closed for their pings, by reason, for /metrics. Per process, not
    per app: uvicorn makes the protocols, and they never see the app's manager."""

    __slots__ = ("by_reason",)

    def __init__(self) -> None:
        self.by_reason = {"too-many-pings": 0, "not-reading": 0}


PING_CLOSES = PingCloses()


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    _held_pong: bytes | None = None  # the latest pong, while writing is paused
    _paused_at: float | None = None  # loop time writing was paused at, None while writable
    _abort_timer: asyncio.TimerHandle | None = None  # cuts a close the peer does not drain
    heard_at = 0.0  # loop time of the last bytes from the client
    # Clients ping every few seconds at most (websockets: 20 s; browsers never). A flood was
    # parsed at ~2,000 pings per read and held the loop for everyone else (echo round trips
    # of 1.2 s); 0: no limit.
    pings_per_second = 0.0
    _ping_allowance: float | None = None  # a token bucket: pings left before the cut
    _ping_checked_at = 0.0

    def __init__(self, *args: Any, pings_per_second: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pings_per_second = pings_per_second
        self.queue = LeanQueue()  # type: ignore[assignment]  # the methods uvicorn calls
        self.writable = LeanEvent()  # type: ignore[assignment]
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        self.heard_at = self.loop.time()
        super().data_received(data)

    def send_keepalive_ping(self) -> None:
        """Ping only a client silent for a whole interval: at 19,000 connections that
        heartbeat every 30 s, the pings were most of an idle node's CPU."""
        silent = self.loop.time() - self.heard_at
        if self.ping_interval and silent < self.ping_interval and not self.close_sent:
            self.ping_timer = self.loop.call_later(
                self.ping_interval - silent, self.send_keepalive_ping
            )
            return
        super().send_keepalive_ping()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # uvicorn types them as always set; after the handshake nothing reads them.
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
            self.scope["headers"] = []  # bridge.sockets reads Origin before it accepts
            self._drop_handshake_parser()

    def _drop_handshake_parser(self) -> None:
        """websockets' server parser keeps the handshake request as a local of its generator
        for the connection's whole life (about 1.7 KiB). Waiting at a frame boundary, it is
        replaced by the plain frame parser it had moved on to (websockets itself swaps parsers
        the same way for a closing connection); mid-frame, it is left alone."""
        conn, inner = self.conn, self.conn.parser
        while (deeper := getattr(inner, "gi_yieldfrom", None)) is not None:
            inner = deeper
        if getattr(getattr(inner, "gi_code", None), "co_name", "") != "at_eof":
            return
        parser = Protocol.parse(conn)
        next(parser)  # to its first wait for data, as websockets starts a parser
        conn.parser = parser

    # -- pongs under backpressure ----------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        self._paused_at = self.loop.time()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._paused_at = None
        pong, self._held_pong = self._held_pong, None
        if pong and not self.transport.is_closing():
            self.transport.write(pong)

    def handle_ping(self) -> None:
        output = b"".join(self.conn.data_to_send())
        paused_at = self._paused_at
        if self.close_sent:
            self.transport.write(output)
            return
        if self.pings_per_second and not self._ping_allowed():
            why = f"it sends over {self.pings_per_second:g} pings/s"
            PING_CLOSES.by_reason["too-many-pings"] += 1
            self._cut(CloseCode.RATE_LIMITED, "too many pings", "ping-rate", why)
            return
        if paused_at is None:
            self.transport.write(output)
            return
        self._held_pong = output  # replaces the one held: only the latest ping is answered
        if self.loop.time() - paused_at > PONG_STUCK_AFTER:
            why = "it keeps pinging and does not read"
            PING_CLOSES.by_reason["not-reading"] += 1
            self._cut(CloseCode.SLOW_CONSUMER, "slow consumer", "ping-flood", why)

    def _ping_allowed(self) -> bool:
        rate, now = self.pings_per_second, self.loop.time()
        burst = rate * PING_BURST_SECONDS
        if self._ping_allowance is None:  # the first ping: a full bucket
            self._ping_allowance, self._ping_checked_at = burst, now
        elapsed, self._ping_checked_at = now - self._ping_checked_at, now
        allowance = self._ping_allowance = min(burst, self._ping_allowance + elapsed * rate) - 1
        return allowance >= 0

    def _cut(self, code: CloseCode, reason: str, kind: str, why: str) -> None:
        """Close at once, and abort if the peer does not take the close: it is flooding us."""
        log.log(kind, logging.WARNING, "closing %s with %d: %s", _peer(self.client), code, why)
        self._held_pong = None
        self.conn.fail(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()
        self._abort_after(ABORT_AFTER)

    # -- closes that cannot wait for a peer that does not read -----------------------------

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self._abort_after(ABORT_AFTER)

    def handle_close(self, event: Any) -> None:
        super().handle_close(event)
        self._abort_after(ABORT_AFTER)

    def handle_parser_exception(self) -> None:
        super().handle_parser_exception()
        self._abort_after(ABORT_AFTER)

    async def run_asgi(self) -> None:
        await super().run_asgi()
        # Closed now, or by the close timer once the peer had its chance to answer our close.
        self._abort_after(ABORT_AFTER + (self.close_timeout if self.close_timer else 0.0))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        timer, self._abort_timer = self._abort_timer, None
        if timer is not None:  # gone in time: release the protocol now, not at the deadline
            timer.cancel()

    def _abort_after(self, delay: float) -> None:
        """Abort ``delay`` seconds from now unless the connection is gone by then; replaces
        the deadline of an earlier close step (one timer per connection)."""
        if self.disconnected:
            return
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        self._abort_timer = self.loop.call_later(delay, self._abort_if_open)

    def _abort_if_open(self) -> None:
        self._abort_timer = None
        if not self.disconnected and self.transport.is_closing():
            self.transport.abort()

    # -- invalid UTF-8 ---------------------------------------------------------------------

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type != "text" or self.close_sent:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        try:
            text = data.decode()
        except UnicodeDecodeError:
            log.log(
                "invalid-utf8",
                logging.INFO,
                "closing %s with 1007: a text frame is not UTF-8",
                _peer(self.client),
            )
            self.conn.send_close(1007, "a text frame must be UTF-8")
            self.handle_parser_exception()
            return
        self.queue.put_nowait({"type": "websocket.receive", "text": text})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"


def protocol_for(pings_per_second: float) -> Callable[..., LeanWebSocketProtocol]:
    """What uvicorn calls per socket, with this node's ping limit; a partial, not a class made
    at run time, so that ``--workers`` can pickle it for its worker processes."""
    return functools.partial(LeanWebSocketProtocol, pings_per_second=pings_per_second)


def server_options(settings: Any) -> dict[str, Any]:
    """The uvicorn options every node runs with (the command and the tests share them)."""
    return {
        # Deadlines on request heads and bodies, a cap on sockets that never send one.
        "http": HttpGuard(
            settings.handshake_timeout,
            settings.body_timeout,
            settings.max_pending_connections,
            settings.pending_grace,
        ),
        "ws": protocol_for(settings.max_pings_per_second),
        "ws_max_size": settings.max_message_bytes,
        "ws_per_message_deflate": False,  # doubles memory per connection, costs CPU per frame
        "ws_ping_interval": settings.ping_interval or None,
        "ws_ping_timeout": settings.ping_timeout,
        "timeout_graceful_shutdown": settings.graceful_timeout,
        "lifespan": "on",
    }
