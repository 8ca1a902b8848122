"""RedisCursorStore: where legacy connections leave their stream positions when they end.

One hash per group and client, a field per ended connection: the positions, behind the Unix
time they stop counting. The key's TTL is refreshed by each save, so an old field can outlive
its own TTL inside it; reads skip those.
"""

from __future__ import annotations

import asyncio
import time

from .redis_client import backend_errors, redis_client

POOL_SIZE = 16  # concurrent calls: saves at shutdown, reads on legacy connects


class RedisCursorStore:
    def __init__(self, url: str, *, ttl: float, prefix: str, timeout: float = 2.0) -> None:
        self.ttl = ttl
        self._prefix = prefix
        self._timeout = timeout
        self._redis = redis_client(url, timeout=timeout, pool_size=POOL_SIZE)

    def _key(self, group_id: str, client_id: str) -> str:
        return f"{self._prefix}lr:{{{group_id}}}:{client_id}"

    async def save(self, group_id: str, client_id: str, conn_id: str, positions: str) -> None:
        key = self._key(group_id, client_id)
        value = f"{time.time() + self.ttl:.3f}|{positions}"
        with backend_errors("Redis cursor save failed"):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, conn_id, value)
                pipe.pexpire(key, max(1, round(self.ttl * 1000)))
                await asyncio.wait_for(pipe.execute(), self._timeout)

    async def entries(self, group_id: str, client_id: str) -> dict[str, str]:
        with backend_errors("Redis cursor read failed"):
            held = await asyncio.wait_for(
                self._redis.hgetall(self._key(group_id, client_id)), self._timeout
            )
        now = time.time()
        found: dict[str, str] = {}
        for conn, value in held.items():
            until, _, positions = _text(value).partition("|")
            if float(until or 0) > now:
                found[_text(conn)] = positions
        return found

    async def discard(self, group_id: str, client_id: str, conn_id: str) -> None:
        with backend_errors("Redis cursor discard failed"):
            await asyncio.wait_for(
                self._redis.hdel(self._key(group_id, client_id), conn_id), self._timeout
            )

    async def aclose(self) -> None:
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
