"""The subscriber's decisions, without I/O: when to probe, when a connection can no longer
be trusted, which subscribes are confirmed, and what a reconnect means.

A half-open socket raises nothing, so the subscriber proves its connection with probes on the
node's own channel; anything doubtful recycles the connection, and the subscriber reconnects
with every channel held (redis_subscriber.py does the I/O).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict, deque

from v3_core.errors import BackendUnavailable

from .base import RECONNECTED, RESTARTED, Discontinuity

_PROBE = b"probe "
_MIN_BACKOFF, _MAX_BACKOFF = 0.05, 0.5  # reconnect delay, doubled per failure, plus jitter


class Recycle(Exception):
    """The subscriber connection can no longer be trusted (probe lost, command failed)."""


class Dropped(BackendUnavailable):
    """The subscriber connection went away before confirming a subscribe."""


class Probes:
    """Liveness of the subscriber: every probe published must come back within ``timeout``,
    or at least something must arrive on the connection meanwhile.

    A half-open socket raises nothing and delivers nothing. An echo proves the path works
    both ways; so does any message read, which is what a reader behind on a burst sees
    while the echo waits in the socket behind it (recycling then would resync every client
    of the node, and put the node further behind).
    """

    def __init__(self, interval: float, timeout: float, now: float) -> None:
        self.interval, self.timeout = interval, timeout
        # Probes of an earlier connection may still arrive: they prove nothing about this one.
        self.prefix = _PROBE + random.randbytes(4).hex().encode() + b" "
        self.sent = self.echoed = 0
        self.next_at = now
        self.waiting_since: float | None = None  # send time of the oldest unanswered probe
        self.heard_at = now  # when the reader last read anything on this connection

    def due(self, now: float) -> bytes | None:
        """The probe to publish now, if one is due."""
        if now < self.next_at:
            return None
        self.next_at = now + self.interval
        return self.force(now)

    def force(self, now: float) -> bytes:
        """A probe to publish now, due or not (a late confirmation asks for one)."""
        self.sent += 1
        if self.waiting_since is None:
            self.waiting_since = now
        return self.prefix + str(self.sent).encode()

    def echo(self, data: bytes, now: float) -> None:
        if not data.startswith(self.prefix):
            return
        with contextlib.suppress(ValueError):
            self.echoed = max(self.echoed, int(data.removeprefix(self.prefix)))
        if self.echoed >= self.sent:
            self.waiting_since = None
        elif self.waiting_since is not None:
            self.waiting_since = now  # older probes came back; the newest is young

    def heard(self, now: float) -> None:
        """The reader read something: the connection is alive, whatever it was."""
        self.heard_at = now

    def overdue(self, now: float) -> bool:
        if self.waiting_since is None:
            return False
        return now - max(self.waiting_since, self.heard_at) > self.timeout

    def next_deadline(self) -> float:
        """When the reader must look again: the next probe, or the oldest one's time limit."""
        if self.waiting_since is None:
            return self.next_at
        return min(self.next_at, max(self.waiting_since, self.heard_at) + self.timeout)


class Subscriptions:
    """The channels held, the subscribes awaiting confirmation, and the connection's standing.

    The channel set is the truth: a new connection subscribes all of it, so a channel held
    is never lost to a reconnect, only delayed.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.channels: set[str] = set()
        self.recycle_reason: str | None = None
        self.reconnects = 0
        self._confirmations: defaultdict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._run_id: str | None = None  # Redis' own id: it changes when the server restarts
        self._backoff = _MIN_BACKOFF

    def awaiting(self, channel: str, future: asyncio.Future[None]) -> None:
        """``future`` is settled when Redis confirms a SUBSCRIBE of ``channel``."""
        self._confirmations[channel].append(future)

    def confirmed(self, channel: str) -> None:
        futures = self._confirmations.get(channel)
        if not futures:
            return
        future = futures.popleft()
        if not futures:
            del self._confirmations[channel]
        if not future.done():
            future.set_result(None)

    def recycle(self, reason: str) -> None:
        """Mark the connection untrusted; the first reason given is the one reported."""
        self.recycle_reason = self.recycle_reason or reason

    def check(self, closed: bool, probes: Probes, now: float) -> bytes | None:
        """Raise Recycle when this connection may have lost messages; else a probe, if due."""
        if self.recycle_reason is not None:
            raise Recycle(self.recycle_reason)
        if closed:
            raise Recycle("connection dropped")
        if probes.overdue(now):
            raise Recycle(f"probe not echoed within {self.timeout}s")
        return probes.due(now)

    def connected(self, subscribed: list[str]) -> set[str]:
        """A new connection subscribed ``subscribed``: those since left, to unsubscribe."""
        self.recycle_reason = None
        return set(subscribed) - self.channels

    def back(self, run_id: str) -> Discontinuity | None:
        """The connection is back: None for the first one, else what was lost meanwhile (a
        new run_id is a restarted Redis, which lost every key, presence included)."""
        self._backoff = _MIN_BACKOFF
        previous, self._run_id = self._run_id, run_id
        if previous is None:
            return None
        self.reconnects += 1
        return Discontinuity(RECONNECTED if run_id == previous else RESTARTED)

    def disconnected(self) -> None:
        """Subscribes still waiting will be confirmed, if ever, on another connection."""
        for futures in self._confirmations.values():
            for future in futures:
                if not future.done():
                    future.set_exception(Dropped("Redis subscriber disconnected"))
        self._confirmations.clear()

    def next_delay(self) -> float:
        """How long to wait before the next connect: doubled per failure, with jitter."""
        delay = self._backoff * (1 + random.random())
        self._backoff = min(self._backoff * 2, _MAX_BACKOFF)
        return delay
