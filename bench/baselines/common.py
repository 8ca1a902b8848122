"""What every baseline does to a client message before fanning it out."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import orjson


def stamp(payload: Any, group_id: str, client_id: str) -> bytes:
    """The delivered message: V3-shaped, encoded once for all recipients."""
    return orjson.dumps(
        {
            "version": "3",
            "msg_type": "msg",
            "target": "group",
            "from_id": client_id,
            "group_id": group_id,
            "payload": payload,
            "sent_at": datetime.now(UTC).isoformat(),
        }
    )


def payload_of(frame: str | bytes) -> Any:
    """The ``payload`` of a client's V3-shaped frame (``{}`` if it has none)."""
    message = orjson.loads(frame)
    return message.get("payload", {}) if isinstance(message, dict) else {"data": message}


def parse_args(description: str, *, redis: bool) -> argparse.Namespace:
    """``--host``/``--port`` (and ``--redis-url``) for a baseline's ``__main__``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    if redis:
        parser.add_argument("--redis-url", required=True)
    return parser.parse_args()


def uvicorn_options(host: str, port: int) -> dict[str, Any]:
    """The same uvicorn settings for every uvicorn-served baseline (and quiet logs)."""
    return {
        "host": host,
        "port": port,
        "ws": "websockets-sansio",
        "loop": "uvloop",
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
    }
