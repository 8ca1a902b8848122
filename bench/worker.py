"""Load-generator worker process: holds a share of the connections, sends, counts, times.

The coordinator drives it over a Pipe: ``ready`` -> ``connect`` -> ``connected`` -> ``run t0`` ->
``result`` -> ``close``. After ``run`` it follows the shared CLOCK_MONOTONIC timeline on its own,
so the coordinator can read server CPU exactly at window boundaries without talking to it.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.dialects import DIALECTS, Received
from bench.scenarios import ConnSpec, Step, StepWindow, dialect_of, sends_in, timeline
from bench.wsclient import BenchConnection

CONNECT_TIMEOUT_S = 20.0
STALL_NS = 1_000_000_000  # window mode: a window with no echo for 1 s is presumed lost


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs; picklable for the ``spawn`` start method."""

    worker_id: int
    conns: tuple[ConnSpec, ...]
    node_ports: tuple[int, ...]
    dialect: str  # the system's; a connection may speak its own
    group_sizes: dict[str, int]
    steps: tuple[Step, ...]
    shares: tuple[float, ...]  # of each step's cluster-wide rate or window
    drain_s: float
    storm: bool
    connect_concurrency: int


@dataclass
class StepTally:
    """Counters of one step as seen by this worker; latencies only inside the measure window."""

    sent: int = 0
    sent_in_window: int = 0
    expected: int = 0
    delivered: int = 0
    in_window: int = 0
    latency_ns: array[int] = field(default_factory=lambda: array("q"))
    received_ns: array[int] = field(default_factory=lambda: array("q"))  # when, per latency
    uplink_ns: array[int] = field(default_factory=lambda: array("q"))  # send -> server stamp
    downlink_ns: array[int] = field(default_factory=lambda: array("q"))  # stamp -> received

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "sent_in_window": self.sent_in_window,
            "expected": self.expected,
            "delivered": self.delivered,
            "in_window": self.in_window,
            "latency_ns": self.latency_ns.tobytes(),
            "received_ns": self.received_ns.tobytes(),
            "uplink_ns": self.uplink_ns.tobytes(),
            "downlink_ns": self.downlink_ns.tobytes(),
        }


@dataclass
class Rotation:
    """Round robin over the open connections that send in a step. Steps with the same
    ``senders`` share one, so the order carries on across them as with a single list."""

    conns: list[BenchConnection]
    next: int = 0


