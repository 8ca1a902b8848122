"""uvicorn's websockets-sansio protocol, minus what it keeps but no longer needs.

uvicorn holds the handshake's request, response and headers for a connection's whole life,
though it, and our socket endpoints, only read them until the handshake completes: about
3 KiB of every idle connection's 21.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .http_guard import HttpGuard


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
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
