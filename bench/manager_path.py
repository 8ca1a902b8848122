"""CPU per group message through one node's manager, in process: receive -> publish -> memory
broker -> fan-out to 10 local recipients. Compares revisions, interleaved, to catch a hot-path
cost (issue 14 measured its traffic counter and latency histograms with it).

    .venv/bin/python -m bench.manager_path --rev e2dfc30 --rev HEAD --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .revision import unpack

MESSAGES, RECIPIENTS = 30_000, 10


class _Sink:
    def write_now(self, message: object) -> bool:
        return True

    async def send_text(self, text: str) -> None:
        return None

    async def close(self, code: int, reason: str) -> None:
        return None

    def abort(self, code: int, reason: str) -> None:
        return None


async def _measure() -> float:
    from v3_core import Channels, ConnectionManager, QueueLimits
    from v3_core.backends import MemoryHub
    from v3_core.backends.base import Backends
    from v3_core.backends.memory import MemoryBroker, MemoryCursorStore, MemoryPresenceStore

    hub = MemoryHub()
    backends = Backends(
        broker=MemoryBroker(hub),
        presence=MemoryPresenceStore(ttl=30, hub=hub),
        cursors=MemoryCursorStore(ttl=300, hub=hub),
        description="memory",
    )
    limits = QueueLimits(max_messages=10**7, max_bytes=10**10)
    channels = Channels("b:")
    async with ConnectionManager(
        backends, node_id="n1", channels=channels, presence_ttl=30, limits=limits
    ) as manager:
        sessions = [manager.connect("grp_a", f"c{i}", _Sink()) for i in range(RECIPIENTS)]
        conns = [await s.__aenter__() for s in sessions]
        for conn in conns:
            conn.start_writer()
        text = '{"msg_type": "msg", "target": "group", "msg": "hello"}'
        start = time.process_time()
        for _ in range(MESSAGES):
            await manager.receive(conns[0], text)
        while manager.stats.broker_messages < MESSAGES + RECIPIENTS:  # noqa: ASYNC110
            await asyncio.sleep(0)
        took = time.process_time() - start
        for session in sessions:
            await session.__aexit__(None, None, None)
    return took / MESSAGES * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", action="append", required=True, help="a git revision (twice+)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(f"{asyncio.run(_measure()):.3f}")
        return
    with tempfile.TemporaryDirectory(prefix="aether-bench-") as tmp:
        trees = {rev: unpack(rev, Path(tmp))[0] for rev in args.rev}
        results: dict[str, list[float]] = {rev: [] for rev in args.rev}
        for _ in range(args.rounds):
            for rev, tree in trees.items():
                env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{Path(__file__).parents[1]}"}
                out = subprocess.run(
                    [sys.executable, "-m", "bench.manager_path", "--child", "--rev", rev],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=tree,
                )
                results[rev].append(float(out.stdout))
    for rev, values in results.items():
        shown = " ".join(f"{v:.2f}" for v in sorted(values))
        print(f"{rev}: median {statistics.median(values):.2f} us CPU per message ({shown})")


if __name__ == "__main__":
    main()
