"""Traffic for the chaos tier: recording members, lock-step publishers, and the exact checker.

Publishers stamp ``(pub, seq)`` into each payload, so the checker computes loss, duplicates
and order per receiver exactly, and can tell an announced gap (a resync notice sits between
the messages around it) from a silent one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

OUTCOME_TIMEOUT = 3.0  # seconds a publisher waits for its own copy or an error reply


def is_resync(frame: dict[str, Any]) -> bool:
    return frame.get("msg_type") == "cmd" and frame.get("cmd") == "resync"


class Member:
    """A V3 client that records every frame it receives, and when and how its socket closed."""

    def __init__(self, name: str, ws: ClientConnection) -> None:
        self.name = name
        self.ws = ws
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self.closed_at: float | None = None
        self.close_code: int | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read(), name=f"member-{name}")

    @classmethod
    async def open(cls, base: str, group: str, client: str) -> Member:
        ws = await websockets.connect(
            f"{base}/v3/ws/group/{group}/client/{client}", open_timeout=5, max_queue=None
        )
        return cls(client, ws)

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for data in self.ws:
                self.frames.append((time.monotonic(), json.loads(data)))
                self._changed.set()
        self.closed_at = time.monotonic()
        self.close_code = self.ws.close_code
        self._changed.set()

    async def wait_frame(
        self, match: Callable[[dict[str, Any]], bool], start: int, timeout: float
    ) -> tuple[int, dict[str, Any]] | None:
        """The first frame at index >= ``start`` that matches, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        index = start
        while True:
            while index < len(self.frames):
                frame = self.frames[index][1]
                if match(frame):
                    return index, frame
                index += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed_at is not None:
                return None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def stamped(self) -> list[tuple[int, str, int]]:
        """(frame index, publisher, seq) of every publisher message received, in order."""
        out = []
        for index, (_, frame) in enumerate(self.frames):
            payload = frame.get("payload") or {}
            if frame.get("msg_type") == "msg" and "seq" in payload:
                out.append((index, payload["pub"], payload["seq"]))
        return out

    def resyncs(self) -> list[tuple[int, float, dict[str, Any]]]:
        return [(i, at, f) for i, (at, f) in enumerate(self.frames) if is_resync(f)]

    async def aclose(self) -> None:
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self._task, 5)


@dataclass
class Outcome:
    seq: int
    sent: float
    kind: str  # "ok" (own copy came back), "error" (error reply), "unknown" (neither in time)
    answered: float


class Published(Protocol):
    """What check_delivery reads of whoever published: a name and what became of each message."""

    @property
    def name(self) -> str: ...

    @property
    def outcomes(self) -> list[Outcome]: ...


@dataclass
class Publisher:
    """Sends group messages one at a time and records what became of each."""

    member: Member
    rate: float
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.member.name

    async def run(self, until: float) -> None:
        period, next_at, seq = 1 / self.rate, time.monotonic(), 0
        while time.monotonic() < until and self.member.closed_at is None:
            seq += 1
            await self._send_one(seq)
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _send_one(self, seq: int) -> None:
        member, name = self.member, self.name
        start, sent = len(member.frames), time.monotonic()
        frame = {"msg_type": "msg", "target": "group", "payload": {"pub": name, "seq": seq}}
        await member.ws.send(json.dumps(frame))

        def answer(f: dict[str, Any]) -> bool:
            payload = f.get("payload") or {}
            mine = payload.get("pub") == name and payload.get("seq") == seq
            return f.get("msg_type") == "error" or mine

        found = await member.wait_frame(answer, start, OUTCOME_TIMEOUT)
        kind = "unknown" if found is None else found[1]["msg_type"]
        self.outcomes.append(Outcome(seq, sent, "ok" if kind == "msg" else kind, time.monotonic()))


@dataclass
class Report:
    """What every receiver saw of every publisher it shares a group with."""

    expected: int = 0
    lost: int = 0
    lost_silently: list[str] = field(default_factory=list)
    lost_after_healthy: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    receivers_with_loss: set[str] = field(default_factory=set)


