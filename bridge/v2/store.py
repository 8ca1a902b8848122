"""Where the V2 policy and usage live: in-process, or in Redis for every node.

Redis keys (``p`` = AETHER_CHANNEL_PREFIX):
- ``{p}v2:mode``        hash: ``*`` -> global mode, ``<group Vision ID>`` -> override
- ``{p}v2:groups``      sorted set: group -> last seen (ms)
- ``{p}v2:g:<group>``   hash: ``legacy``, ``l:<client>`` legacy integer, ``m:<client>``
  messages, ``n:<client>`` connects
- ``{p}v2:s:<group>``   sorted set: client -> last seen (ms); ``ZADD GT`` keeps the latest
Usage keys expire ``usage_ttl`` after their last write; the mode hash never expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from v3_core.backends.redis_client import backend_errors, redis_client

from .policy import GLOBAL, Mode, V2Policy
from .usage import ClientDelta, ClientUsage, GroupUsage, UsageDelta, merge_into

DEFAULT_USAGE_TTL = 30 * 86400.0
_RECORD_CHUNK = 100  # commands per pipeline when recording usage (each ~50 µs to build)


class V2Store(Protocol):
    """The V2 mode and usage shared by every node of a deployment.

    - ``set_mode(scope, None)`` removes that scope's entry: a group falls back to the global
      mode, the global mode to ``open``. ``scope`` is ``GLOBAL`` or a group Vision ID.
    - ``record`` adds counts and keeps the latest ``last_seen``; it is additive, so several
      nodes flushing at once add up.
    - Usage older than the store's TTL is forgotten. Every method raises BackendUnavailable
      when the store does not answer.
    """

    async def policy(self) -> V2Policy: ...
    async def set_mode(self, scope: str, mode: Mode | None) -> None: ...
    async def record(self, delta: UsageDelta) -> None: ...
    async def usage(self) -> list[GroupUsage]: ...
    async def aclose(self) -> None: ...


class MemoryV2Store:
    """A V2Store for one process (or for in-process test nodes sharing one)."""

    def __init__(
        self, *, usage_ttl: float = DEFAULT_USAGE_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        self._modes: dict[str, Mode] = {}
        self._usage: UsageDelta = {}
        self._ttl = usage_ttl
        self._clock = clock

    async def policy(self) -> V2Policy:
        return V2Policy.from_fields(self._modes)

    async def set_mode(self, scope: str, mode: Mode | None) -> None:
        if mode is None:
            self._modes.pop(scope, None)
        else:
            self._modes[scope] = mode

    async def record(self, delta: UsageDelta) -> None:
        merge_into(self._usage, delta)

    async def usage(self) -> list[GroupUsage]:
        horizon = self._clock() - self._ttl
        groups: dict[str, GroupUsage] = {}
        for (group_id, client_id), seen in self._usage.items():
            if seen.last_seen < horizon:
                continue
            group = groups.setdefault(group_id, GroupUsage(group_id, seen.group_legacy))
            group.clients.append(
                ClientUsage(
                    client_id, seen.client_legacy, seen.messages, seen.connects, seen.last_seen
                )
            )
        return list(groups.values())

    async def aclose(self) -> None:
        return None


class RedisV2Store:
    """A V2Store in Redis: what one node sets, every node reads at its next refresh."""

    def __init__(
        self, url: str, *, prefix: str, timeout: float = 2.0, usage_ttl: float = DEFAULT_USAGE_TTL
    ) -> None:
        self._redis: aioredis.Redis = redis_client(url, timeout=timeout)
        self._p = f"{prefix}v2:"
        self._ttl = usage_ttl

    async def policy(self) -> V2Policy:
        fields = await self._call(self._redis.hgetall(f"{self._p}mode"))
        return V2Policy.from_fields({_text(k): _text(v) for k, v in fields.items()})

    async def set_mode(self, scope: str, mode: Mode | None) -> None:
        key = f"{self._p}mode"
        if mode is None:
            await self._call(self._redis.hdel(key, scope))
        else:
            await self._call(self._redis.hset(key, scope, mode))

    async def record(self, delta: UsageDelta) -> None:
        # Every open legacy connection is in every flush (seen now), so this runs for all of
        # a node's legacy clients every few seconds: per group one HSET, one ZADD and the
        # EXPIREs, per client only the counts that moved (one HSET, ZADD and three EXPIREs
        # per client held a node's event loop 50-100 ms per 500 clients), sent every
        # _RECORD_CHUNK commands, since building a pipeline holds the event loop too.
        if not delta:
            return
        ttl = max(1, int(self._ttl))
        by_group: dict[str, list[tuple[str, ClientDelta]]] = {}
        for (group_id, client_id), seen in delta.items():
            by_group.setdefault(group_id, []).append((client_id, seen))
        latest: dict[str, int] = {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for group_id, clients in by_group.items():
                stats, members = f"{self._p}g:{group_id}", f"{self._p}s:{group_id}"
                fields: dict[FieldT, EncodableT] = {
                    f"l:{c}": seen.client_legacy for c, seen in clients if seen.client_legacy
                }
                group_legacy = next((s.group_legacy for _, s in clients if s.group_legacy), "")
                if group_legacy:
                    fields["legacy"] = group_legacy
                if fields:
                    pipe.hset(stats, mapping=fields)
                for client_id, seen in clients:
                    if seen.messages:
                        pipe.hincrby(stats, f"m:{client_id}", seen.messages)
                    if seen.connects:
                        pipe.hincrby(stats, f"n:{client_id}", seen.connects)
                    if len(pipe) >= _RECORD_CHUNK:
                        await self._call(pipe.execute())
                seen_ms = {c: int(seen.last_seen * 1000) for c, seen in clients}
                pipe.zadd(members, seen_ms, gt=True)
                latest[group_id] = max(seen_ms.values())
                pipe.expire(stats, ttl)
                pipe.expire(members, ttl)
                if len(pipe) >= _RECORD_CHUNK:
                    await self._call(pipe.execute())
            pipe.zadd(f"{self._p}groups", latest, gt=True)
            pipe.expire(f"{self._p}groups", ttl)
            await self._call(pipe.execute())

    async def usage(self) -> list[GroupUsage]:
        groups_key = f"{self._p}groups"
        horizon = int((time.time() - self._ttl) * 1000)
        await self._call(self._redis.zremrangebyscore(groups_key, "-inf", horizon))
        names = [_text(g) for g in await self._call(self._redis.zrange(groups_key, 0, -1))]
        pipe = self._redis.pipeline(transaction=False)
        for group_id in names:
            pipe.hgetall(f"{self._p}g:{group_id}")
            pipe.zrange(f"{self._p}s:{group_id}", 0, -1, withscores=True)
        replies = await self._call(pipe.execute())
        return [
            _group_usage(group_id, replies[2 * i], replies[2 * i + 1])
            for i, group_id in enumerate(names)
        ]

    async def _call(self, pending: Any) -> Any:
        with backend_errors("V2 store call failed"):
            return await pending

    async def aclose(self) -> None:
        await self._redis.aclose()


def _group_usage(group_id: str, stats: dict[Any, Any], seen: list[tuple[Any, float]]) -> GroupUsage:
    fields = {_text(k): _text(v) for k, v in stats.items()}
    group = GroupUsage(group_id, fields.get("legacy", ""))
    for raw_client, millis in seen:
        client = _text(raw_client)
        group.clients.append(
            ClientUsage(
                client,
                fields.get(f"l:{client}", ""),
                int(fields.get(f"m:{client}", 0)),
                int(fields.get(f"n:{client}", 0)),
                millis / 1000,
            )
        )
    return group


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def open_v2_store(
    redis_url: str | None,
    *,
    prefix: str,
    timeout: float = 2.0,
    usage_ttl: float = DEFAULT_USAGE_TTL,
) -> V2Store:
    """Redis when a URL is given, else in-process (this node only)."""
    if redis_url is not None:
        return RedisV2Store(redis_url, prefix=prefix, timeout=timeout, usage_ttl=usage_ttl)
    return MemoryV2Store(usage_ttl=usage_ttl)


__all__ = [
    "GLOBAL",
    "MemoryV2Store",
    "RedisV2Store",
    "V2Store",
    "open_v2_store",
]
