"""An asyncio client for the Aether gateway's V3 WebSocket protocol, on ``websockets``.

::

    import aether_client

    async with aether_client.connect(
        ["wss://a.example.com", "wss://b.example.com"],  # rotated through on reconnect
        group_id="team_a1", client_id="alice", token=None, heartbeat=30.0, queue=100,
    ) as client:
        await client.send_group(msg="Hello team!")
        print(await client.members())
        async for item in client:
            match item:
                case aether_client.Resync():  # refetch what you derive from item.stream
                    ...
                case aether_client.ServerError():  # one of your messages was rejected
                    ...
                case aether_client.MessageV3():  # group, direct, broadcast, echo, presence
                    ...

What it does (docs/v3-frontend-guide.md has the protocol):

- **Items.** ``async for`` yields ``MessageV3`` (the server's own strict model) for stream and
  echo messages, presence events included; ``ServerError`` for ``error`` replies; ``Resync``
  when messages may have been lost (also passed to ``on_resync=`` when given); ``UnknownFrame``
  for anything this version cannot read. Heartbeat echoes and member lists are consumed by the
  client (``heartbeats_acked``, ``members()``).
- **Recovery.** The last (epoch, offset) of each stream (``group``, ``client``, ``broadcast``)
  is kept and sent as ``?recover=`` on every reconnect; copies of a position already seen are
  dropped (counted in ``duplicates``). The app sees each message once, in order, across
  reconnects, as far as the server's history reaches; otherwise it gets a ``Resync``: the
  server's ``history-gap``, or this client's ``not-recovered`` for a stream it had no
  position in yet. Every frame is validated with the server's own models
  (``v3_core.server_messages``); one outside them is read by its shape and counted in
  ``off_schema``.
- **Reconnects.** Full-jitter backoff (uniform up to ``backoff_base * 2**failures``, capped at
  ``backoff_cap``, reset once a connection delivers a frame), through ``urls`` in turn; a 1012
  (node restarting) starts at a quarter of the base, a 4529 adds ``rate_limit_pause``. Not
  retried: 1000, 1007, 1008 (bad ID or ``recover``), 1009 (frame too big), 4501 (token), and an
  HTTP 4xx handshake answer: the iterator, sends and ``members()`` then raise a
  ``ServerClosedError`` / ``HandshakeRejectedError`` naming the code and what to fix.
- **Sending while reconnecting.** ``queue=0`` (the default) refuses with
  ``NotConnectedError``; ``queue=N`` holds up to N frames and sends them first, in order, on the
  next connection, then refuses with ``SendQueueFullError``. Either way the caller knows
  whether the message was taken.
- **Heartbeats** every ``heartbeat`` seconds (``None``: none), the first at each connect.
- **Clean close.** Leaving the ``async with`` (or ``await client.close()``) closes with 1000
  and leaves no task behind.

Why this package lives in the ``aether-ws-bridge`` distribution rather than a second one: it
validates and types with ``v3_core.messages.MessageV3``, the model the gateway itself enforces,
so client and server cannot drift apart; and its tests run against real ``aether-bridge serve``
processes from the same tree, so a protocol change that breaks it fails the same CI run. The
cost is that installing it brings the server's dependencies (and importing ``v3_core`` imports
``redis``). If outside teams need a slim install, split it into its own distribution then,
with ``MessageV3`` moved to a small shared package both depend on.
"""

from v3_core.messages import MessageV3

from .client import AetherClient, connect, ws_url
from .errors import (
    AetherClientError,
    ClientClosedError,
    HandshakeRejectedError,
    NotConnectedError,
    ReconnectGaveUpError,
    SendQueueFullError,
    ServerClosedError,
    SessionEndedError,
)
from .items import Item, Resync, ServerError, Stream, UnknownFrame

__all__ = [
    "AetherClient",
    "AetherClientError",
    "ClientClosedError",
    "HandshakeRejectedError",
    "Item",
    "MessageV3",
    "NotConnectedError",
    "ReconnectGaveUpError",
    "Resync",
    "SendQueueFullError",
    "ServerClosedError",
    "ServerError",
    "SessionEndedError",
    "Stream",
    "UnknownFrame",
    "connect",
    "ws_url",
]
