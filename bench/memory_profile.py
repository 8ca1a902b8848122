"""Where an idle connection's memory goes: a tracemalloc snapshot of one in-process node.

Run from the repository root: ``.venv/bin/python bench/memory_profile.py``. The clients live in
a separate process (bench/idle_clients.py) so only the server's allocations are counted.
"""

import asyncio
import collections
import gc
import subprocess
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.settings import Settings
from tests.support.servers import serve_app

N = 1000
CLIENTS = Path(__file__).with_name("idle_clients.py")


def census() -> collections.Counter[str]:
    gc.collect()
    return collections.Counter(type(o).__name__ for o in gc.get_objects())


def owner(filename: str) -> str:
    if "uvicorn" in filename:
        return "uvicorn"
    if "site-packages/websockets" in filename:
        return "websockets"
    if "/python3." in filename and "site-packages" not in filename:
        return "asyncio and stdlib"
    return "project" if "site-packages" not in filename else filename.split("site-packages/")[1]


async def main() -> None:
    async with serve_app(Settings(presence_ttl=30, ping_interval=20)) as node:
        before = census()
        tracemalloc.start(1)
        first = tracemalloc.take_snapshot()
        clients = await asyncio.create_subprocess_exec(
            sys.executable, str(CLIENTS), node.ws, str(N), stdout=subprocess.PIPE
        )
        assert clients.stdout is not None
        await clients.stdout.readline()
        await asyncio.sleep(1)
        gc.collect()
        second = tracemalloc.take_snapshot()
        after = census()
        stats = second.compare_to(first, "lineno")
        print(f"traced bytes per connection: {sum(s.size_diff for s in stats) / N:,.0f}")
        by_owner: collections.Counter[str] = collections.Counter()
        for stat in stats:
            by_owner[owner(stat.traceback[0].filename)] += stat.size_diff
        for name, size in by_owner.most_common():
            print(f"{size / N:8,.0f} B  {name}")
        print("top lines:")
        for stat in sorted(stats, key=lambda s: -s.size_diff)[:25]:
            frame = stat.traceback[0]
            where = f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}"
            print(f"{stat.size_diff / N:8,.0f} B  {stat.count_diff / N:6.2f}  {where}")
        print("objects per connection:")
        for name, count in (after - before).most_common(15):
            print(f"{count / N:6.2f}  {name}")
        clients.kill()


asyncio.run(main())
