"""RedisPresenceStore: per-member expiry with sorted sets scored by expiry time.

A plain set cannot expire one member, so a crashed node's clients would stay listed. Each
group has a sorted set of clients, each client a sorted set of its connections, both scored
by when they expire (Redis' clock, so nodes' clocks never disagree). Scripts in lua/.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from .redis_client import backend_errors, is_cluster, redis_client
from .redis_script_pipe import PipelinedScripts, script_sha

_TOUCH_CHUNK = 100  # connections refreshed per script call, and about as many per pipeline
_SWEEP_CHUNK = 50  # groups swept per pipeline
POOL_SIZE = 32  # concurrent presence calls; more wait for a connection (up to the timeout)
_ScriptCall = tuple[list[str], list[str | int]]  # a script's KEYS and ARGV


def _script(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"presence_{name}.lua").read_text()


class RedisPresenceStore:
    """A PresenceStore in Redis; keys share the group's hash tag, ready for Redis Cluster."""

    def __init__(self, url: str, *, ttl: float, prefix: str, timeout: float = 2.0) -> None:
        self.ttl = ttl
        self._ttl_ms = max(1, round(ttl * 1000))
        self._prefix = prefix
        self._redis: aioredis.Redis = redis_client(url, timeout=timeout, pool_size=POOL_SIZE)
        # redis-py refuses scripts in a cluster pipeline: there, the calls of a batch run one
        # by one instead, each routed to its group's node.
        pipelined = not is_cluster(url)
        scripts = {name: _script(name) for name in ("add", "touch", "remove", "members", "expire")}
        self._add = self._redis.register_script(scripts["add"])
        self._touch = self._redis.register_script(scripts["touch"])
        self._remove = self._redis.register_script(scripts["remove"])
        self._members = self._redis.register_script(scripts["members"])
        self._expire = self._redis.register_script(scripts["expire"])
        # Every script call but the member list skips redis-py (redis_script_pipe): a
        # connect's add, a close's remove, a heartbeat's touch, and the refresh's and the
        # sweep's batches. Not on a cluster: one wire is one server. The pipe loads every
        # script when it opens (a node's first connect), so the member list's first EVALSHA
        # through redis-py finds its script: no NOSCRIPT error in Redis' error stats (ops
        # alert on those) each time a node starts.
        self._pipe = (
            PipelinedScripts(
                url,
                tuple(scripts.values()),
                timeout=timeout,
                name="aether-presence",
            )
            if pipelined
            else None
        )
        self._sha = {name: script_sha(script) for name, script in scripts.items()}

    def _group_key(self, group_id: str) -> str:
        return f"{self._prefix}p:{{{group_id}}}"

    def _client_prefix(self, group_id: str) -> str:
        return f"{self._prefix}p:{{{group_id}}}:c:"

    async def add(self, group_id: str, client_id: str, conn_id: str) -> bool:
        keys = [self._group_key(group_id), self._client_prefix(group_id) + client_id]
        args: list[str | int] = [client_id, conn_id, self._ttl_ms]
        with backend_errors("presence add failed"):
            if self._pipe is not None:
                return bool(await self._pipe.run(self._sha["add"], keys, args))
            return bool(await self._add(keys, args))

    async def remove(self, group_id: str, client_id: str, conn_id: str) -> bool:
        keys = [self._group_key(group_id), self._client_prefix(group_id) + client_id]
        args: list[str | int] = [client_id, conn_id]
        with backend_errors("presence remove failed"):
            if self._pipe is not None:
                return bool(await self._pipe.run(self._sha["remove"], keys, args))
            return bool(await self._remove(keys, args))

    async def touch(self, entries: list[tuple[str, str, str]]) -> None:
        if len(entries) == 1 and self._pipe is not None:
            ((group_id, client_id, conn_id),) = entries
            keys, args = self._touch_call(group_id, [(client_id, conn_id)])
            with backend_errors("presence refresh failed"):
                await self._pipe.run(self._sha["touch"], keys, args)
            return
        # One script per group, not per connection (Redis runs scripts one at a time and
        # every PUBLISH waits behind them), and about _TOUCH_CHUNK connections per pipeline:
        # building one holds our event loop, ~10 µs per connection.
        with backend_errors("presence refresh failed"):
            for chunk in _chunks(_per_group(entries, _TOUCH_CHUNK), _TOUCH_CHUNK):
                calls = [self._touch_call(group_id, members) for group_id, members in chunk]
                await self._run_scripts(self._touch, calls)

    def _touch_call(self, group_id: str, members: list[tuple[str, str]]) -> _ScriptCall:
        prefix = self._client_prefix(group_id)
        keys = [self._group_key(group_id)]
        args: list[str | int] = [self._ttl_ms]
        for client_id, conn_id in members:
            keys.append(prefix + client_id)
            args += (client_id, conn_id)
        return keys, args

    async def _run_scripts(self, script: AsyncScript, calls: list[_ScriptCall]) -> list[Any]:
        """One round trip for the batch on one server; one call after another on a cluster.

        On one server the batch goes over the pipe, without redis-py's script bookkeeping (a
        SCRIPT EXISTS round trip before every pipeline) or its command objects: a refresh of
        19,000 connections costs the node 42-47 ms of CPU that way against 68-80 ms as a
        redis-py pipeline (``python -m bench.presence_refresh``). Not concurrently on a
        cluster: sixty calls at once through redis-py's cluster client failed once in CI with
        a connection torn down in the middle of its own handshake.
        """
        if self._pipe is not None:
            return await self._pipe.run_many(script.sha, calls)
        return [await script(keys, args) for keys, args in calls]

    async def members(self, group_id: str) -> list[str]:
        with backend_errors("presence lookup failed"):
            found = await self._members([self._group_key(group_id)])
        return sorted(member.decode() for member in found)

    async def expire(self, group_id: str) -> list[str]:
        keys = [self._group_key(group_id)]
        with backend_errors("presence sweep failed"):
            gone = await self._expire(keys, [self._client_prefix(group_id)])
        return sorted(member.decode() for member in gone)

    async def sweep(self, group_ids: Iterable[str]) -> list[tuple[str, str]]:
        # A node sweeps every group it holds each refresh: one round trip per _SWEEP_CHUNK
        # groups instead of one per group.
        gone: list[tuple[str, str]] = []
        groups = list(group_ids)
        with backend_errors("presence sweep failed"):
            for start in range(0, len(groups), _SWEEP_CHUNK):
                chunk = groups[start : start + _SWEEP_CHUNK]
                calls: list[_ScriptCall] = [
                    ([self._group_key(g)], [self._client_prefix(g)]) for g in chunk
                ]
                results = await self._run_scripts(self._expire, calls)
                for group_id, found in zip(chunk, results, strict=True):
                    gone += ((group_id, m.decode()) for m in sorted(found))
        return gone

    async def aclose(self) -> None:
        if self._pipe is not None:
            await self._pipe.aclose()
        await self._redis.aclose()


def _per_group(
    entries: list[tuple[str, str, str]], batch: int
) -> list[tuple[str, list[tuple[str, str]]]]:
    """``(group, [(client, conn), ...])`` with at most ``batch`` connections each."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for group_id, client_id, conn_id in entries:
        groups.setdefault(group_id, []).append((client_id, conn_id))
    return [
        (group_id, members[i : i + batch])
        for group_id, members in groups.items()
        for i in range(0, len(members), batch)
    ]


def _chunks(
    calls: list[tuple[str, list[tuple[str, str]]]], size: int
) -> Iterator[list[tuple[str, list[tuple[str, str]]]]]:
    """Consecutive runs of calls holding about ``size`` connections each (at least one call)."""
    chunk: list[tuple[str, list[tuple[str, str]]]] = []
    held = 0
    for call in calls:
        chunk.append(call)
        held += len(call[1])
        if held >= size:
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk
