"""The reconnect storm's load-generator process: connect, drop every socket, reconnect.

Each process holds a share of the clients (``StormShare``): where they connect first, and
where they go after the drop. The coordinator (``bench/reconnect.py``) drives it over a Pipe:
``connect`` -> ``connected``, ``storm <at_ns>`` -> ``back``, ``open`` -> the (group, client)
pairs whose socket is open, ``close``. Connections are ``bench.worker``'s (``Load``).
"""

from __future__ import annotations

import asyncio
import random
import time
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

from bench.scenarios import ConnSpec
from bench.worker import Load, WorkerSpec, receive, run_loop, sleep_until
from bench.wsclient import BenchConnection

# -- who connects where ---------------------------------------------------------------------


def clients(total: int, group_size: int) -> tuple[ConnSpec, ...]:
    """``total`` clients in groups of ``group_size``, all on node 0 until they pick one."""
    return tuple(
        ConnSpec(i, 0, f"r-g{i // group_size:05d}", f"r-c{i:06d}", sender=False)
        for i in range(total)
    )


def pick_nodes(conns: Iterable[ConnSpec], nodes: int, seed: int) -> tuple[ConnSpec, ...]:
    """Every client picks a node at random (the same picks for the same seed)."""
    rng = random.Random(seed)
    return tuple(replace(c, node=rng.randrange(nodes)) for c in conns)


def per_node(conns: Iterable[ConnSpec], nodes: int) -> list[int]:
    counts = Counter(c.node for c in conns)
    return [counts[n] for n in range(nodes)]


# -- the load-generator process -------------------------------------------------------------

REFUSAL_WAIT = 0.2  # s after a round of connects: a node's refusal follows its handshake at once


@dataclass(frozen=True)
class StormShare:
    """One process's clients: where they connect first (``spec``), and after the drop."""

    spec: WorkerSpec
    again: tuple[ConnSpec, ...]
    retry_delay_s: float
    deadline_s: float


async def open_all(
    share: StormShare, conns: tuple[ConnSpec, ...], at_once: bool, since_ns: int
) -> tuple[dict[int, BenchConnection], Any]:
    """Open ``conns`` (all at once, or ``concurrency`` at a time), retrying the failed ones
    until the deadline; each latency runs from ``since_ns`` to that client's handshake."""
    pending, opened = conns, {}
    latencies: array[int] = array("q")
    errors: list[str] = []
    rounds = refused = 0
    while pending:
        rounds += 1
        load = Load(replace(share.spec, conns=pending, storm=at_once))
        report = await load.connect_all()
        errors += report["errors"]
        # A node that cannot make a join (Redis too slow, a limit) closes the socket right
        # behind its handshake: such a client is not back, and tries again like a failed one.
        await asyncio.sleep(REFUSAL_WAIT)
        for index, conn in load.conns.items():
            if (why := conn.refused) is not None:
                refused += 1
                errors.append(f"closed after its handshake: {why}")
            else:
                opened[index] = conn
                latencies.append(conn.opened_ns - since_ns)
        pending = tuple(c for c in pending if c.index not in opened)
        if not pending or time.monotonic_ns() - since_ns > share.deadline_s * 1e9:
            break
        await asyncio.sleep(share.retry_delay_s)
    return opened, {
        "back": len(opened),
        "missing": len(pending),
        "refused": refused,
        "rounds": rounds,
        "errors": errors[:5],
        "latency_ns": latencies.tobytes(),
        "took_ns": time.monotonic_ns() - since_ns,
    }


async def _serve(pipe: Connection, share: StormShare) -> None:
    """Commands: ``connect``, ``storm <at_ns>``, ``open`` (who is connected), ``close``."""
    conns: dict[int, BenchConnection] = {}
    pipe.send(("ready", share.spec.worker_id))
    while True:
        kind, value = await receive(pipe, 900)
        if kind == "connect":
            conns, report = await open_all(share, share.spec.conns, False, time.monotonic_ns())
            pipe.send(("connected", report))
        elif kind == "storm":
            await sleep_until(int(value))
            dropped = time.monotonic_ns()
            for conn in conns.values():
                conn.abort()
            conns, report = await open_all(share, share.again, True, dropped)
            pipe.send(("back", report))
        elif kind == "open":
            specs = {c.index: c for c in share.again}
            alive = [
                (specs[i].group_id, specs[i].client_id) for i, c in conns.items() if not c.closed
            ]
            pipe.send(("open", alive))
        else:  # "close"
            for conn in conns.values():
                conn.abort()
            return


def worker_main(pipe: Connection, share: StormShare) -> None:
    """Process entry point (``multiprocessing`` spawn target)."""
    try:
        run_loop(_serve(pipe, share))
    finally:
        pipe.close()
