"""The pending-connection cap's choice of whom to close, without a server: which connection is
idle (pending past the grace period, nothing waiting to be read) and which is an honest client
the node has not got round to reading."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any, cast

import pytest

from bridge.http_guard import EVICTED, HttpGuard
from v3_core.socket_peek import has_unread_bytes


class FakeTransport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None


class FakePending:
    """What the guard reads of a pending connection, over a real socket pair."""

    def __init__(self, since: float, pair: tuple[socket.socket, socket.socket]) -> None:
        self.pending_since = since
        server, self.client = pair
        self.transport = FakeTransport(server)
        self.expired: list[bytes] = []

    def expire(self, response: bytes) -> None:
        self.expired.append(response)


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made: list[tuple[socket.socket, socket.socket]] = []
    yield made
    for pair in made:
        for end in pair:
            end.close()


def pending(pairs: list[tuple[socket.socket, socket.socket]], since: float) -> FakePending:
    pair = socket.socketpair()
    pairs.append(pair)
    return FakePending(since, pair)


def test_unread_bytes_are_peeked_not_read(pairs) -> None:
    conn = pending(pairs, 0.0)
    assert not has_unread_bytes(cast(Any, conn.transport))
    conn.client.sendall(b"GET / HTTP/1.1\r\n")
    assert has_unread_bytes(cast(Any, conn.transport))
    assert has_unread_bytes(cast(Any, conn.transport))  # still there: nothing was consumed
    server = conn.transport.sock
    assert server.recv(64) == b"GET / HTTP/1.1\r\n"  # and the descriptor is still open


def admit_all(guard: HttpGuard, conns: list[FakePending], now: float) -> None:
    for conn in conns:
        guard.admit(cast(Any, conn), now)


def test_past_the_cap_the_oldest_idle_connection_is_closed(pairs) -> None:
    guard = HttpGuard(5.0, 10.0, max_pending=2, grace=1.0)
    old = [pending(pairs, 0.0), pending(pairs, 0.0)]
    admit_all(guard, old, now=0.0)
    guard.admit(cast(Any, pending(pairs, 5.0)), 5.0)
    assert (old[0].expired, old[1].expired) == ([EVICTED], [])
    assert len(guard.pending) == 2


def test_a_connection_whose_request_waits_unread_is_not_closed(pairs) -> None:
    """A node too busy to read has honest requests waiting in its sockets: the idle one goes."""
    guard = HttpGuard(5.0, 10.0, max_pending=2, grace=1.0)
    busy, idle = pending(pairs, 0.0), pending(pairs, 0.0)
    admit_all(guard, [busy, idle], now=0.0)
    busy.client.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
    guard.admit(cast(Any, pending(pairs, 5.0)), 5.0)
    assert (busy.expired, idle.expired) == ([], [EVICTED])


def test_within_the_grace_period_nothing_is_closed(pairs) -> None:
    """A storm's clients between their TCP handshake and their request: the cap is passed."""
    guard = HttpGuard(5.0, 10.0, max_pending=2, grace=1.0)
    conns = [pending(pairs, 0.0) for _ in range(5)]
    admit_all(guard, conns, now=0.5)
    assert [c.expired for c in conns] == [[]] * 5
    assert len(guard.pending) == 5


def test_all_busy_means_the_cap_is_passed(pairs) -> None:
    guard = HttpGuard(5.0, 10.0, max_pending=2, grace=1.0)
    conns = [pending(pairs, 0.0) for _ in range(2)]
    admit_all(guard, conns, now=0.0)
    for conn in conns:
        conn.client.sendall(b"GET / HTTP/1.1\r\n")
    guard.admit(cast(Any, pending(pairs, 5.0)), 5.0)
    assert [c.expired for c in conns] == [[], []]
    assert len(guard.pending) == 3
