"""Stall probe for `aether-bridge serve` processes under the benchmark (diagnosis only).

Put this directory on PYTHONPATH and every `aether-bridge serve` started with that environment
(the bench passes its environment on) writes ``$AETHER_PROBE_DIR/probe-<pid>.log`` (default
/tmp), one line per event, stamped with CLOCK_MONOTONIC seconds as the bench's clients are:

- ``gc<n> <ms>``: a collection of generation 1 or 2, or any collection over 1 ms (wall time);
- ``stall <ms> cpu <ms>``: the event loop came back more than 2 ms late to a 1 ms sleep, and
  how much CPU this thread used meanwhile (little CPU: the process was descheduled);
- ``refresh <ms> cpu <ms>``: one presence refresh and sweep (``ConnectionManager``).

    PYTHONPATH=bench/probe /tmp/bench-venv/bin/python -m bench --scenarios fanout --systems project

The 1 ms ticker costs each node a little CPU: compare figures from runs without the probe.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

if len(sys.argv) > 1 and sys.argv[1] == "serve" and "aether-bridge" in sys.argv[0]:
    import asyncio

    import uvicorn.server

    import v3_core.presence_keeper

    _log = open(  # lives as long as the process
        os.path.join(os.environ.get("AETHER_PROBE_DIR", "/tmp"), f"probe-{os.getpid()}.log"),
        "w",
        buffering=1,
    )
    _started: list[int] = [0]

    def _on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _started[0] = time.perf_counter_ns()
            return
        took = (time.perf_counter_ns() - _started[0]) / 1e6
        if info["generation"] >= 1 or took > 1.0:
            _log.write(
                f"{time.monotonic():.3f} gc{info['generation']} {took:.2f}"
                f" collected {info['collected']} counts {gc.get_count()}\n"
            )

    gc.callbacks.append(_on_gc)
    if _threshold := os.environ.get("AETHER_PROBE_GC_THRESHOLD"):  # e.g. "10000,10,10"
        gc.set_threshold(*(int(t) for t in _threshold.split(",")))

    async def _ticker() -> None:
        while True:
            wall, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(0.001)
            late = (time.perf_counter() - wall - 0.001) * 1000
            if late > 2.0:
                used = (time.thread_time() - cpu) * 1000
                _log.write(f"{time.monotonic():.3f} stall {late:.2f} cpu {used:.2f}\n")

    _serve = uvicorn.server.Server.serve

    async def _serve_probed(self: uvicorn.server.Server, *args: Any, **kwargs: Any) -> None:
        ticker = asyncio.ensure_future(_ticker())
        try:
            await _serve(self, *args, **kwargs)
        finally:
            ticker.cancel()

    uvicorn.server.Server.serve = _serve_probed  # type: ignore[method-assign]

    _refresh = v3_core.presence_keeper.PresenceKeeper.refresh_and_sweep

    async def _refresh_probed(self: v3_core.presence_keeper.PresenceKeeper) -> None:
        wall, cpu = time.monotonic(), time.thread_time()
        try:
            await _refresh(self)
        finally:
            took, used = (time.monotonic() - wall) * 1000, (time.thread_time() - cpu) * 1000
            _log.write(f"{wall:.3f} refresh {took:.1f} cpu {used:.1f}\n")

    v3_core.presence_keeper.PresenceKeeper.refresh_and_sweep = _refresh_probed  # type: ignore[method-assign]
