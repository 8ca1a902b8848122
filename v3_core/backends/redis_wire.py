"""RedisWire: one Redis connection whose commands and replies the broker handles itself.

redis-py opens it (URL, TLS, AUTH, SELECT, CLIENT SETNAME). From then on, every message goes
through hiredis alone: commands packed by ``hiredis.pack_command``, replies parsed by a
``hiredis.Reader`` fed straight from the socket. redis-py's per-reply layers (retry wrapper,
timeout context, response dict) cost the reader 82–90 µs of CPU per paced message against
59–62 µs here, most of that the wake-up and ``recv`` (``python -m bench.pubsub_read``); the
publisher also drops a ``Pipeline`` per batch. The whole node:
docs/decisions/2026-11-performance-round-two.md, section 3.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import AbstractConnection

from v3_core.socket_peek import has_unread_bytes

from .redis_client import REDIS_ERRORS

_READ_SIZE = 1 << 16
# hiredis' stub types the argument as a 1-tuple; it takes a command of any length.
_pack = cast(Callable[[tuple[str | bytes, ...]], bytes], hiredis.pack_command)


class RedisWire:
    """Commands go out as written; ``replies()`` returns the next replies as they arrive.

    Error replies come back as ``redis.exceptions.ResponseError`` instances, in order with the
    others, so a caller that pipelined N commands can tell which one failed.

    ``round_trip`` gives up when Redis sends nothing for ``timeout`` (redis-py's
    ``socket_timeout``, per read), not when a whole batch takes longer: a node in a reconnect
    storm reads the replies of a batch of thousands late, over several turns of its loop,
    from a Redis that answered at once.
    """

    __slots__ = ("_connection", "_parser", "_reader", "_timeout", "_writer")

    def __init__(self, connection: AbstractConnection, timeout: float) -> None:
        reader, writer = connection._reader, connection._writer  # redis-py's own streams
        if reader is None or writer is None:
            raise redis.exceptions.ConnectionError("the connection is not open")
        self._timeout = timeout
        self._connection = connection
        self._reader, self._writer = reader, writer
        self._parser = hiredis.Reader(replyError=redis.exceptions.ResponseError)

    @classmethod
    async def open(
        cls, url: str, *, timeout: float, name: str | None = None, script: str | None = None
    ) -> RedisWire:
        """Connect and hand-shake with redis-py, then take the socket over. RESP2 always.

        With ``script``, load it (``SCRIPT LOAD``) so EVALSHA calls on this connection find
        it: a new connection may well be to a restarted Redis, which has forgotten it.
        """
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "client_name": name,
            "protocol": 2,  # pub/sub messages as plain arrays
        }
        pool = aioredis.ConnectionPool.from_url(url, **options)
        connection = pool.make_connection()  # type: ignore[no-untyped-call]
        try:
            async with asyncio.timeout(timeout):
                await connection.connect()
            wire = cls(connection, timeout)
            if script is not None:
                await wire.load_script(script)
        except BaseException:
            await connection.disconnect()
            raise
        return wire

    @classmethod
    async def open_first(
        cls, urls: list[str], *, timeout: float, name: str | None = None, script: str | None = None
    ) -> RedisWire:
        """The first of ``urls`` that connects (seed nodes of a cluster, in order)."""
        error: Exception = redis.exceptions.ConnectionError("no Redis URL to connect to")
        for url in urls:
            try:
                return await cls.open(url, timeout=timeout, name=name, script=script)
            except REDIS_ERRORS as exc:
                error = exc
        raise error

    async def run_id(self) -> str:
        """The server's ``run_id`` (``INFO server``): it changes when Redis restarts.

        Call it before SUBSCRIBE: a subscribed connection takes no other command.
        """
        (reply,) = await self.round_trip(("INFO", "server"))
        if isinstance(reply, Exception):
            raise reply
        for line in bytes(reply).decode().splitlines():
            key, _, value = line.partition(":")
            if key == "run_id":
                return value.strip()
        raise redis.exceptions.ResponseError("INFO server has no run_id")

    async def load_script(self, script: str) -> None:
        """``SCRIPT LOAD``, so EVALSHA calls on this connection find the script."""
        (reply,) = await self.round_trip(("SCRIPT", "LOAD", script))
        if isinstance(reply, Exception):
            raise reply

    @property
    def closed(self) -> bool:
        """True once the peer closed the socket or it failed: nothing more will be read."""
        return self._reader.at_eof() or self._writer.is_closing()

    def send(self, *commands: tuple[str | bytes, ...]) -> None:
        """Queue ``commands`` in one write; their replies come back in the same order.

        Raises ConnectionError on a closed connection, where a write would vanish silently.
        """
        if self._writer.is_closing():
            raise redis.exceptions.ConnectionError("the connection is closed")
        self._writer.write(b"".join(map(_pack, commands)))

    async def round_trip(self, *commands: tuple[str | bytes, ...]) -> list[Any]:
        """Send ``commands`` in one write and return their replies, in order."""
        self.send(*commands)
        received: list[Any] = []
        while len(received) < len(commands):
            received += await self.replies_within(self._timeout)
        return received

    async def replies_within(self, timeout: float) -> list[Any]:
        """``replies()``, or TimeoutError if Redis sent nothing within ``timeout``.

        A node busy for longer than that (a reconnect storm) may not have read a reply that
        came in time: uvloop runs due timers before it polls the sockets. What waits unread
        when the time is up is read, not taken for silence.
        """
        try:
            async with asyncio.timeout(timeout):
                return await self.replies()
        except TimeoutError:
            if not self.unread():
                raise
        async with asyncio.timeout(timeout):
            return await self.replies()

    def unread(self) -> bool:
        """Whether bytes have arrived that no ``replies()`` has parsed yet."""
        # asyncio.StreamReader has no public size; its buffer holds what the loop received.
        received = getattr(self._reader, "_buffer", b"")
        return bool(received) or has_unread_bytes(self._writer.transport)

    async def replies(self) -> list[Any]:
        """The replies already received, waiting for at least one.

        Raises ConnectionError when the socket is closed.
        """
        parser = self._parser
        found: list[Any] = []
        while True:
            while (reply := parser.gets()) is not False:
                found.append(reply)
            if found:
                return found
            data = await self._reader.read(_READ_SIZE)
            if not data:
                raise redis.exceptions.ConnectionError("Redis closed the connection")
            parser.feed(data)

    async def aclose(self) -> None:
        await self._connection.disconnect()

    async def drop(self, timeout: float) -> None:
        """Close, giving up after ``timeout``; errors are ignored, as the connection is being
        dropped anyway. A cancel is not: ``asyncio.wait_for`` (Python 3.11) could swallow one
        arriving as the close completed, and a subscriber that survived its own cancel held
        a test's teardown for minutes."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                await self._connection.disconnect()
