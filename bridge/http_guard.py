"""Deadlines for the part of a connection uvicorn leaves open-ended (slowloris).

uvicorn's h11 protocol waits forever for a request's head (a WebSocket handshake is one) and
for its body, and a byte every few seconds keeps even its keep-alive timer from firing. This
protocol gives each phase a deadline: the head must arrive within ``handshake_timeout`` of the
connection opening (or of the previous response), the body within ``body_timeout`` of the
head. Connections still in either phase are "pending"; past ``max_pending`` the oldest idle
one is closed, so an attacker's idle sockets cannot use up the node's file descriptors while a
client that sends its request at once (a probe, a handshake) still gets in. Idle means pending
for at least ``grace`` with nothing waiting to be read: in a reconnect storm thousands of
honest clients are between their TCP handshake and their request at once (a round trip on a
mobile network, or a busy client), and a node too busy to read them all at once has their
requests waiting in its sockets; the cap is passed for them rather than enforced on them.
After the upgrade the WebSocket protocol takes over the transport: no timer, no per-frame cost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from v3_core.socket_peek import has_unread_bytes

log = logging.getLogger("aether.http")

LOG_EVERY = 10.0  # seconds between two warnings about closed pending connections
EVICTION_SCAN = 4  # over the cap, the oldest pending connections looked at for an idle one
HEAD, BODY = "head", "body"  # the phases with a deadline; None: the app or the socket has it


def _timeout_response(detail: bytes) -> bytes:
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(detail), detail)
    )


HEAD_TIMEOUT = _timeout_response(b"the request head did not arrive in time\n")
BODY_TIMEOUT = _timeout_response(b"the request body did not arrive in time\n")
EVICTED = _timeout_response(b"too many connections opening at once; closed the oldest\n")


class HttpGuard:
    """The limits of one node, and its pending connections (oldest first).

    uvicorn calls it as its ``http`` protocol class; it pickles (``--workers`` spawns
    processes with the config) and each process keeps its own pending set.
    """

    def __init__(
        self, handshake_timeout: float, body_timeout: float, max_pending: int, grace: float
    ) -> None:
        self.handshake_timeout = handshake_timeout
        self.body_timeout = body_timeout
        self.max_pending = max_pending
        self.grace = grace
        self.pending: dict[GuardedH11Protocol, None] = {}
        self.evicted = 0  # since the last warning: one line per LOG_EVERY at most
        self.logged_at = 0.0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "pending": {}, "evicted": 0, "logged_at": 0.0}

    def __call__(self, **kwargs: Any) -> GuardedH11Protocol:
        return GuardedH11Protocol(guard=self, **kwargs)

    def admit(self, protocol: GuardedH11Protocol, now: float) -> None:
        """Count ``protocol`` as pending; past the cap, close the oldest idle pending one."""
        while self.max_pending and len(self.pending) >= self.max_pending:
            idle = self._oldest_idle(now)
            if idle is None:
                break
            del self.pending[idle]
            idle.expire(EVICTED)
            self._count_eviction()
        self.pending[protocol] = None

    def _oldest_idle(self, now: float) -> GuardedH11Protocol | None:
        """Among the oldest few: one pending for ``grace`` that has sent nothing unread."""
        for candidate, _ in zip(self.pending, range(EVICTION_SCAN), strict=False):
            if now - candidate.pending_since < self.grace:
                return None  # the rest are younger still
            if not has_unread_bytes(candidate.transport):
                return candidate
        return None

    def _count_eviction(self) -> None:
        self.evicted += 1
        now = time.monotonic()
        if now - self.logged_at >= LOG_EVERY:
            log.warning(
                "closed %d connection(s) that had not sent their request: over "
                "AETHER_MAX_PENDING_CONNECTIONS=%d (slow or idle clients, or an attack)",
                self.evicted,
                self.max_pending,
            )
            self.evicted, self.logged_at = 0, now

    def release(self, protocol: GuardedH11Protocol) -> None:
        self.pending.pop(protocol, None)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on the request head and on the body."""

    def __init__(self, *, guard: HttpGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guard = guard
        self.phase: str | None = None
        self.deadline: asyncio.TimerHandle | None = None  # the current phase's
        self.bytes_in_phase = False
        self.upgraded = False  # the transport is the WebSocket protocol's now
        self.pending_since = 0.0  # loop time it last became pending

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow_phase()

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter(None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.bytes_in_phase = True
        super().data_received(data)
        self._follow_phase()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_phase()  # a keep-alive connection waits for its next head

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self.upgraded = True  # the head is in; the app decides within its own timeouts
        self._enter(None)
        super().handle_websocket_upgrade(event)

    def _follow_phase(self) -> None:
        if self.upgraded or self.transport.is_closing():
            self._enter(None)
            return
        state = self.conn.their_state
        self._enter(HEAD if state is h11.IDLE else BODY if state is h11.SEND_BODY else None)

    def _enter(self, phase: str | None) -> None:
        if phase == self.phase:
            return
        self.phase = phase
        self.bytes_in_phase = False
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if phase is None:
            self.guard.release(self)
            return
        if phase == HEAD and self not in self.guard.pending:
            self.pending_since = self.loop.time()
            self.guard.admit(self, self.pending_since)
        seconds = self.guard.handshake_timeout if phase == HEAD else self.guard.body_timeout
        response = HEAD_TIMEOUT if phase == HEAD else BODY_TIMEOUT
        self.deadline = self.loop.call_later(seconds, self.expire, response)

    def expire(self, response: bytes) -> None:
        """Answer 408 (unless nothing was asked, or the app already answered) and close."""
        phase, started = self.phase, self.bytes_in_phase
        self._enter(None)
        if self.transport.is_closing():
            return
        cycle = self.cycle if phase == BODY else None
        if cycle is not None and not cycle.response_started:
            cycle.disconnected = True  # the app's receive() says http.disconnect; sends drop
            cycle.message_event.set()
            if self.access_log:
                self.access_logger.info(
                    '%s - "%s %s HTTP/%s" %d',
                    get_client_addr(self.scope),
                    self.scope["method"],
                    get_path_with_query_string(self.scope),
                    self.scope["http_version"],
                    408,
                )
            self.transport.write(response)
        elif phase == HEAD and (started or response is EVICTED):
            self.transport.write(response)
        self.transport.close()
