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

import pytest
import websockets

from ..helpers import eventually, presence
from .conftest import LaunchNode
from .rawws import OP_PING, RawWebSocket
from .traffic import Member, percentile, rss_kib

pytestmark = pytest.mark.chaos

FLOOD = 6.0  # seconds the flooder may flood (the issue saw 300 MB grow in 10 s)
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


async def echo_round_trips(base: str, name: str, until: float) -> list[float]:
    """Echo frames, one at a time, until ``until``; each round trip's seconds."""
    trips: list[float] = []
    async with websockets.connect(f"{base}/v3/ws/group/calm/client/{name}") as ws:
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


async def test_ping_flood_is_cut_and_memory_stays_bounded(redis_url, launch: LaunchNode):
    """A client that floods PINGs and never reads: its pongs do not pile up, it is closed as
    a slow consumer, and the echo round trip of everyone else stays low."""
    node = launch(redis_url, "nodeA")
    flood_ws = await RawWebSocket.connect(node.port, "/v3/ws/group/g1/client/flooder", rcvbuf=4096)
    await asyncio.sleep(0.5)  # the joins settle before the memory baseline
    rss_before = rss_kib(node.pid)
    start = time.monotonic()
    flooder = Flooder(flood_ws.sock, start + FLOOD)
    flooder.start()
    echoing = [
        asyncio.create_task(echo_round_trips(node.ws, f"calm{i}", start + FLOOD))
        for i in range(ECHOERS)
    ]
    peak = rss_before
    while time.monotonic() < start + FLOOD:
        peak = max(peak, rss_kib(node.pid))
        await asyncio.sleep(0.2)  # the sampling period of the peak
    trips = [trip for task in echoing for trip in await task]
    await asyncio.to_thread(flooder.join, 5)
    await asyncio.sleep(1.0)
    rss_after = rss_kib(node.pid)
    flood_ws.close()
    p99 = percentile(trips, 0.99) if trips else float("inf")  # none: nobody got an echo
    cut = f"{flooder.cut_at - start:.2f} s ({flooder.error})" if flooder.cut_at else "never"
    print(f"FIGURE ping flood: {flooder.sent} PINGs sent, flooder cut after {cut}")
    print(
        f"FIGURE ping flood: node RSS {rss_before / 1024:.1f} MiB before, peak "
        f"{peak / 1024:.1f}, {rss_after / 1024:.1f} one second after"
    )
    print(
        f"FIGURE ping flood: {len(trips)} echo round trips of {ECHOERS} other clients, "
        f"p99 {1000 * p99:.1f} ms, max {1000 * max(trips, default=p99):.1f} ms"
    )
    assert flooder.cut_at is not None, "the flooder was never closed"
    assert "keeps pinging and does not read" in node.log.read_text()
    assert (peak - rss_before) / 1024 <= 40, "pongs piled up in the node"
    assert p99 <= 0.5


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
