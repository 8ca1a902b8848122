"""Hold N idle V3 connections to a node for 30 s (used by bench/memory_profile.py)."""

import asyncio
import sys

import websockets


async def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    connections = [
        await websockets.connect(f"{url}/v3/ws/group/g{i % 20}/client/c{i}", max_queue=None)
        for i in range(count)
    ]
    print("ready", flush=True)
    await asyncio.sleep(30)
    for connection in connections:
        await connection.close()


asyncio.run(main())