class Load:
    """The worker's connections plus the per-step sending and counting logic."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.conns: dict[int, BenchConnection] = {}
        self.fanout = {c.index: spec.group_sizes[c.group_id] for c in spec.conns}
        self.tallies = [StepTally() for _ in spec.steps]
        self.windows: list[StepWindow] = []
        self.rotations: list[Rotation] = []  # per step, set once connected
        self.active = -1  # window-mode step currently sending
        self.inflight = 0
        self.last_echo = 0
        self.realtime_offset = 0  # CLOCK_REALTIME - CLOCK_MONOTONIC, for the server's stamps

    # -- connect ------------------------------------------------------------------------

    async def connect_all(self) -> dict[str, Any]:
        """Open every connection (all at once for a storm); report latencies and failures."""
        limit = len(self.spec.conns) if self.spec.storm else self.spec.connect_concurrency
        gate = asyncio.Semaphore(max(1, limit))
        latencies, errors = array("q"), []
        started = time.monotonic_ns()

        async def one(conn: ConnSpec) -> None:
            async with gate:
                begin = time.monotonic_ns()
                try:
                    await self._open(conn)
                except Exception as exc:  # every failure is counted and reported
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                else:
                    latencies.append(time.monotonic_ns() - begin)

        await asyncio.gather(*(one(c) for c in self.spec.conns))
        wall = time.monotonic_ns() - started
        self.rotations = self._rotations()
        return {
            "ok": len(latencies),
            "failed": len(errors),
            "errors": errors[:5],
            "latency_ns": latencies.tobytes(),
            "wall_ns": wall,
        }

    def _rotations(self) -> list[Rotation]:
        """Each step's senders among the connections that opened, in index order."""
        specs = {c.index: c for c in self.spec.conns}
        shared: dict[str | None, Rotation] = {}
        rotations = []
        for step in self.spec.steps:
            if step.senders not in shared:
                shared[step.senders] = Rotation(
                    [
                        conn
                        for i, conn in sorted(self.conns.items())
                        if sends_in(specs[i], step, self.spec.dialect)
                    ]
                )
            rotations.append(shared[step.senders])
        return rotations

    async def _open(self, spec: ConnSpec) -> None:
        port = self.spec.node_ports[spec.node]
        dialect = DIALECTS[dialect_of(spec, self.spec.dialect)]
        path = dialect.path.format(group=spec.group_id, client=spec.client_id)
        auth = {"group": spec.group_id, "client": spec.client_id}
        loop = asyncio.get_running_loop()
        conn: BenchConnection | None = None

        def factory() -> BenchConnection:
            nonlocal conn
            conn = BenchConnection(
                spec.index, f"ws://127.0.0.1:{port}{path}", dialect, auth, self.on_bench
            )
            return conn

        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await loop.create_connection(factory, "127.0.0.1", port)
                assert conn is not None
                await conn.ready
        except BaseException:
            if conn is not None:
                conn.abort()
            raise
        self.conns[spec.index] = conn

    # -- receive ------------------------------------------------------------------------

    def on_bench(self, index: int, received: Received) -> None:
        """Count one delivery; a sender's own copy releases its window slot."""
        now = time.monotonic_ns()
        payload = received.payload
        step = payload["k"]
        if not 0 <= step < len(self.tallies):
            return
        tally = self.tallies[step]
        tally.delivered += 1
        window = self.windows[step]
        if window.measure_start <= now < window.end:
            tally.in_window += 1
            tally.latency_ns.append(now - payload["t"])
            tally.received_ns.append(now)
            if received.stamped_ns:
                stamped = received.stamped_ns - self.realtime_offset
                tally.uplink_ns.append(stamped - payload["t"])
                tally.downlink_ns.append(now - stamped)
        if payload["s"] == index and step == self.active:
            self.inflight -= 1
            self.last_echo = now
            if now < window.end and self.send_next(step):
                self.inflight += 1

    # -- send ---------------------------------------------------------------------------

    def send_next(self, step: int) -> bool:
        """Send one bench message from the step's next sender, in its own dialect."""
        rotation = self.rotations[step]
        senders = rotation.conns
        for _ in range(len(senders)):
            conn = senders[rotation.next]
            rotation.next = (rotation.next + 1) % len(senders)
            now = time.monotonic_ns()
            if conn.send(conn.dialect.frame(conn.index, step, now)):
                tally = self.tallies[step]
                tally.sent += 1
                tally.expected += self.fanout[conn.index]
                window = self.windows[step]
                if window.measure_start <= now < window.end:
                    tally.sent_in_window += 1
                return True
        return False

    async def run(self, t0: int) -> list[dict[str, Any]]:
        """Follow the timeline from ``t0``; return each step's tally after the last drain."""
        self.windows = timeline(self.spec.steps, t0, self.spec.drain_s)
        self.realtime_offset = time.time_ns() - time.monotonic_ns()
        for k, (step, window) in enumerate(zip(self.spec.steps, self.windows, strict=True)):
            await sleep_until(window.start)
            share = self.spec.shares[k]
            if not self.rotations[k].conns or not share or step.mode == "idle":
                await sleep_until(window.end)
            elif step.mode == "rate":
                await self._rate(k, step.rate * share, window)
            else:
                await self._window(k, max(1, round(step.window * share)), window)
        if self.windows:
            await sleep_until(self.windows[-1].end + int(self.spec.drain_s * 1e9))
        return [t.as_dict() for t in self.tallies]

    async def _rate(self, step: int, rate: float, window: StepWindow) -> None:
        sent = 0
        while (now := time.monotonic_ns()) < window.end:
            due = min(int((now - window.start) * rate / 1e9) - sent, 1000)
            for _ in range(due):
                if self.send_next(step):
                    sent += 1
            await asyncio.sleep(0.001)

    async def _window(self, step: int, size: int, window: StepWindow) -> None:
        self.active, self.inflight = step, 0
        while (now := time.monotonic_ns()) < window.end:
            if self.inflight and now - self.last_echo > STALL_NS:
                self.inflight = 0  # presumed lost: the delivery ratio will show it
            if self.inflight < size:
                while self.inflight < size and self.send_next(step):
                    self.inflight += 1
                self.last_echo = now  # the stall clock restarts with every refill
            await asyncio.sleep(0.05)
        self.active = -1

    async def close_all(self) -> None:
        for conn in self.conns.values():
            conn.close()
        await asyncio.sleep(0.5)
        for conn in self.conns.values():
            conn.abort()


async def sleep_until(deadline_ns: int) -> None:
    delay = (deadline_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


async def receive(pipe: Connection, timeout: float) -> tuple[str, Any]:
    """Wait for the coordinator's next command while the event loop keeps serving sockets."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pipe.poll():
            kind, value = pipe.recv()
            return str(kind), value
        await asyncio.sleep(0.01)
    raise TimeoutError("coordinator went quiet")


async def _serve(pipe: Connection, spec: WorkerSpec) -> None:
    load = Load(spec)
    pipe.send(("ready", spec.worker_id))
    await receive(pipe, 120)
    pipe.send(("connected", await load.connect_all()))
    kind, t0 = await receive(pipe, 300)
    if kind == "run":
        lost_before = sum(c.closed for c in load.conns.values())
        steps = await load.run(int(t0))
        lost = sum(c.closed for c in load.conns.values()) - lost_before
        pipe.send(("result", {"steps": steps, "lost": lost}))
        await receive(pipe, 120)
    await load.close_all()


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a load generator's ``main`` on uvloop when it is installed (a cheaper client side)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def worker_main(pipe: Connection, spec: WorkerSpec) -> None:
    """Process entry point (``multiprocessing`` spawn target)."""
    try:
        run_loop(_serve(pipe, spec))
    finally:
        pipe.close()
