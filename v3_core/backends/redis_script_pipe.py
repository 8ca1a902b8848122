"""One Lua script's calls pipelined on a hiredis wire of their own.

A heartbeat touches its connection's presence: through redis-py that is a pool checkout, a
command object and a reply parse per heartbeat, most of a heartbeat's CPU on a node holding
19,000 connections. Here every call waiting meanwhile shares one write and one read, as the
broker's publisher does (redis_pipe.py).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import redis.exceptions

from .redis_pipe import PipelinedWire
from .redis_wire import RedisWire

Call = tuple[tuple[str, ...], "asyncio.Future[Any]"]


class PipelinedScript(PipelinedWire[Call]):
    """``await script(keys, args)``: EVALSHA on a wire opened, and the script loaded, on
    first use and again after any failure (a restarted Redis has forgotten the script)."""

    def __init__(self, url: str, script: str, *, timeout: float, name: str) -> None:
        super().__init__(timeout=timeout, name=f"{name}-pipe")
        self._url, self._script, self._name = url, script, name
        self._sha = hashlib.sha1(script.encode()).hexdigest()

    async def __call__(self, keys: list[str], args: list[str | int]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.put((("EVALSHA", self._sha, str(len(keys)), *keys, *map(str, args)), future))
        return await future

    async def _open(self) -> RedisWire:
        return await RedisWire.open(
            self._url, timeout=self._timeout, name=self._name, script=self._script
        )

    async def _send(self, batch: list[Call]) -> None:
        wire = self._wire
        if wire is None or wire.closed:
            wire = await self._reconnect()
        replies = await wire.round_trip(*(command for command, _ in batch))
        for (_, future), reply in zip(batch, replies, strict=True):
            if isinstance(reply, Exception) and str(reply).startswith("NOSCRIPT"):
                await self._disconnect()  # SCRIPT FLUSH: the next wire loads it again
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def aclose(self, error: BaseException | None = None) -> None:
        await super().aclose(error or redis.exceptions.ConnectionError("closed"))
