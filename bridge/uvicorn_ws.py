"""uvicorn's websockets-sansio protocol, minus what it keeps but no longer needs.

uvicorn holds the handshake's request, response and headers for a connection's whole life,
though it, and our socket endpoints, only read them until the handshake completes: about
3 KiB of every idle connection's 21. And it pings every connection every interval, though a
client that sent anything (a heartbeat) within the interval has just shown it is there.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .http_guard import HttpGuard


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    heard_at = 0.0  # loop time of the last bytes from the client

    def data_received(self, data: bytes) -> None:
        self.heard_at = self.loop.time()
        super().data_received(data)

    def send_keepalive_ping(self) -> None:
        """Ping only a client silent for a whole interval: at 19,000 connections that
        heartbeat every 30 s, the pings were most of an idle node's CPU."""
        silent = self.loop.time() - self.heard_at
        if self.ping_interval and silent < self.ping_interval and not self.close_sent:
            self.ping_timer = self.loop.call_later(
                self.ping_interval - silent, self.send_keepalive_ping
            )
            return
        super().send_keepalive_ping()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # uvicorn types them as always set; after the handshake nothing reads them.
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
            self.scope["headers"] = []  # bridge.sockets reads Origin before it accepts


def server_options(settings: Any) -> dict[str, Any]:
    """The uvicorn options every node runs with (the command and the tests share them)."""
    return {
        # Deadlines on request heads and bodies, a cap on sockets that never send one.
        "http": HttpGuard(
            settings.handshake_timeout, settings.body_timeout, settings.max_pending_connections
        ),
        "ws": LeanWebSocketProtocol,
        "ws_max_size": settings.max_message_bytes,
        "ws_per_message_deflate": False,  # doubles memory per connection, costs CPU per frame
        "ws_ping_interval": settings.ping_interval or None,
        "ws_ping_timeout": settings.ping_timeout,
        "timeout_graceful_shutdown": settings.graceful_timeout,
        "lifespan": "on",
    }
