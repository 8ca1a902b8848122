"""Lua scripts' calls (and other single commands) pipelined on a hiredis wire of their own.

A heartbeat touches its connection's presence, and a connect and a close add and remove it:
through redis-py each is a pool checkout, a command object and a reply parse, most of a
heartbeat's CPU on a node holding 19,000 connections and a good part of a connect's. Here
every call waiting meanwhile shares one write and one read, as the broker's publisher does
(redis_pipe.py).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from typing import Any

import redis.exceptions

from .redis_pipe import PipelinedWire
from .redis_wire import RedisWire

Call = tuple[tuple[str, ...], "asyncio.Future[Any]"]


def script_sha(script: str) -> str:
    """The SHA1 Redis names a script by (EVALSHA)."""
    return hashlib.sha1(script.encode()).hexdigest()


class PipelinedScripts(PipelinedWire[Call]):
    """``await scripts.run(sha, keys, args)``: EVALSHA on a wire opened, and the scripts
    loaded, on first use and again after any failure (a restarted Redis has forgotten them).

    A Redis that forgot them on a live connection (``SCRIPT FLUSH``) answers NOSCRIPT: those
    calls never ran, so the scripts are loaded again and only those calls sent once more.
    """

    def __init__(self, url: str, scripts: Iterable[str], *, timeout: float, name: str) -> None:
        super().__init__(timeout=timeout, name=f"{name}-pipe")
        self._url, self._name = url, name
        self._scripts = tuple(scripts)

    async def run(self, sha: str, keys: list[str], args: list[str | int]) -> Any:
        return await self.call(*_evalsha(sha, keys, args))

    async def run_many(
        self, sha: str, calls: Iterable[tuple[list[str], list[str | int]]]
    ) -> list[Any]:
        """Several calls of one script, sent as one batch; raises the first call's error."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = []
        for keys, args in calls:
            future = loop.create_future()
            self.put((_evalsha(sha, keys, args), future))
            futures.append(future)
        # Every error retrieved (a dropped wire fails them all), not logged by asyncio as
        # never retrieved; the first raised.
        replies = await asyncio.gather(*futures, return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    async def call(self, *command: str) -> Any:
        """Any command on the same wire (a stream position's HMGET, say)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.put((command, future))
        return await future

    async def _open(self) -> RedisWire:
        wire = await RedisWire.open(self._url, timeout=self._timeout, name=self._name)
        await self._load(wire)
        return wire

    async def _load(self, wire: RedisWire) -> None:
        for reply in await wire.round_trip(*(("SCRIPT", "LOAD", s) for s in self._scripts)):
            if isinstance(reply, Exception):
                raise reply

    async def _send(self, batch: list[Call]) -> None:
        wire = self._wire
        if wire is None or wire.closed:
            wire = await self._reconnect()
        replies = await wire.round_trip(*(command for command, _ in batch))
        forgotten = [i for i, reply in enumerate(replies) if _is_noscript(reply)]
        if forgotten:
            await self._load(wire)
            again = await wire.round_trip(*(batch[i][0] for i in forgotten))
            for i, reply in zip(forgotten, again, strict=True):
                replies[i] = reply
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def aclose(self, error: BaseException | None = None) -> None:
        await super().aclose(error or redis.exceptions.ConnectionError("closed"))


def _evalsha(sha: str, keys: list[str], args: list[str | int]) -> tuple[str, ...]:
    return ("EVALSHA", sha, str(len(keys)), *keys, *map(str, args))


def _is_noscript(reply: Any) -> bool:
    return isinstance(reply, Exception) and str(reply).startswith("NOSCRIPT")
