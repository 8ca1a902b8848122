"""The client: one supervisor task per client, one heartbeat task per open connection."""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from v3_core.messages import MessageV3

from .errors import (
    ClientClosedError,
    HandshakeRejectedError,
    NotConnectedError,
    ReconnectGaveUpError,
    SendQueueFullError,
    ServerClosedError,
    SessionEndedError,
)
from .frames import HeartbeatAck, MemberList, read_frame
from .items import STREAM_OF_TARGET, STREAMS, Item, Resync, Stream

log = logging.getLogger("aether_client")

# Not retried: fix the URL, the client or the token first (guide section 6). 1000 from the
# server ends the session. Every other code, and a connection that failed or dropped without a
# close frame (1006), is retried with backoff.
NO_RETRY = frozenset({1000, 1007, 1008, 1009, 4501})
RESTARTING = 1012  # the node is shutting down: another can take us almost at once
RATE_LIMITED = 4529  # come back after a pause
ABNORMAL = 1006

_HEARTBEAT = '{"msg_type":"heartbeat","target":"echo"}'
_PRESENCE = '{"msg_type":"presence","target":"echo"}'

OnResync = Callable[[Resync], Awaitable[None] | None]
Position = tuple[str, int]  # (epoch, offset)


class _Disconnected(Exception):
    """Internal: the connection a ``members()`` request went out on ended before the answer."""


class _Inbox:
    """What the app has not read yet: bounded for the reader, endable for the consumer.

    It outlives connections, so what was received before a drop is still read after it, in
    order, and the positions the client recovers from always match what the app will see.
    """

    def __init__(self, limit: int) -> None:
        self._items: deque[Item] = deque()
        self._limit = limit
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._ended = False

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: Item) -> None:
        while len(self._items) >= self._limit:
            self._writable.clear()
            await self._writable.wait()  # the app is behind: stop reading, the server notices
        self._items.append(item)
        self._readable.set()

    async def get(self) -> Item | None:
        """The next item; None once ended and drained."""
        while not self._items:
            if self._ended:
                return None
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        if len(self._items) < self._limit:
            self._writable.set()
        return item

    def end(self) -> None:
        self._ended = True
        self._readable.set()


