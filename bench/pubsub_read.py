"""CPU per pub/sub message read: redis-py's ``PubSub.get_message`` against our ``RedisWire``.

``python -m bench.pubsub_read [REDIS_URL]``: a child process publishes paced messages (one
every 0.5 ms, the few-hundred-a-second regime of a node in the heavy step, where every message
wakes the reader) on one channel; this process reads them and reports its own CPU time per
message (``time.process_time``), both readers alternated, three rounds each.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import redis
import redis.asyncio as aioredis

from v3_core.backends.redis_wire import RedisWire

CHANNEL = "bench:pubsub-read"
MESSAGES = 4000
PAYLOAD = b"n1 - - -\n" + b'{"msg_type":"msg","target":"group","payload":{"body":"%s"}}' % (
    b"x" * 120
)


def publish(url: str) -> None:
    client = redis.Redis.from_url(url)
    for _ in range(MESSAGES):
        client.publish(CHANNEL, PAYLOAD)
        time.sleep(0.0005)


def _publisher(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bench.pubsub_read", url, "--publish"])


async def read_redis_py(url: str) -> float:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)
    while (await pubsub.get_message(timeout=1.0) or {}).get("type") != "subscribe":
        pass
    publisher, got = _publisher(url), 0
    started = time.process_time()
    while got < MESSAGES:
        message = await pubsub.get_message(timeout=5.0)
        if message is not None and message["type"] == "message":
            got += 1
    spent = time.process_time() - started
    publisher.wait()
    await pubsub.aclose()
    await client.aclose()
    return spent / MESSAGES


async def read_wire(url: str) -> float:
    wire = await RedisWire.open(url, timeout=2.0)
    wire.send(("SUBSCRIBE", CHANNEL))
    await wire.replies()
    publisher, got = _publisher(url), 0
    started = time.process_time()
    while got < MESSAGES:
        async with asyncio.timeout(5.0):
            replies = await wire.replies()
        got += sum(1 for reply in replies if reply[0] == b"message")
    spent = time.process_time() - started
    publisher.wait()
    await wire.aclose()
    return spent / MESSAGES


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"
    if sys.argv[2:] == ["--publish"]:
        publish(url)
        return
    try:
        import uvloop  # the loop the server runs on, when installed
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    results: dict[str, list[float]] = {"redis-py PubSub.get_message": [], "RedisWire.replies": []}
    for _ in range(3):
        results["redis-py PubSub.get_message"].append(run(read_redis_py(url)))
        results["RedisWire.replies"].append(run(read_wire(url)))
    for name, values in results.items():
        shown = ", ".join(f"{v * 1e6:.1f}" for v in values)
        print(f"{name}: {shown} µs of reader CPU per message ({MESSAGES} paced messages)")


if __name__ == "__main__":
    main()
