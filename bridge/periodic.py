"""The background loop the node's stores share: an action every interval until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


async def every(
    interval: float,
    stop: asyncio.Event,
    action: Callable[[], Awaitable[None]],
    log: logging.Logger,
    what: str,
) -> None:
    """Run ``action`` every ``interval`` seconds until ``stop`` is set.

    Stopped, not cancelled: redis-py can turn a cancellation inside a call into an error. A
    failure is logged (as ``what`` failed) and the next round still runs.
    """
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
            return
        try:
            await action()
        except Exception:  # a bug in one round must not stop the later ones
            log.exception("%s failed", what)