class AetherClient:
    """A V3 client that stays connected: use ``connect()`` to build one.

    The app sees every message of its streams once and in order across reconnects, as far as
    the server's history reaches; beyond it, or for a stream it had no position in yet, it
    gets a ``Resync`` item instead.

    Parameters (all but ``urls`` keyword-only):

    - ``urls``: one base URL (``ws://host:port``, ``wss://host/prefix``; ``http(s)`` works
      too) or several, tried in turn, one per connection attempt.
    - ``group_id``, ``client_id``: the path IDs; the server judges them (1008 if malformed).
    - ``token``: a JWT, sent as the second subprotocol (``aether.bearer``), not in the URL.
    - ``heartbeat``: seconds between heartbeats, the first at each connect; ``None``: none.
    - ``queue``: how many frames to hold while reconnecting; 0 refuses sends instead.
    - ``on_resync``: called (sync or async) with each ``Resync``, which is also yielded.
    - ``recover``: positions to start from, e.g. ``positions`` saved by an earlier client.
    - ``buffer``: items received but not read yet; when the app is that far behind, the client
      stops reading, the server eventually cuts it as a slow consumer (4008), and it recovers.
    - ``backoff_base``, ``backoff_cap``, ``rate_limit_pause``: reconnect delays (seconds).
    - ``max_retries``: give up (``ReconnectGaveUpError``) after that many failed retries in a
      row; ``None``: never.
    - ``open_timeout``, ``max_size``: per handshake; largest frame accepted (bytes).
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        group_id: str,
        client_id: str,
        token: str | None = None,
        heartbeat: float | None = 30.0,
        queue: int = 0,
        on_resync: OnResync | None = None,
        recover: Mapping[Stream, Position] | None = None,
        buffer: int = 4096,
        open_timeout: float = 10.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        rate_limit_pause: float = 10.0,
        max_retries: int | None = None,
        max_size: int = 2**20,
    ) -> None:
        self._urls = (urls,) if isinstance(urls, str) else tuple(urls)
        if not self._urls:
            raise ValueError("urls: give at least one base URL")
        if queue < 0 or buffer < 1:
            raise ValueError("queue must be >= 0 and buffer >= 1")
        if heartbeat is not None and heartbeat <= 0:
            raise ValueError("heartbeat must be positive, or None to send none")
        self.group_id = group_id
        self.client_id = client_id
        self._token = token
        self._heartbeat = heartbeat
        self._queue_limit = queue
        self._on_resync = on_resync
        self._open_timeout = open_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._rate_limit_pause = rate_limit_pause
        self._max_retries = max_retries
        self._max_size = max_size

        self._positions: dict[Stream, Position] = dict(recover or {})
        self._inbox = _Inbox(buffer)
        self._pending: deque[str] = deque()  # frames sent while reconnecting, oldest first
        self._ws: ClientConnection | None = None  # set while connected and flushed
        self._changed = asyncio.Event()  # replaced after each set: connected, ended
        self._members: deque[asyncio.Future[list[str]]] = deque()
        self._supervisor: asyncio.Task[None] | None = None
        self._ended: SessionEndedError | None = None
        self._closed = False
        self._next_url = 0
        self._failures = 0  # failed attempts since a connection last worked
        self._heartbeats_acked = 0
        self._last_heartbeat: datetime | None = None
        self.url: str | None = None  # the base URL of the current (or last) connection
        self.attempts = 0  # connection attempts, successful or not
        self.connections = 0  # successful handshakes
        self.off_schema = 0  # frames that did not match the server's models (read leniently)
        self.duplicates = 0  # positioned messages received again: dropped, not yielded

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect (retrying as on a reconnect) and return once a first handshake succeeded.

        Raises a ``SessionEndedError`` when the client stops for good before that (an HTTP 4xx
        answer, ``max_retries`` failures). A close right after the handshake (1008 for a bad
        ID, 4501 for a bad token) surfaces in the iterator, sends and ``members()``.
        """
        if self._supervisor is not None:
            raise RuntimeError("this client was started already")
        self._supervisor = asyncio.create_task(self._run(), name=f"aether-client {self.client_id}")
        while self.connections == 0:
            self._raise_if_unusable()
            await self._wait_change()

    async def close(self) -> None:
        """Close the connection (1000) and stop; every task of the client is gone on return.

        Frames still queued for a reconnect are dropped. Idempotent.
        """
        self._closed = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        if self._pending:
            log.warning("closed with %d unsent queued frames; dropped", len(self._pending))
            self._pending.clear()
        self._fail_members(ClientClosedError("the client was closed"))
        self._inbox.end()
        self._notify()
        # websockets cancels its keepalive task when a connection is lost: let it finish.
        await asyncio.sleep(0)

    # -- what the app reads --------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Item:
        """The next message, error reply or resync; what was received is read before the end.

        Ends after ``close()``; raises the ``SessionEndedError`` when the client stopped on its
        own (a close code that is not retried, ...).
        """
        item = await self._inbox.get()
        if item is not None:
            return item
        if self._ended is not None:
            raise self._ended
        raise StopAsyncIteration

    @property
    def connected(self) -> bool:
        """True while a connection is open and every queued frame has been sent on it."""
        return self._ws is not None

    @property
    def positions(self) -> dict[Stream, Position]:
        """The last (epoch, offset) of each stream: what the next connection recovers from."""
        return dict(self._positions)

    @property
    def heartbeats_acked(self) -> int:
        """How many heartbeat echoes came back (they are not yielded as items)."""
        return self._heartbeats_acked

    @property
    def last_heartbeat(self) -> datetime | None:
        """``sent_at`` of the last heartbeat echo."""
        return self._last_heartbeat

    # -- what the app sends --------------------------------------------------------------

    async def send_group(
        self,
        *,
        msg: str | None = None,
        cmd: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """To every connection of the group, on every node, this one included."""
        await self.send(_outgoing("group", None, msg, cmd, payload))

    async def send_direct(
        self,
        to_id: str,
        *,
        msg: str | None = None,
        cmd: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """To every connection of client ``to_id``, in any group, wherever it is."""
        await self.send(_outgoing("direct", to_id, msg, cmd, payload))

    async def send_broadcast(
        self,
        *,
        msg: str | None = None,
        cmd: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """To every connection on the platform, this one included."""
        await self.send(_outgoing("broadcast", None, msg, cmd, payload))

    async def send_echo(
        self,
        *,
        msg: str | None = None,
        cmd: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """Back to this connection only, stamped by the node."""
        await self.send(_outgoing("echo", None, msg, cmd, payload))

    async def send(self, message: MessageV3) -> None:
        """Send one message; ``msg_type`` is ``cmd`` when ``cmd`` is given, else ``msg``.

        Connected: written to the socket on return. Reconnecting: held for the next connection
        when ``queue`` allows (sent before anything newer, in order), else
        ``NotConnectedError``/``SendQueueFullError``: the message was not sent. There is no
        acknowledgement: a frame written just before a connection dropped may be lost, and a
        rejected one comes back as a ``ServerError`` item.
        """
        text = message.model_dump_json(exclude_none=True)
        self._raise_if_unusable()
        ws = self._ws
        if ws is not None and not self._pending:
            try:
                await ws.send(text)
            except ConnectionClosed:
                pass  # it ended under us: as if we were reconnecting already
            else:
                return
            self._raise_if_unusable()
        if len(self._pending) < self._queue_limit:
            self._pending.append(text)
            return
        if self._queue_limit == 0:
            raise NotConnectedError(
                "not connected (reconnecting): the message was not sent; "
                "connect(..., queue=N) holds up to N messages until the next connection"
            )
        raise SendQueueFullError(
            f"not connected (reconnecting) and {self._queue_limit} messages wait already: "
            "this one was not sent"
        )

    async def members(self, timeout: float = 10.0) -> list[str]:
        """The client IDs of the group online now, across every node, sorted.

        Waits for a connection if there is none; asks again if one drops before the answer.
        ``TimeoutError`` after ``timeout`` seconds (a ``publish-failed`` error reply while Redis
        is down cannot be matched to the request: it is yielded as a ``ServerError``).
        """
        async with asyncio.timeout(timeout):
            while True:
                self._raise_if_unusable()
                ws = self._ws
                if ws is None:
                    await self._wait_change()
                    continue
                future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
                self._members.append(future)
                try:
                    await ws.send(_PRESENCE)
                    return await future
                except (ConnectionClosed, _Disconnected):
                    if self._ws is ws:
                        await self._wait_change()  # until the supervisor has seen it end
                    continue
                finally:
                    if future in self._members:
                        self._members.remove(future)

    # -- the supervisor ------------------------------------------------------------------

    async def _run(self) -> None:
        reconnect = False
        try:
            while True:
                base = self._urls[self._next_url % len(self._urls)]
                self._next_url += 1
                self.attempts += 1
                url = ws_url(base, self.group_id, self.client_id, self._positions)
                code, reason = ABNORMAL, ""
                try:
                    ws = await ws_connect(
                        url,
                        subprotocols=self._subprotocols(),
                        open_timeout=self._open_timeout,
                        max_size=self._max_size,
                    )
                except InvalidStatus as exc:
                    status = exc.response.status_code
                    if 400 <= status < 500 and status not in (408, 429):
                        raise HandshakeRejectedError(base, status) from None
                    reason = f"HTTP {status}"
                except (OSError, InvalidHandshake, TimeoutError) as exc:
                    reason = str(exc) or type(exc).__name__
                else:
                    self.connections += 1
                    self.url = base
                    code, reason = await self._session(ws, reconnect=reconnect)
                    reconnect = True
                if code in NO_RETRY:
                    raise ServerClosedError(code, reason)
                if self._max_retries is not None and self._failures >= self._max_retries:
                    raise ReconnectGaveUpError(self._failures + 1, f"{code} {reason}".strip())
                delay = self._backoff(code)
                log.info("closed %s %s; reconnecting in %.2f s", code, reason, delay)
                await asyncio.sleep(delay)
        except SessionEndedError as exc:
            log.warning("%s", exc)
            self._end(exc)
        except Exception as exc:  # a bug here must end the session visibly, not hang the app
            log.exception("the client's supervisor failed")
            ended = SessionEndedError(f"the client failed: {exc!r}")
            ended.__cause__ = exc
            self._end(ended)

    def _backoff(self, code: int) -> float:
        """Full jitter: uniform up to a cap that doubles per failed attempt."""
        base = self._backoff_base / 4 if code == RESTARTING else self._backoff_base
        pause = self._rate_limit_pause if code == RATE_LIMITED else 0.0
        cap = min(self._backoff_cap, base * 2 ** min(self._failures, 30))
        self._failures += 1
        return pause + random.uniform(0, cap)  # jitter, not cryptography

    async def _session(self, ws: ClientConnection, *, reconnect: bool) -> tuple[int, str]:
        """Serve one connection until it ends; its close code and reason."""
        heartbeat: asyncio.Task[None] | None = None
        try:
            if reconnect:
                for stream in STREAMS:
                    if stream not in self._positions:
                        await self._deliver(Resync("not-recovered", stream, local=True))
            while self._pending:  # what was sent while reconnecting, before anything newer
                await ws.send(self._pending[0])
                self._pending.popleft()
            self._ws = ws
            self._notify()
            if self._heartbeat is not None:
                heartbeat = asyncio.create_task(self._beat(ws, self._heartbeat))
            async for frame in ws:
                self._failures = 0  # the server answered: this connection works
                await self._receive(frame)
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
            self._notify()
            self._fail_members(_Disconnected())
            if heartbeat is not None:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)
            await ws.close()  # a no-op when the server closed it; 1000 when we leave
        return ws.close_code or ABNORMAL, ws.close_reason or ""

    async def _beat(self, ws: ClientConnection, every: float) -> None:
        """A heartbeat at once (its echo proves the node works) and then every ``every`` s."""
        try:
            while True:
                await ws.send(_HEARTBEAT)
                await asyncio.sleep(every)
        except ConnectionClosed:
            pass

    async def _receive(self, frame: str | bytes) -> None:
        read, known = read_frame(frame)
        if not known:
            self.off_schema += 1
            log.warning("a frame outside the schema (read by its shape): %.200r", frame)
        match read:
            case HeartbeatAck():
                self._heartbeats_acked += 1
                self._last_heartbeat = read.sent_at
            case MemberList():
                while self._members:
                    future = self._members.popleft()
                    if not future.done():
                        future.set_result(read.clients)
                        break
            case MessageV3():
                if self._is_copy(read):
                    return
                await self._deliver(read)
            case _:
                await self._deliver(read)

    def _is_copy(self, message: MessageV3) -> bool:
        """Keep the stream's position; True for a copy of a message already received."""
        stream = STREAM_OF_TARGET.get(message.target)
        if stream is None or message.offset is None or message.epoch is None:
            return False
        last = self._positions.get(stream)
        if last is not None and last[0] == message.epoch and message.offset <= last[1]:
            log.debug("dropped a copy of %s offset %d", stream, message.offset)
            self.duplicates += 1
            return True
        self._positions[stream] = (message.epoch, message.offset)
        return False

    async def _deliver(self, item: Item) -> None:
        await self._inbox.put(item)
        if isinstance(item, Resync) and self._on_resync is not None:
            try:
                result = self._on_resync(item)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("on_resync failed")

    # -- state ---------------------------------------------------------------------------

    def _subprotocols(self) -> list[Subprotocol] | None:
        """The token as the second subprotocol: it stays out of URLs and access logs."""
        if self._token is None:
            return None
        return [Subprotocol("aether.bearer"), Subprotocol(self._token)]

    def _raise_if_unusable(self) -> None:
        if self._ended is not None:
            raise self._ended
        if self._closed:
            raise ClientClosedError("the client was closed")

    def _end(self, exc: SessionEndedError) -> None:
        self._ended = exc
        self._pending.clear()
        self._fail_members(exc)
        self._inbox.end()
        self._notify()

    def _fail_members(self, exc: Exception) -> None:
        while self._members:
            future = self._members.popleft()
            if not future.done():
                future.set_exception(exc)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self) -> None:
        await self._changed.wait()


def _outgoing(
    target: Literal["group", "direct", "broadcast", "echo"],
    to_id: str | None,
    msg: str | None,
    cmd: str | None,
    payload: dict[str, Any] | None,
) -> MessageV3:
    """Validated here, with the server's own model: a bad ``to_id`` fails before it is sent."""
    return MessageV3(
        msg_type="cmd" if cmd is not None else "msg",
        target=target,
        to_id=to_id,
        msg=msg,
        cmd=cmd,
        payload=payload,
    )


def ws_url(
    base: str, group_id: str, client_id: str, positions: Mapping[Stream, Position] | None = None
) -> str:
    """``base`` (``ws://host:port``, ``https://host/prefix``, ...) + the V3 path + ``recover``.

    IDs are percent-encoded, not checked: the server judges them (1008 for a bad one).
    """
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = (
        f"{parts.path.rstrip('/')}/v3/ws/group/{quote(group_id, safe='')}"
        f"/client/{quote(client_id, safe='')}"
    )
    query = parts.query
    if positions:
        recover = ",".join(f"{s}:{epoch}:{offset}" for s, (epoch, offset) in positions.items())
        item = "recover=" + quote(recover, safe=":,")
        query = f"{query}&{item}" if query else item
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def connect(
    urls: str | Sequence[str],
    *,
    group_id: str,
    client_id: str,
    token: str | None = None,
    heartbeat: float | None = 30.0,
    queue: int = 0,
    on_resync: OnResync | None = None,
    recover: Mapping[Stream, Position] | None = None,
    buffer: int = 4096,
    open_timeout: float = 10.0,
    backoff_base: float = 1.0,
    backoff_cap: float = 30.0,
    rate_limit_pause: float = 10.0,
    max_retries: int | None = None,
    max_size: int = 2**20,
) -> AetherClient:
    """A client for ``async with``: entering connects, leaving closes. See the package doc."""
    return AetherClient(
        urls,
        group_id=group_id,
        client_id=client_id,
        token=token,
        heartbeat=heartbeat,
        queue=queue,
        on_resync=on_resync,
        recover=recover,
        buffer=buffer,
        open_timeout=open_timeout,
        backoff_base=backoff_base,
        backoff_cap=backoff_cap,
        rate_limit_pause=rate_limit_pause,
        max_retries=max_retries,
        max_size=max_size,
    )
