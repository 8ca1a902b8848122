"""The V3 core: messages, routing, connections and backends, free of any web framework."""

from .connection import Connection, Dialect, QueueLimits, Sender, V3Dialect
from .errors import (
    BackendUnavailable,
    BridgeError,
    CloseCode,
    ConnectionRejected,
    ErrorCode,
    MessageRejected,
)
from .ids import ConnId, VisionId, is_legacy_int, is_vision_id, new_vision_id, parse_vision_id
from .manager import ConnectionManager
from .messages import MessageV3, encode, error_reply, parse_client_message, stamp
from .routing import Channels, Envelope
from .stats import ManagerStats

__all__ = [
    "BackendUnavailable",
    "BridgeError",
    "Channels",
    "CloseCode",
    "ConnId",
    "Connection",
    "ConnectionManager",
    "ConnectionRejected",
    "Dialect",
    "Envelope",
    "ErrorCode",
    "ManagerStats",
    "MessageRejected",
    "MessageV3",
    "QueueLimits",
    "Sender",
    "V3Dialect",
    "VisionId",
    "encode",
    "error_reply",
    "is_legacy_int",
    "is_vision_id",
    "new_vision_id",
    "parse_client_message",
    "parse_vision_id",
    "stamp",
]
