"""Hostile input at the frame level against a served node: a PING flood that never reads, and
a keepalive close that a client which never reads would have held open forever.

The flooder is a raw socket (rawws.py) with a 4 KiB receive buffer, writing masked 125-byte
PINGs from a thread as fast as the node reads them; echo clients measure what the others feel.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from dataclasses import dataclass

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from ..conftest import NodeProcess
from ..helpers import eventually, metrics, presence
from .conftest import LaunchNode
from .rawws import OP_PING, RawWebSocket
from .traffic import Member, percentile, rss_kib

pytestmark = pytest.mark.chaos

FLOOD = 6.0  # seconds the flooder may flood with no ping limit (300 MB grew in 10 s once)
ECHOERS = 3


def ping_burst(count: int) -> bytes:
    """``count`` masked PING frames of 125 bytes each, ready to write."""
    mask = os.urandom(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"p" * 125))
    return (bytes([0x80 | OP_PING, 0x80 | 125]) + mask + payload) * count


class Flooder(threading.Thread):
    """Writes PINGs on a blocking socket until ``until``, or until the node cuts the socket."""

    def __init__(self, sock: socket.socket, until: float) -> None:
        super().__init__(daemon=True)
        self.sock, self.until = sock, until
        self.sent = 0
        self.cut_at: float | None = None
        self.error = ""

    def run(self) -> None:
        burst = ping_burst(512)
        self.sock.setblocking(True)
        self.sock.settimeout(0.5)
        while time.monotonic() < self.until:
            try:
                self.sock.sendall(burst)
                self.sent += 512
            except TimeoutError:
                continue  # the node stopped reading: it is closing us, or pausing
            except OSError as exc:  # reset, broken pipe: the node cut the socket
                self.cut_at, self.error = time.monotonic(), type(exc).__name__
                return


async def echo_round_trips(ws: ClientConnection, until: float) -> list[float]:
    """Echo frames, one at a time, until ``until``; each round trip's seconds."""
    trips: list[float] = []
    async with ws:
        seq = 0
        while time.monotonic() < until:
            seq += 1
            sent = time.monotonic()
            frame = {"msg_type": "msg", "target": "echo", "payload": {"seq": seq}}
            await ws.send(json.dumps(frame))
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if reply.get("payload", {}).get("seq") == seq:
                    break
            trips.append(time.monotonic() - sent)
            await asyncio.sleep(0.05)
    return trips


@dataclass
class FloodOutcome:
    cut_after: float | None  # seconds from the flood's start to the node cutting the flooder
    rss_growth_mib: float  # the node's peak RSS during the flood, over its RSS before
    p99: float  # seconds, the echo round trips of the other clients during the flood


async def flood(node: NodeProcess, seconds: float, name: str) -> FloodOutcome:
    """Flood PINGs from a client that never reads, for up to ``seconds``, while ECHOERS
    other clients echo; print and return what the node did and what the others felt."""
    flood_ws = await RawWebSocket.connect(node.port, "/v3/ws/group/g1/client/flooder", rcvbuf=4096)
    # The others are connected before the flood: what they feel is the question here, not
    # whether a connect meanwhile waits out the broker timeout on a loaded 2-core CI machine.
    calm = [
        await websockets.connect(f"{node.ws}/v3/ws/group/calm/client/calm{i}")
        for i in range(ECHOERS)
    ]
    await asyncio.sleep(0.5)  # the joins settle before the memory baseline
    rss_before = rss_kib(node.pid)
    start = time.monotonic()
    flooder = Flooder(flood_ws.sock, start + seconds)
    flooder.start()
    echoing = [asyncio.create_task(echo_round_trips(ws, start + seconds)) for ws in calm]
    peak = rss_before
    while time.monotonic() < start + seconds:
        peak = max(peak, rss_kib(node.pid))
        await asyncio.sleep(0.2)  # the sampling period of the peak
    trips = [trip for task in echoing for trip in await task]
    await asyncio.to_thread(flooder.join, 5)
    await asyncio.sleep(1.0)
    rss_after = rss_kib(node.pid)
    flood_ws.close()
    p99 = percentile(trips, 0.99) if trips else float("inf")  # none: nobody got an echo
    cut_after = flooder.cut_at - start if flooder.cut_at else None
    cut = f"{cut_after:.2f} s ({flooder.error})" if cut_after is not None else "never"
    print(f"FIGURE {name}: {flooder.sent} PINGs sent, flooder cut after {cut}")
    print(
        f"FIGURE {name}: node RSS {rss_before / 1024:.1f} MiB before, peak "
        f"{peak / 1024:.1f}, {rss_after / 1024:.1f} one second after"
    )
    print(
        f"FIGURE {name}: {len(trips)} echo round trips of {ECHOERS} other clients, "
        f"p99 {1000 * p99:.1f} ms, max {1000 * max(trips, default=p99):.1f} ms"
    )
    return FloodOutcome(cut_after, (peak - rss_before) / 1024, p99)


