"""``python -m bench.presence_refresh``: the node's CPU for one presence refresh and one sweep.

A node re-touches the presence entry of every connection it holds once per third of
``AETHER_PRESENCE_TTL`` and sweeps every group it holds; at 19,000 connections that is the
biggest presence work of an idle node. This runs `RedisPresenceStore.touch` over
``--connections`` entries in groups of ``--group-size``, and `sweep` over their groups,
against a throwaway redis-server, in this process; it prints the CPU time of each (best and
median of ``--repeat``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bench import procs
from v3_core.backends.redis_presence import RedisPresenceStore


async def cpu_ms(action: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    """This process' CPU for each of ``repeat`` runs of ``action``, in ms."""
    await action()  # warm: scripts loaded, connections open
    runs = []
    for _ in range(repeat):
        started = time.process_time()
        await action()
        runs.append((time.process_time() - started) * 1000)
    return runs


async def measure(url: str, connections: int, group_size: int, repeat: int) -> str:
    store = RedisPresenceStore(url, ttl=30.0, prefix="bench:")
    entries = [(f"g{i // group_size}", f"c{i}", f"conn{i}") for i in range(connections)]
    groups = sorted({group for group, _, _ in entries})
    try:
        touch = await cpu_ms(lambda: store.touch(entries), repeat)
        sweep = await cpu_ms(lambda: store.sweep(groups), repeat)
    finally:
        await store.aclose()
    return (
        f"| touch {connections:,} connections | {min(touch):.1f} ms | "
        f"{statistics.median(touch):.1f} ms |\n"
        f"| sweep {len(groups):,} groups | {min(sweep):.2f} ms | "
        f"{statistics.median(sweep):.2f} ms |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.presence_refresh", description=__doc__)
    parser.add_argument("--connections", type=int, default=19_000)
    parser.add_argument("--group-size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aether-presence-") as tmp:
        with procs.redis_server(Path(tmp)) as redis:
            url = f"redis://127.0.0.1:{redis.port}/0"
            rows = asyncio.run(measure(url, args.connections, args.group_size, args.repeat))
    print("| node CPU | best | median |\n|---|---:|---:|")
    print(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