def check_delivery(
    receivers: Iterable[Member], publishers: Iterable[Published], *, healthy_after: float
) -> Report:
    """Every message not refused must reach every receiver, or sit in an announced gap.

    A gap is announced when a resync notice lies between the receiver's neighbours of the
    missing message; a message sent at or after ``healthy_after`` must never be missing.
    """
    report = Report()
    publishers = list(publishers)
    for receiver in receivers:
        stamped = receiver.stamped()
        resync_at = [i for i, _, _ in receiver.resyncs()]
        for pub in publishers:
            _check_pair(report, receiver, pub, stamped, resync_at, healthy_after)
    return report


def _check_pair(
    report: Report,
    receiver: Member,
    pub: Published,
    stamped: list[tuple[int, str, int]],
    resync_at: list[int],
    healthy_after: float,
) -> None:
    got = [(i, seq) for i, name, seq in stamped if name == pub.name]
    seqs = [seq for _, seq in got]
    where = f"{pub.name}->{receiver.name}"
    if len(set(seqs)) != len(seqs):
        report.duplicates.append(where)
    published = [o for o in pub.outcomes if o.kind != "error"]
    # A refused message may still surface after a timeout; order is checked among the rest.
    sent_seqs = {o.seq for o in published}
    ordered = [s for s in seqs if s in sent_seqs]
    if ordered != sorted(ordered):
        report.out_of_order.append(where)
    index_of = {seq: i for i, seq in got}
    for outcome in published:
        report.expected += 1
        if outcome.seq in index_of:
            continue
        report.lost += 1
        report.receivers_with_loss.add(receiver.name)
        before = max((i for i, s in got if s < outcome.seq), default=-1)
        after = min((i for i, s in got if s > outcome.seq), default=len(receiver.frames))
        label = f"{where}#{outcome.seq}"
        if not any(before < r < after for r in resync_at):
            report.lost_silently.append(label)
        if outcome.sent >= healthy_after:
            report.lost_after_healthy.append(label)


class ReadyWatch:
    """Polls /readyz of some nodes and records when each answered 200 or not."""

    def __init__(self, bases: dict[str, str], interval: float = 0.1) -> None:
        self.bases = bases
        self.interval = interval
        self.history: dict[str, list[tuple[float, bool]]] = {name: [] for name in bases}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReadyWatch:
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _poll(self) -> None:
        async with httpx.AsyncClient(timeout=1.0) as http:
            while True:
                await asyncio.gather(*(self._probe(http, n, b) for n, b in self.bases.items()))
                await asyncio.sleep(self.interval)

    async def _probe(self, http: httpx.AsyncClient, name: str, base: str) -> None:
        try:
            ok = (await http.get(f"{base}/readyz")).status_code == 200
        except httpx.HTTPError:
            ok = False
        self.history[name].append((time.monotonic(), ok))

    def first(self, name: str, ready: bool, after: float) -> float | None:
        """When ``name`` was first seen ready (or not) at or after ``after``."""
        return next((t for t, ok in self.history[name] if t >= after and ok == ready), None)

    def healthy_since(self, after: float) -> float | None:
        """When every node was seen ready again after ``after`` (the latest of them)."""
        times = [self.first(name, True, after) for name in self.bases]
        return None if None in times else max(t for t in times if t is not None)


async def numsub(client: Any, channels: list[str]) -> dict[str, int]:
    return dict(await client.pubsub_numsub(*channels))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def fds_to_port(pid: int, port: int) -> int:
    """How many of ``pid``'s open fds are TCP connections to ``port`` (e.g. Redis'),
    matched through the socket inodes in the process's /proc/net/tcp and tcp6."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port:  # rem_address is host:port, hex
                inodes.add(fields[9])
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed between the listing and the read
            target = os.readlink(fd)
            count += target.startswith("socket:[") and target[8:-1] in inodes
    return count


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
