"""One Lua script's calls pipelined on a hiredis wire of their own.

A heartbeat touches its connection's presence: through redis-py that is a pool checkout, a
command object and a reply parse per heartbeat, most of a heartbeat's CPU on a node holding
19,000 connections. Here every call waiting meanwhile shares one write and one read, as the
broker's publisher does (redis_broker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import Any

import redis.exceptions

from .redis_wire import RedisWire

Call = tuple[tuple[str, ...], "asyncio.Future[Any]"]


class PipelinedScript:
    """``await script(keys, args)``: EVALSHA on a wire opened, and the script loaded, on
    first use and again after any failure (a restarted Redis has forgotten the script)."""

    def __init__(self, url: str, script: str, *, timeout: float, name: str) -> None:
        self._url, self._script, self._timeout, self._name = url, script, timeout, name
        self._sha = hashlib.sha1(script.encode()).hexdigest()
        self._wire: RedisWire | None = None
        self._pending: list[Call] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, keys: list[str], args: list[str | int]) -> Any:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{self._name}-pipe")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        command = ("EVALSHA", self._sha, str(len(keys)), *keys, *map(str, args))
        self._pending.append((command, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            try:
                async with asyncio.timeout(self._timeout):
                    replies = await self._send(batch)
            except Exception as exc:  # the loop must outlive any failure, or callers hang
                await self._drop()  # replies of this batch may still come: start afresh
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), reply in zip(batch, replies, strict=True):
                if isinstance(reply, Exception) and str(reply).startswith("NOSCRIPT"):
                    await self._drop()  # SCRIPT FLUSH: the next wire loads it again
                if future.done():
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    async def _send(self, batch: list[Call]) -> list[Any]:
        wire = self._wire
        if wire is None or wire.closed:
            await self._drop()
            wire = await RedisWire.open(self._url, timeout=self._timeout, name=self._name)
            await wire.load_script(self._script)
            self._wire = wire
        wire.send(*(command for command, _ in batch))
        received: list[Any] = []
        while len(received) < len(batch):
            received += await wire.replies()
        return received

    async def _drop(self) -> None:
        wire, self._wire = self._wire, None
        if wire is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(wire.aclose(), self._timeout)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for _, future in self._pending:
            if not future.done():
                future.set_exception(redis.exceptions.ConnectionError("closed"))
        self._pending = []
        await self._drop()
