"""Tokens out of every request line uvicorn logs.

A socket on one of our paths has its ``?token=`` taken out of the query before uvicorn logs
it (bridge/auth.py), but a request that matches no path (a trailing slash, an extra segment,
a plain GET on a socket URL) or spells it ``?Token=`` is logged as it came. This filter, on
uvicorn's access and error loggers (WebSocket handshakes are logged on the latter), replaces
the value of every query parameter whose name contains "token" in any case or encoding.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

LOGGERS = ("uvicorn.access", "uvicorn.error")
REDACTED = "[redacted]"
QUERY = re.compile(r"\?[^\s\"]*")  # a query string inside a logged request line


def redact_query(query: str) -> str:
    """``query`` (without its ``?``) with the values of token parameters replaced."""
    pairs = []
    for pair in re.split(r"([&;])", query):
        name, sep, _ = pair.partition("=")
        if sep and "token" in unquote_plus(name).lower():
            pair = f"{name}={REDACTED}"
        pairs.append(pair)
    return "".join(pairs)


def redact(text: str) -> str:
    if "?" not in text:
        return text
    return QUERY.sub(lambda match: "?" + redact_query(match.group()[1:]), text)


class TokenRedaction(logging.Filter):
    """Rewrites the record's message arguments (uvicorn logs the path as one of them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install() -> None:
    """Once per process, on uvicorn's loggers (its dictConfig keeps a logger's filters)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, TokenRedaction) for existing in logger.filters):
            logger.addFilter(TokenRedaction())
