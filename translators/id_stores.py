"""Where the legacy-integer <-> Vision ID mapping lives: in-process, or in Redis for every node.

`IdMapper` (id_mapping.py) caches in front of a store and decides what to do on a miss.
"""

from __future__ import annotations

from typing import Literal, Protocol

import redis.asyncio as aioredis

from v3_core.backends.redis_client import backend_errors, redis_client

POOL_SIZE = 32  # concurrent ID store calls; more wait for a connection (up to the timeout)

Namespace = Literal["group", "client"]


# KEYS[1] legacy -> vision key, KEYS[2] vision -> legacy key; ARGV[1] vision id, ARGV[2] legacy
# id. Maps both ways unless the legacy id is mapped already; returns the Vision ID that won.
_PUT_IF_ABSENT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SET', KEYS[2], ARGV[2], 'NX')
  return ARGV[1]
end
return redis.call('GET', KEYS[1])
"""


class IdStore(Protocol):
    """Database integer <-> Vision ID, in two namespaces ("group", "client"); never expires.

    - ``get`` / ``get_legacy`` return None for an ID that is not mapped.
    - ``put_if_absent`` maps ``legacy`` to ``vision_id`` (and back) unless ``legacy`` is mapped
      already, atomically, and returns the Vision ID mapped afterwards: nodes that mint at
      once all get the one winner. A Vision ID's first integer stays its reverse mapping.
    - Every method raises BackendUnavailable when the store does not answer.
    """

    async def get(self, namespace: Namespace, legacy: str) -> str | None: ...
    async def get_legacy(self, namespace: Namespace, vision_id: str) -> str | None: ...
    async def put_if_absent(self, namespace: Namespace, legacy: str, vision_id: str) -> str: ...
    async def aclose(self) -> None: ...


class MemoryIdStore:
    """An IdStore for one process: the mapping lasts as long as the process does."""

    def __init__(self) -> None:
        self._forward: dict[tuple[str, str], str] = {}
        self._reverse: dict[tuple[str, str], str] = {}

    async def get(self, namespace: Namespace, legacy: str) -> str | None:
        return self._forward.get((namespace, legacy))

    async def get_legacy(self, namespace: Namespace, vision_id: str) -> str | None:
        return self._reverse.get((namespace, vision_id))

    async def put_if_absent(self, namespace: Namespace, legacy: str, vision_id: str) -> str:
        winner = self._forward.setdefault((namespace, legacy), vision_id)
        if winner == vision_id:
            self._reverse.setdefault((namespace, vision_id), legacy)
        return winner

    async def aclose(self) -> None:
        return None


class RedisIdStore:
    """An IdStore in Redis, shared by every node and kept across restarts.

    Keys: ``{prefix}id:{<namespace>}:l:<legacy>`` and ``{prefix}id:{<namespace>}:v:<vision>``;
    the namespace is the hash tag, so both keys of a pair share a Redis Cluster slot.
    """

    def __init__(self, url: str, *, prefix: str, timeout: float = 2.0) -> None:
        self._prefix = prefix
        # Every legacy connect reads here: a burst of them waits for a pooled connection
        # rather than failing at redis-py's 100th concurrent call (scenario B4 found it).
        self._redis: aioredis.Redis = redis_client(url, timeout=timeout, pool_size=POOL_SIZE)
        self._put = self._redis.register_script(_PUT_IF_ABSENT)

    def _key(self, namespace: Namespace, side: str, value: str) -> str:
        return f"{self._prefix}id:{{{namespace}}}:{side}:{value}"

    async def get(self, namespace: Namespace, legacy: str) -> str | None:
        return await self._get(self._key(namespace, "l", legacy))

    async def get_legacy(self, namespace: Namespace, vision_id: str) -> str | None:
        return await self._get(self._key(namespace, "v", vision_id))

    async def put_if_absent(self, namespace: Namespace, legacy: str, vision_id: str) -> str:
        keys = [self._key(namespace, "l", legacy), self._key(namespace, "v", vision_id)]
        with backend_errors("ID store write failed"):
            winner = await self._put(keys, [vision_id, legacy])
        return _text(winner)

    async def _get(self, key: str) -> str | None:
        with backend_errors("ID store read failed"):
            value = await self._redis.get(key)
        return None if value is None else _text(value)

    async def aclose(self) -> None:
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
