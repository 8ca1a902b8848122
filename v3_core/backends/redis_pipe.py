"""PipelinedWire: calls queued by any task, written by one, a batch per round trip.

The brokers' publishers and the presence touch share this shape. A caller queues its call
with a future and awaits the future; one writer task takes every call queued while its
previous batch was in flight and sends them together, so a burst costs one write and one
read instead of one of each per call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from .redis_wire import RedisWire

# A call: its arguments, then the future its caller awaits.
CallT = TypeVar("CallT", bound=tuple[Any, ...])


class PipelinedWire(Generic[CallT]):
    """The queue, the writer task and a wire opened on first use and again after a failure.

    Subclasses send a batch and settle its futures (``_send``) and open the wire (``_open``,
    called by ``_reconnect``); one that writes to several servers keeps its own wires and
    overrides ``_disconnect``. A batch that raises (a wire's reads give up when Redis is silent
    for ``timeout``) is reset (its replies may still arrive: only a new connection is in step)
    and each of its calls still waiting raises ``_error(exc)``.
    """

    def __init__(self, *, timeout: float, name: str) -> None:
        self._timeout = timeout
        self._pending: list[CallT] = []
        self._wakeup = asyncio.Event()
        self._wire: RedisWire | None = None
        self._writer = asyncio.create_task(self._write_forever(), name=name)

    def put(self, call: CallT) -> None:
        """Queue ``call``: the writer settles its future (the call's last item)."""
        self._pending.append(call)
        self._wakeup.set()

    async def _write_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            try:
                await self._send(batch)  # bounded by the wire's timeout on each read
            except Exception as exc:  # the writer must outlive any failure, or callers hang
                await self._reset(exc)
                fail_calls(batch, self._error(exc))

    async def _send(self, batch: list[CallT]) -> None:
        raise NotImplementedError

    async def _open(self) -> RedisWire:
        raise NotImplementedError

    async def _reconnect(self) -> RedisWire:
        """A new wire, for a first batch or when the server closed the last one (a Redis
        restart, CLIENT KILL): reconnect before writing, as redis-py's pool does, rather than
        fail a batch. Callers test ``_wire`` first, so a batch on an open wire awaits nothing
        more."""
        await self._disconnect()
        wire = self._wire = await self._open()
        return wire

    async def _reset(self, error: Exception) -> None:
        """After a failed batch: start afresh on a new connection."""
        await self._disconnect()

    def _error(self, error: Exception) -> BaseException:
        """What the calls of a failed batch raise."""
        return error

    async def _disconnect(self) -> None:
        wire, self._wire = self._wire, None
        if wire is not None:
            await wire.drop(self._timeout)

    async def aclose(self, error: BaseException) -> None:
        """Stop the writer; calls still queued raise ``error``."""
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        fail_calls(self._pending, error)
        self._pending = []
        await self._disconnect()


def fail_calls(calls: Iterable[tuple[Any, ...]], error: BaseException) -> None:
    """Each call still waiting raises ``error``."""
    for *_, future in calls:
        if not future.done():
            future.set_exception(error)


def consume_exception(future: asyncio.Future[Any]) -> None:
    """For a future nobody awaits: its exception is read, so asyncio does not log it."""
    if not future.cancelled():
        future.exception()
