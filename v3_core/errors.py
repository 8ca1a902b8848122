"""The exception tree and the stable codes clients see.

BridgeError
├── MessageRejected       one ``error`` reply to the sender; the socket stays open
├── ConnectionRejected    the socket is closed with a CloseCode and a reason
└── BackendUnavailable    Redis (or the upstream ID API) did not answer; mapped at the boundary
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal


class CloseCode(IntEnum):
    """WebSocket close codes the gateway uses, with whether a client should reconnect."""

    NORMAL = 1000  # clean close; no reconnect needed
    INVALID_PAYLOAD = 1007  # text frame that is not UTF-8; fix the client, do not retry as is
    POLICY_VIOLATION = 1008  # bad path ID or V2 refused by policy; fix the URL, do not retry as is
    MESSAGE_TOO_BIG = 1009  # frame over AETHER_MAX_MESSAGE_BYTES; reconnect, send smaller frames
    INTERNAL_ERROR = 1011  # server fault or keepalive timeout; reconnect with backoff
    SERVICE_RESTART = 1012  # node shutting down; reconnect at once (another node will take you)
    TRY_AGAIN_LATER = 1013  # a dependency is down, or the node is full; reconnect with backoff
    SLOW_CONSUMER = 4008  # outgoing queue overflowed; reconnect and refetch state
    UNAUTHORIZED = 4501  # token missing, invalid or expired (AETHER_AUTH_SECRET); get a new one
    RATE_LIMITED = 4529  # too many messages, or connections of one client; reconnect after a pause


ErrorCode = Literal[
    "invalid-json",
    "not-an-object",
    "unknown-field",
    "invalid-field",
    "missing-field",
    "invalid-version",
    "invalid-id",
    "missing-to-id",
    "server-only-type",
    "invalid-target",
    "spoofed-from-id",
    "spoofed-group-id",
    "broadcast-forbidden",
    "publish-failed",
    "untranslatable",
    "rate-limited",
]


class BridgeError(Exception):
    """Root of every error the gateway raises on purpose."""


class MessageRejected(BridgeError):
    """A client message that is not delivered to anyone; its sender gets one error reply."""

    def __init__(self, code: ErrorCode, detail: str, **extra: float | str) -> None:
        super().__init__(detail)
        self.code: ErrorCode = code
        self.detail = detail
        # Machine-readable detail beside ``code`` in the reply's payload (e.g. ``retry_after``).
        self.extra = extra

    def __str__(self) -> str:
        return f"{self.detail} ({self.code})"


class ConnectionRejected(BridgeError):
    """A connection refused or ended by the server, with a close code and a short reason."""

    def __init__(self, close_code: CloseCode, reason: str) -> None:
        # The close reason must fit in a control frame: 123 bytes of UTF-8.
        reason = reason.encode()[:123].decode(errors="ignore")
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason


class BackendUnavailable(BridgeError):
    """A backend (Redis, the upstream ID API) did not answer in time or refused the call."""
