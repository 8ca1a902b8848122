"""Vision IDs: the opaque, random identifiers V3 uses for groups and clients.

Pure functions only; the legacy integer IDs live in `translators.id_mapping`.
"""

from __future__ import annotations

import re
import secrets
from typing import NewType

VisionId = NewType("VisionId", str)
ConnId = NewType("ConnId", str)

VISION_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"  # fullmatch: "$" would admit a trailing newline
_VISION_ID = re.compile(VISION_ID_PATTERN)
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def is_vision_id(value: str) -> bool:
    """1–64 characters of ``[A-Za-z0-9_-]``, not all digits (those are legacy integers), and
    not a minus followed by digits: ``-5`` is a negative number, which no database row has."""
    if _VISION_ID.fullmatch(value) is None or value.isdigit():
        return False
    return not (value[0] == "-" and value[1:].isdigit())


def is_legacy_int(value: str) -> bool:
    """A database integer as the legacy paths spell it: ASCII digits only, no sign."""
    return 0 < len(value) <= 19 and value.isascii() and value.isdigit()


def parse_vision_id(value: str) -> VisionId:
    """Return ``value`` as a VisionId, or raise ValueError naming it."""
    if not is_vision_id(value):
        raise ValueError(f"{value[:40]!r} is not a Vision ID")
    return VisionId(value)


def new_vision_id(prefix: str = "") -> VisionId:
    """A fresh random Vision ID (22 base62 characters, ~131 bits, after an optional prefix)."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(22))
    return VisionId(prefix + body)


def new_conn_id() -> ConnId:
    """A node-unique, cluster-unique connection ID (never shown to clients as an ID they use)."""
    return ConnId(secrets.token_hex(8))