async def test_a_ping_flood_is_cut_at_once_and_nobody_else_feels_it(redis_url, launch: LaunchNode):
    """Past AETHER_MAX_PINGS_PER_SECOND (10, after a burst of 5 s worth) the flooder is
    closed with 4529 within its first reads, before its pings can hold the loop."""
    node = launch(redis_url, "nodeA")
    outcome = await flood(node, 3.0, "ping flood")
    assert outcome.cut_after is not None and outcome.cut_after < 1.0, "not cut at once"
    assert "with 4529: it sends over 10 pings/s" in node.log.read_text()
    assert outcome.rss_growth_mib <= 40
    assert outcome.p99 <= 0.5
    counted = await metrics(node.http)
    assert counted['aether_ping_closes_total{reason="too-many-pings"}'] == 1


async def test_a_ping_flood_without_the_ping_limit_is_cut_as_a_slow_consumer(
    redis_url, launch: LaunchNode
):
    """With no ping limit, the backpressure guard: pongs do not pile up (only the latest is
    kept while the socket is full) and a flooder whose socket stays full 2 s is closed as a
    slow consumer. Meanwhile the others do feel it (parsing pings, a pong written for each
    until the socket fills): p99 is printed, not bounded."""
    node = launch(redis_url, "nodeA", AETHER_MAX_PINGS_PER_SECOND="0")
    outcome = await flood(node, FLOOD, "ping flood, no ping limit")
    assert outcome.cut_after is not None, "the flooder was never closed"
    assert "with 4008: it keeps pinging and does not read" in node.log.read_text()
    assert outcome.rss_growth_mib <= 40, "pongs piled up in the node"
    counted = await metrics(node.http)
    assert counted['aether_ping_closes_total{reason="not-reading"}'] == 1


async def test_a_keepalive_close_the_client_never_reads_is_aborted(redis_url, launch: LaunchNode):
    """A client that neither reads nor pongs, with data stuck in its socket: the keepalive
    close used to wait for that data to drain, forever (socket, presence and buffers held).
    The slow-consumer bounds are set out of reach so that only the keepalive acts."""
    node = launch(
        redis_url,
        "nodeA",
        AETHER_PING_INTERVAL="1",
        AETHER_PING_TIMEOUT="1",
        AETHER_SEND_TIMEOUT="120",
        AETHER_QUEUE_MAX_BYTES=str(256 << 20),
        AETHER_QUEUE_MAX_MESSAGES="100000",
    )
    talker = await Member.open(node.ws, "g1", "talker")
    mute = await RawWebSocket.connect(node.port, "/v3/ws/group/g1/client/mute", rcvbuf=4096)
    start = time.monotonic()
    pad = "x" * 16384
    for i in range(400):  # 6.4 MiB: more than the kernel buffers between them hold
        frame = {"msg_type": "msg", "target": "group", "payload": {"i": i, "pad": pad}}
        await talker.ws.send(json.dumps(frame))

    async def gone() -> bool:
        return await presence(node.http, "g1") == ["talker"]

    await eventually(gone, 10.0)
    left = time.monotonic() - start
    mute.close()
    print(
        f"FIGURE stuck keepalive close: the mute client left presence {left:.2f} s after connecting"
    )
    assert talker.closed_at is None
    await talker.ws.close()
