"""Closing every socket of a node that shuts down: paced, and never held up by a client.

A legacy connection's positions are stored before its close (nothing is sent after them, so
they stay true). A client that does not read would hold a polite close, so it is cut off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .connection import Connection

log = logging.getLogger("aether.manager")

CLOSE_TIMEOUT = 1.0  # seconds a 1012 close may take before uvicorn's own shutdown cuts it

LeavePositions = Callable[[Connection], Awaitable[None]]


async def close_all(
    conns: list[Connection],
    code: int,
    reason: str,
    *,
    spread: float,
    leave_positions: LeavePositions,
) -> None:
    """Close ``conns``, paced evenly over ``spread`` seconds, so the clients do not all
    reconnect elsewhere in the same instant."""
    loop = asyncio.get_running_loop()
    start, closing = loop.time(), []
    for n, conn in enumerate(conns):
        due = start + spread * n / len(conns)
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        closing.append(asyncio.create_task(_close(conn, code, reason, leave_positions)))
    await asyncio.gather(*closing)


async def _close(conn: Connection, code: int, reason: str, leave_positions: LeavePositions) -> None:
    stuck = conn.send_stuck_since() is not None or bool(conn.undelivered())
    await conn.aclose()  # nothing more is sent: the stored positions stay true
    await leave_positions(conn)
    if stuck:  # a client that does not read would hold a polite close
        conn.sender.abort(code, reason)
        return
    try:
        await asyncio.wait_for(conn.sender.close(code, reason), CLOSE_TIMEOUT)
    except Exception as exc:  # gone already: uvicorn cleans up
        log.debug("closing %r at shutdown: %r", conn, exc)
