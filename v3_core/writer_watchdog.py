"""The writer watchdog: a send that lasts ``send_timeout`` closes its connection (4008).

`Connection.deliver` never awaits, so a client that stops reading shows only as a send that
does not finish; one task per node finds those, rather than a timer per send. It reads the
node's `SendsInProgress`, so a pass costs the sends under way, not the connections held.
"""

from __future__ import annotations

import asyncio

from .connection import SendsInProgress


async def watch_writers(sends: SendsInProgress, timeout: float) -> None:
    """Close each connection whose send has lasted ``timeout``, when it has; runs forever.

    It sleeps until the oldest send in progress reaches the limit, or a whole ``timeout``
    when none is: a send starting after a pass cannot be due before then. An idle node wakes
    once per ``timeout``, not every half second.
    """
    loop = asyncio.get_running_loop()
    while True:
        now = loop.time()
        late, next_pass = sends.overdue(now, timeout)
        for conn in late:
            conn.close_slow(f"a send took over {timeout}s")
        await asyncio.sleep(next_pass - now)
