"""``python -m bench.soak_idle``: scenario K1 of docs/reliability.md, idle capacity.

One ``aether-bridge serve`` node on a throwaway Redis holds N connections (default 1,000,
spread over 20 groups); each sends a heartbeat every ``--interval`` seconds (default 10, the
first ones staggered over an interval) for ``--duration`` seconds (default 600). Printed: RSS per
connection at the start and the end, heartbeat round-trip percentiles, replies missing, and
connections lost. K1's pass figures: ≤ 40 KiB per connection, heartbeat p99 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from pathlib import Path

import websockets

from .procs import free_port, raise_fd_limit, redis_server, rss_bytes, spawn, stop, wait_port
from .systems import _project

HEARTBEAT = '{"msg_type":"heartbeat","target":"echo"}'
GROUPS = 20


class Soak:
    def __init__(self, interval: float, duration: float) -> None:
        self.interval, self.duration = interval, duration
        self.rtts: list[float] = []
        self.missing = 0
        self.lost = 0

    async def client(self, url: str, start: float) -> None:
        try:
            async with websockets.connect(url, ping_interval=None, max_queue=None) as ws:
                await asyncio.sleep(max(0.0, start - time.monotonic()))
                await asyncio.sleep(random.uniform(0, self.interval))  # stagger
                while time.monotonic() < start + self.duration:
                    sent = time.monotonic()
                    await ws.send(HEARTBEAT)
                    if await self.heartbeat_reply(ws):
                        self.rtts.append(time.monotonic() - sent)
                    else:
                        self.missing += 1
                    await asyncio.sleep(max(0.0, sent + self.interval - time.monotonic()))
        except websockets.ConnectionClosed:
            self.lost += 1

    async def heartbeat_reply(self, ws: websockets.ClientConnection) -> bool:
        """Wait for this connection's heartbeat echo, skipping presence events of its group."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while True:
                    frame = await ws.recv()
                    if '"msg_type":"heartbeat"' in str(frame):
                        return True
        return False


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] if len(values) > 1 else 0.0


async def run(port: int, pid: int, connections: int, interval: float, duration: float) -> None:
    soak = Soak(interval, duration)
    base = f"ws://127.0.0.1:{port}/v3/ws/group"
    rss_before = rss_bytes([pid])
    start = time.monotonic() + connections / 200 + 5  # time to open them all first
    tasks = [
        asyncio.create_task(soak.client(f"{base}/k1g{i % GROUPS}/client/k1c{i}", start))
        for i in range(connections)
    ]
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    rss_open = rss_bytes([pid])
    await asyncio.gather(*tasks)
    rss_end = rss_bytes([pid])
    kib = 1024 * connections
    rtts_ms = [rtt * 1000 for rtt in soak.rtts]
    print(f"connections {connections}, heartbeat every {interval} s, {duration} s measured")
    print(f"RSS before {rss_before / 2**20:.1f} MiB, with connections {rss_open / 2**20:.1f} MiB,")
    print(
        f"  at the end {rss_end / 2**20:.1f} MiB: {(rss_open - rss_before) / kib:.1f} KiB per"
        f" connection after connecting, {(rss_end - rss_before) / kib:.1f} KiB at the end"
    )
    print(
        f"heartbeats answered {len(rtts_ms)}, missing {soak.missing}, connections lost"
        f" {soak.lost}; round trip ms p50 {percentile(rtts_ms, 50):.2f}"
        f" p99 {percentile(rtts_ms, 99):.2f} max {max(rtts_ms, default=0):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_idle", description=__doc__)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between heartbeats")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds measured")
    args = parser.parse_args()
    raise_fd_limit()
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as redis:
        port = free_port()
        node = spawn("node", _project(port, f"redis://127.0.0.1:{redis.port}"), port, Path(tmp), {})
        try:
            wait_port(port, node.proc, 30)
            asyncio.run(run(port, node.pid, args.connections, args.interval, args.duration))
        finally:
            stop(node)


if __name__ == "__main__":
    main()
