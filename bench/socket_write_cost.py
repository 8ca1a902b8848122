"""``python -m bench.socket_write_cost``: the kernel's cost of one small write per socket, as the
number of sockets grows, with no gateway at all.

The growth table (``bench.growth``) shows the CPU per delivery rising with connections per node
for groups of 100, and the profile puts the rise in the socket write itself. This measures that
write alone: one process holds ``--conns`` loopback TCP connections to two sink processes
(uvloop, reading and discarding, as the load generators do) and writes a ``--size``-byte frame
to each member of a group in turn, group after group, at ``--rate`` writes a second, as the
gateway's fan-out does. Printed: the writer's CPU per write (its thread's CPU time, system
calls included), for every group size and connection count asked.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection

from bench import procs

SINKS = 2  # as the growth cells' load generators
SETTLE_S = 1.0  # after connecting and after closing: the sinks catch up before a measure


class _Discard(asyncio.Protocol):
    def data_received(self, data: bytes) -> None:
        pass


def _sink(ready: Connection) -> None:
    """Accept every connection and read and drop what arrives, until killed."""
    import uvloop

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(
            _Discard, "127.0.0.1", 0, backlog=4096
        )
        ready.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    uvloop.run(serve())


def _connect(ports: Sequence[int], count: int) -> list[socket.socket]:
    socks = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", ports[i % len(ports)]))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        socks.append(sock)
    return socks


def measure(
    socks: Sequence[socket.socket], group: int, rate: float, seconds: float, size: int
) -> float:
    """Microseconds of this thread's CPU per write, writing group after group at ``rate``."""
    frame = b"\x81\x7e" + size.to_bytes(2, "big") + b"x" * size  # a text frame, as a delivery
    groups = [socks[i : i + group] for i in range(0, len(socks) - group + 1, group)]
    bursts_per_s = rate / group
    writes = 0
    cpu_ns = 0
    start = time.monotonic()
    next_at = start
    burst = 0
    while time.monotonic() - start < seconds:
        members = groups[burst % len(groups)]
        began = time.thread_time_ns()
        for sock in members:
            sock.send(frame)
        cpu_ns += time.thread_time_ns() - began
        writes += len(members)
        burst += 1
        next_at += 1 / bursts_per_s
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return cpu_ns / writes / 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.socket_write_cost", description=__doc__)
    parser.add_argument("--conns", default="1000,5000,19000", help="connection counts")
    parser.add_argument("--groups", default="10,100,1000", help="group sizes")
    parser.add_argument("--rate", type=float, default=20_000, help="writes a second")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured per cell")
    parser.add_argument("--size", type=int, default=250, help="payload bytes (126-65535)")
    args = parser.parse_args(argv)
    procs.raise_fd_limit()
    conns = [int(c) for c in args.conns.split(",")]
    group_sizes = [int(g) for g in args.groups.split(",")]
    context = multiprocessing.get_context("spawn")
    sinks, ports = [], []
    for _ in range(SINKS):
        here, there = context.Pipe()
        sink = context.Process(target=_sink, args=(there,), daemon=True)
        sink.start()
        sinks.append(sink)
        ports.append(here.recv())
    print(f"| connections | {' | '.join(f'groups of {g:,}' for g in group_sizes)} |")
    print(f"|---:|{'---:|' * len(group_sizes)}")
    try:
        for count in conns:
            socks = _connect(ports, count)
            time.sleep(SETTLE_S)
            row = [measure(socks, g, args.rate, args.seconds, args.size) for g in group_sizes]
            print(f"| {count:,} | {' | '.join(f'{us:.1f} µs' for us in row)} |", flush=True)
            for sock in socks:
                sock.close()
            time.sleep(SETTLE_S)
    finally:
        for sink in sinks:
            sink.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
