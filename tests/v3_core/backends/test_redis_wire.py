"""RedisWire's timeouts: silence from Redis fails a read, a busy node reading late does not."""

from __future__ import annotations

import asyncio
import time

import pytest

from v3_core.backends.redis_wire import RedisWire


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_reply_that_came_in_time_is_read_however_late_the_loop_looks(redis_url, loop):
    """The loop is held 0.5 s (a storm's handshakes) while a reply arrives in 1 ms: when the
    loop runs again, the 0.2 s timer is due and the reply waits in the socket. It used to be
    taken for a silent Redis (TimeoutError: a failed publish, presence call or lookup)."""
    if loop == "uvloop":  # what nodes run: it runs due timers before it polls the sockets
        uvloop = pytest.importorskip("uvloop")
        runner = uvloop.new_event_loop()
    else:
        runner = asyncio.new_event_loop()
    try:
        runner.run_until_complete(_held_round_trip(redis_url))
    finally:
        runner.close()


async def _held_round_trip(redis_url: str) -> None:
    wire = await RedisWire.open(redis_url, timeout=0.2)
    try:
        trip = asyncio.create_task(wire.round_trip(("PING",)))
        await asyncio.sleep(0)  # the PING is out, the read waits with its 0.2 s timer
        time.sleep(0.5)  # noqa: ASYNC251 (the busy loop under test: it runs nothing meanwhile)
        assert await trip == [b"PONG"]
    finally:
        await wire.aclose()


async def test_silence_from_redis_fails_the_read(redis_url):
    wire = await RedisWire.open(redis_url, timeout=0.2)
    try:
        with pytest.raises(TimeoutError):
            await wire.round_trip(("BLPOP", "test:never-pushed", "1"))  # answers in 1 s
    finally:
        await wire.aclose()
