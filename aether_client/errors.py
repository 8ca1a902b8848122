"""What the client raises.

AetherClientError
├── SessionEndedError       the client stopped for good and will not reconnect
│   ├── ServerClosedError       closed with a code that must not be retried (1008, 4501, ...)
│   ├── HandshakeRejectedError  the HTTP upgrade got a 4xx answer (wrong path, refused origin)
│   └── ReconnectGaveUpError    the first attempt and ``max_retries`` retries failed in a row
├── NotConnectedError       a send while reconnecting, with ``queue=0``: it was not sent
│   └── SendQueueFullError      a send while reconnecting, with ``queue`` frames already held
└── ClientClosedError       the client was closed by its own code (``close()``)
"""

from __future__ import annotations

# Close codes the gateway documents as "fix something first" (guide section 6), with what to fix.
ADVICE = {
    1000: "the server ended the session normally",
    1007: "a frame was not valid UTF-8: fix the client",
    1008: "a path ID or ?recover= is malformed: fix the URL",
    1009: "a frame was over the server's size limit: send smaller messages",
    4501: "the token is missing, invalid or expired: get a new one",
}


class AetherClientError(Exception):
    """Root of every error this client raises on purpose."""


class SessionEndedError(AetherClientError):
    """The client stopped for good: it will not reconnect, sends and ``members()`` raise this."""


class ServerClosedError(SessionEndedError):
    """The server closed the connection with a code this client does not retry."""

    def __init__(self, code: int, reason: str) -> None:
        advice = ADVICE.get(code, "not retried")
        super().__init__(f"the server closed the connection with {code} {reason!r}; {advice}")
        self.code = code
        self.reason = reason


class HandshakeRejectedError(SessionEndedError):
    """The WebSocket upgrade was answered with an HTTP 4xx (other than 408 and 429)."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"the WebSocket handshake to {url} was answered with HTTP {status}")
        self.url = url
        self.status = status


class ReconnectGaveUpError(SessionEndedError):
    """The first attempt and ``max_retries`` retries after it failed, in a row."""

    def __init__(self, attempts: int, last: str) -> None:
        super().__init__(f"gave up after {attempts} failed connection attempts in a row ({last})")
        self.attempts = attempts
        self.last = last


class NotConnectedError(AetherClientError):
    """The client is between connections and does not queue: the message was not sent."""


class SendQueueFullError(NotConnectedError):
    """The client is between connections and its send queue is full: the message was not sent."""


class ClientClosedError(AetherClientError):
    """The client was closed with ``close()`` (or by leaving its ``async with``)."""
