"""Where dead-letter samples live: in-process, or in Redis for every node.

Per group (or channel) and code the last ``keep`` samples, each cut to a few hundred bytes
(bridge/dead_letters.py), so the store holds at most ``max_keys`` x ``keep`` x ~1 KiB.
Redis keys (``p`` = AETHER_CHANNEL_PREFIX), all expiring ``ttl`` after their last write:
- ``{p}dl:index``          sorted set: ``<code> <group>`` -> last recorded (ms)
- ``{p}dl:k:<code> <group>`` list of JSON samples, newest first, trimmed to ``keep``
- ``{p}dl:counts``         hash: code -> dead letters counted by every node
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis

from v3_core.backends.redis_client import backend_errors, redis_client

DEFAULT_KEEP = 10
DEFAULT_TTL = 3 * 86400.0
MAX_KEYS = 500  # groups x codes kept; the least recently recorded go first


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One sample; ``group_id`` is the Vision ID (or, for an unreadable broker message, the
    channel), with the database integers a legacy client knows in ``*_legacy``."""

    at: float  # unix seconds
    node: str
    source: str  # "legacy-frame" or "broker"
    code: str
    group_id: str
    detail: str
    sample: str = ""
    size: int = 0  # bytes of the original frame or message
    client_id: str = ""
    group_legacy: str = ""
    client_legacy: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeadLetter:
        return cls(**{k: data[k] for k in cls.__slots__ if k in data})


class DeadLetterStore(Protocol):
    """Samples and counts shared by the nodes of a deployment.

    - ``record`` adds samples (each kept under its group and code, the newest ``keep``) and
      adds ``counts`` (code -> n) to the totals.
    - ``recent`` returns up to ``limit`` samples, newest first; samples older than the TTL
      are gone. Every method raises BackendUnavailable when the store does not answer.
    """

    async def record(self, letters: list[DeadLetter], counts: dict[str, int]) -> None: ...
    async def recent(self, limit: int) -> list[DeadLetter]: ...
    async def counts(self) -> dict[str, int]: ...
    async def aclose(self) -> None: ...


def _key(letter: DeadLetter) -> str:
    return f"{letter.code} {letter.group_id}"


class MemoryDeadLetterStore:
    """A DeadLetterStore for one process (or in-process test nodes sharing one)."""

    def __init__(
        self,
        *,
        keep: int = DEFAULT_KEEP,
        ttl: float = DEFAULT_TTL,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keep, self._ttl, self._max_keys, self._clock = keep, ttl, max_keys, clock
        self._samples: dict[str, deque[DeadLetter]] = {}
        self._counts: dict[str, int] = {}

    async def record(self, letters: list[DeadLetter], counts: dict[str, int]) -> None:
        for letter in letters:
            key = _key(letter)
            samples = self._samples.pop(key, None) or deque(maxlen=self._keep)
            samples.appendleft(letter)
            self._samples[key] = samples  # re-inserted: dict order is least recent first
        while len(self._samples) > self._max_keys:
            del self._samples[next(iter(self._samples))]
        for code, n in counts.items():
            self._counts[code] = self._counts.get(code, 0) + n

    async def recent(self, limit: int) -> list[DeadLetter]:
        horizon = self._clock() - self._ttl
        found = [d for samples in self._samples.values() for d in samples if d.at >= horizon]
        return sorted(found, key=lambda d: -d.at)[:limit]

    async def counts(self) -> dict[str, int]:
        return dict(self._counts)

    async def aclose(self) -> None:
        return None


class RedisDeadLetterStore:
    """A DeadLetterStore in Redis: one pipeline per flush, with every key expiring."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        timeout: float = 2.0,
        keep: int = DEFAULT_KEEP,
        ttl: float = DEFAULT_TTL,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._redis: aioredis.Redis = redis_client(url, timeout=timeout)
        self._p = f"{prefix}dl:"
        self._keep, self._ttl, self._max_keys = keep, ttl, max_keys

    async def record(self, letters: list[DeadLetter], counts: dict[str, int]) -> None:
        if not letters and not counts:
            return
        ttl, index = max(1, int(self._ttl)), f"{self._p}index"
        async with self._redis.pipeline(transaction=False) as pipe:
            for letter in letters:
                key = _key(letter)
                samples = f"{self._p}k:{key}"
                pipe.lpush(samples, orjson.dumps(letter.as_json()))
                pipe.ltrim(samples, 0, self._keep - 1)
                pipe.expire(samples, ttl)
                pipe.zadd(index, {key: int(letter.at * 1000)}, gt=True)
            if letters:
                pipe.zremrangebyrank(index, 0, -self._max_keys - 1)
                pipe.expire(index, ttl)
            for code, n in counts.items():
                pipe.hincrby(f"{self._p}counts", code, n)
            if counts:
                pipe.expire(f"{self._p}counts", ttl)
            await self._call(pipe.execute())

    async def recent(self, limit: int) -> list[DeadLetter]:
        index = f"{self._p}index"
        horizon = int((time.time() - self._ttl) * 1000)
        await self._call(self._redis.zremrangebyscore(index, "-inf", horizon))
        keys = [_text(k) for k in await self._call(self._redis.zrevrange(index, 0, -1))]
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.lrange(f"{self._p}k:{key}", 0, -1)
        found: list[DeadLetter] = []
        for samples in await self._call(pipe.execute()) if keys else []:
            found.extend(DeadLetter.from_json(orjson.loads(raw)) for raw in samples)
        return sorted(found, key=lambda d: -d.at)[:limit]

    async def counts(self) -> dict[str, int]:
        fields = await self._call(self._redis.hgetall(f"{self._p}counts"))
        return {_text(k): int(v) for k, v in fields.items()}

    async def _call(self, pending: Any) -> Any:
        with backend_errors("dead letter store call failed"):
            return await pending

    async def aclose(self) -> None:
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def open_dead_letter_store(
    redis_url: str | None,
    *,
    prefix: str,
    timeout: float = 2.0,
    keep: int = DEFAULT_KEEP,
    ttl: float = DEFAULT_TTL,
) -> DeadLetterStore:
    """Redis when a URL is given, else in-process (this node only)."""
    if redis_url is not None:
        return RedisDeadLetterStore(redis_url, prefix=prefix, timeout=timeout, keep=keep, ttl=ttl)
    return MemoryDeadLetterStore(keep=keep, ttl=ttl)
