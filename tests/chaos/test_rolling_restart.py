"""A rolling restart with history on: no client misses a message (docs/reliability.md section 5).

Two real nodes, A and B, on one throwaway Redis, history on. 200 clients in eight groups,
spread over both nodes: 150 V3 clients, which reconnect with ``?recover=`` built from the last
position they saw of each stream, and 50 legacy V2 clients, which reconnect on the same path
with no change (the stopping node stores their positions). Load of ~200 messages/s: group
messages sent by clients (each waits for its own copy before the next), direct messages and
broadcasts through ``POST /v3/messages``; each carries a unique (pub, seq), so the check is
exact.

During the load A gets SIGTERM: its clients get 1012 and reconnect to B after 50-300 ms. A is
restarted on its port and, once ready, B gets the same. Then, per client: every message of its
streams (its group, its client ID, broadcast) arrived, in publish order per publisher; V3
clients got none twice, the offsets of each stream with no gap, and no ``resync``; legacy
clients missed none (their duplicates are counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from ..conftest import NodeProcess
from ..helpers import eventually, metrics
from ..support.redis_server import RedisServer
from .conftest import LaunchNode
from .traffic import percentile

pytestmark = pytest.mark.chaos

GROUPS = [f"roll-g{n}" for n in range(8)]
V3_CLIENTS, V2_CLIENTS = 150, 50
GROUP_RATE = 1.5  # messages/s of each client that sends group messages (104 of them)
DIRECT_PUBLISHERS, DIRECT_RATE = 2, 24.0  # POST /v3/messages, each to one client in turn
BROADCAST_RATE = 2.0  # POST /v3/messages
LOAD_SECONDS = 22.0
STOP_AT = (4.0, 12.0)  # seconds into the load: SIGTERM to A, then to B
SETTLE = 2.0  # seconds after the load for the last deliveries
BACKOFF = (0.05, 0.3)  # seconds a client waits before each reconnect attempt
OWN_COPY_TIMEOUT = 3.0
RECONNECT_BOUND = 5.0  # seconds, once the restarted node is ready, for every client to be back
HISTORY_ENV = {"AETHER_HISTORY_SIZE": "1000", "AETHER_HISTORY_TTL": "300"}
NODE_IDS = ("nodeA", "nodeB")
STREAM_OF_TARGET = {"group": "group", "direct": "client", "broadcast": "broadcast"}
WARM_UP = "warm-up"
RECOVERY_METRICS = ("aether_recoveries", "aether_messages_replayed")

Key = tuple[str, int]  # (publisher, seq)


@dataclass
class Sent:
    """One message a publisher sent, and what it knows became of it."""

    pub: str
    seq: int
    stream: str  # "group", "client" or "broadcast"
    to: str  # the group, the client, or "" for a broadcast
    at: float
    # HTTP: "accepted" (202) or "failed"; socket: "echoed" (its own copy came back),
    # "refused" (an error reply), "dropped" (its socket closed first) or "timeout"
    outcome: str


def load_stamp(frame: dict[str, Any]) -> tuple[str, str, int] | None:
    """(stream, publisher, seq) of a load message in V3 or V2 shape, else None."""
    if "msg_type" in frame:
        kind, body = frame["msg_type"], frame.get("payload")
    else:
        kind, body = frame.get("type"), frame.get("data")
    if kind != "msg" or not isinstance(body, dict) or "seq" not in body:
        return None
    return STREAM_OF_TARGET[frame["target"]], body["pub"], body["seq"]


def is_resync(frame: dict[str, Any]) -> bool:
    return frame.get("cmd") == "resync"  # V3 and V2 shapes alike


def is_error(frame: dict[str, Any]) -> bool:
    return "error" in (frame.get("msg_type"), frame.get("type"))  # V3 and V2 shapes


class RollingClient:
    """A frontend with one socket at a time; when it drops, it reconnects to the other node."""

    def __init__(self, name: str, group: str, legacy: bool, node: int) -> None:
        self.name = name
        self.group = group
        self.legacy = legacy
        self.first_node = self.node = node
        self.path = f"{'/ws' if legacy else '/v3/ws'}/group/{group}/client/{name}"
        self.ws: ClientConnection | None = None
        self.conn_no = 0
        self.frames: list[tuple[float, int, dict[str, Any]]] = []  # (when, conn_no, frame)
        self.positions: dict[str, tuple[str, int]] = {}  # stream -> (epoch, offset) last seen
        self.start_positions: dict[str, tuple[str, int]] = {}  # at the start of the load
        self.connects: list[tuple[float, int, str]] = []  # (when, node, url)
        self.handshakes: list[float] = []  # seconds each successful opening handshake took
        self.drops: list[tuple[float, int | None]] = []  # (when, close code)
        self.failures: list[tuple[float, int, str]] = []  # (when, node, error) of attempts
        self.own: set[int] = set()  # seqs of its own group messages it received
        self.errors = 0  # error replies received
        self.sent: list[Sent] = []
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"{'v2' if self.legacy else 'v3'} {self.group}/{self.name}"

    def url(self, base: str) -> str:
        if self.legacy or not self.positions:
            return base + self.path
        query = ",".join(f"{s}:{epoch}:{offset}" for s, (epoch, offset) in self.positions.items())
        return f"{base}{self.path}?recover={query}"

    async def connect(self, node: int, bases: list[str]) -> bool:
        url, start = self.url(bases[node]), time.monotonic()
        try:
            ws = await websockets.connect(url, open_timeout=5, max_queue=None)
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            self.failures.append((time.monotonic(), node, type(exc).__name__))
            return False
        self.ws, self.node = ws, node
        self.conn_no += 1
        self.connects.append((time.monotonic(), node, url))
        self.handshakes.append(time.monotonic() - start)
        self._changed.set()
        return True

    async def run(self, bases: list[str], rng: random.Random, stop: asyncio.Event) -> None:
        """Read until the socket drops, then reconnect (other node first), until ``stop``."""
        while (ws := self.ws) is not None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for data in ws:
                    self._record(json.loads(data))
            self.ws = None
            self._changed.set()
            if stop.is_set():
                return
            self.drops.append((time.monotonic(), ws.close_code))
            node = 1 - self.node
            while not stop.is_set():
                await asyncio.sleep(rng.uniform(*BACKOFF))
                if await self.connect(node, bases):
                    break
                node = 1 - node

    def _record(self, frame: dict[str, Any]) -> None:
        self.frames.append((time.monotonic(), self.conn_no, frame))
        if "offset" in frame:
            self.positions[STREAM_OF_TARGET[frame["target"]]] = (frame["epoch"], frame["offset"])
        stamp = load_stamp(frame)
        if stamp is not None and stamp[1] == self.name:
            self.own.add(stamp[2])
        self.errors += is_error(frame)
        self._changed.set()

    async def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True

    def group_frame(self, seq: int) -> dict[str, Any]:
        stamp = {"pub": self.name, "seq": seq}
        if self.legacy:
            return {"type": "msg", "msg": "load", "data": stamp}
        return {"msg_type": "msg", "target": "group", "payload": stamp}

    async def publish(self, until: float) -> None:
        """Group messages, one at a time: each waits for its own copy or its socket's end."""
        period, next_at, seq = 1 / GROUP_RATE, time.monotonic(), 0
        while time.monotonic() < until:
            ws = self.ws
            if ws is None:
                await self.wait_for(lambda: self.ws is not None, 1.0)
                continue
            seq += 1
            try:
                await ws.send(json.dumps(self.group_frame(seq)))
            except websockets.ConnectionClosed:
                seq -= 1  # never sent
                await self.wait_for(self._answered(None, ws, self.errors), 1.0)  # the drop
                continue
            sent = Sent(self.name, seq, "group", self.group, time.monotonic(), "timeout")
            self.sent.append(sent)
            errors = self.errors
            if await self.wait_for(self._answered(seq, ws, errors), OWN_COPY_TIMEOUT):
                sent.outcome = (
                    "echoed"
                    if seq in self.own
                    else "refused"
                    if self.errors > errors
                    else "dropped"
                )
            next_at = max(next_at + period, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())

    def _answered(self, seq: int | None, ws: ClientConnection, errors: int) -> Callable[[], bool]:
        """Whether its own copy of ``seq`` or an error reply came, or ``ws`` is gone."""
        return lambda: seq in self.own or self.errors > errors or self.ws is not ws


def make_clients() -> list[RollingClient]:
    """Rows of one client per group, the rows on A and B in turn; V3 and legacy at random."""
    kinds = [False] * V3_CLIENTS + [True] * V2_CLIENTS
    random.Random(7).shuffle(kinds)
    return [
        RollingClient(
            f"{'old' if legacy else 'new'}-{i:03d}",
            GROUPS[i % len(GROUPS)],
            legacy,
            node=row(i) % 2,
        )
        for i, legacy in enumerate(kinds)
    ]


def row(index: int) -> int:
    return index // len(GROUPS)


class Api:
    """POST /v3/messages to the node a load balancer would pick: never the one stopping."""

    def __init__(self, http: httpx.AsyncClient, nodes: list[NodeProcess]) -> None:
        self.http = http
        self.nodes = nodes
        self.target = 0
        self.sent: list[Sent] = []

    async def post(self, body: dict[str, Any]) -> tuple[bool, str]:
        try:
            response = await self.http.post(
                f"{self.nodes[self.target].http}/v3/messages", json=body
            )
        except httpx.HTTPError as exc:
            return False, repr(exc)
        return response.status_code == 202, response.text

    async def publish(
        self, pub: str, rate: float, until: float, address: Callable[[int], tuple[str, str]]
    ) -> None:
        """Sequential posts at ``rate``; ``address(seq)`` is (stream, client or "")."""
        period, next_at, seq = 1 / rate, time.monotonic(), 0
        while time.monotonic() < until:
            seq += 1
            stream, to = address(seq)
            body: dict[str, Any] = {
                "msg_type": "msg",
                "target": "direct" if stream == "client" else "broadcast",
                "payload": {"pub": pub, "seq": seq},
            }
            if to:
                body["to_id"] = to
            at = time.monotonic()
            ok, _ = await self.post(body)
            self.sent.append(Sent(pub, seq, stream, to, at, "accepted" if ok else "failed"))
            next_at = max(next_at + period, time.monotonic())
            await asyncio.sleep(next_at - time.monotonic())


async def warm_up(api: Api, clients: list[RollingClient]) -> None:
    """Every client receives one message of each of its streams, so V3 clients know where
    they stand in each; legacy clients need nothing but are served the same."""
    bodies: list[dict[str, Any]] = [{"msg_type": "msg", "target": "broadcast", "msg": WARM_UP}]
    bodies += [
        {"msg_type": "msg", "target": "group", "group_id": g, "msg": WARM_UP} for g in GROUPS
    ]
    bodies += [
        {"msg_type": "msg", "target": "direct", "to_id": c.name, "msg": WARM_UP} for c in clients
    ]
    for body in bodies:
        ok, detail = await api.post(body)
        assert ok, detail

    def warm(client: RollingClient) -> bool:
        return sum(frame.get("msg") == WARM_UP for _, _, frame in client.frames) == 3

    await eventually(lambda: all(warm(c) for c in clients), 10.0)
    assert all(len(c.positions) == 3 for c in clients if not c.legacy)


async def first_time(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """When ``check`` first held, polled without blocking the clients' event loop."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.02)
    return time.monotonic()


async def exit_time(node: NodeProcess, timeout: float = 10.0) -> float:
    async def exited() -> bool:
        return node.proc.poll() is not None

    return await first_time(exited, timeout, f"the exit of the node on port {node.port}")


async def ready_time(http: httpx.AsyncClient, node: NodeProcess, timeout: float = 20.0) -> float:
    async def ready() -> bool:
        assert node.proc.poll() is None, node.log.read_text()
        try:
            return (await http.get(f"{node.http}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    return await first_time(ready, timeout, f"/readyz of the node on port {node.port}")


@dataclass
class Restart:
    node: str
    stopped: float
    exited: float
    ready: float
    reconnects: list[tuple[float, float]]  # (1012, next open socket) of each client dropped

    @property
    def delays(self) -> list[float]:
        return [back - dropped for dropped, back in self.reconnects]

    @property
    def all_back(self) -> float:
        return max(back for _, back in self.reconnects)


def reconnects(clients: Iterable[RollingClient], since: float) -> list[tuple[float, float]]:
    """(when it dropped, when it had a socket again) of each client dropped after ``since``."""
    found = []
    for c in clients:
        dropped = next((t for t, _ in c.drops if t >= since), None)
        if dropped is not None:
            found.append((dropped, min(t for t, _, _ in c.connects if t >= dropped)))
    return found


@dataclass
class Findings:
    """What the clients received against what was published to their streams."""

    deliveries: int = 0  # (client, message) pairs checked
    missing: list[str] = field(default_factory=list)
    v3_duplicates: list[str] = field(default_factory=list)
    legacy_duplicates: int = 0
    out_of_order: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    offset_breaks: list[str] = field(default_factory=list)
    resyncs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    legacy_positions: list[str] = field(default_factory=list)


def received(client: RollingClient) -> list[Key]:
    """(publisher, seq) of every load message the client received, in order."""
    stamps = (load_stamp(frame) for _, _, frame in client.frames)
    return [(pub, seq) for _, pub, seq in filter(None, stamps)]


def check(clients: list[RollingClient], published: dict[Key, Sent], t0: float) -> Findings:
    found = Findings()
    by_stream: dict[str, dict[Key, Sent]] = defaultdict(dict)
    for key, s in published.items():
        by_stream[s.stream if s.stream != "group" else s.to][key] = s
    for c in clients:
        expected = {
            *by_stream["broadcast"],
            *by_stream[c.group],
            *(k for k, s in by_stream["client"].items() if s.to == c.name),
        }
        found.deliveries += len(expected)
        got = received(c)
        counts = Counter(got)
        for key in sorted(expected - counts.keys()):
            found.missing.append(evidence(c, published[key], t0))
        found.unexpected += [f"{c!r} got {key}" for key in counts.keys() - expected]
        twice = {key: n for key, n in counts.items() if n > 1}
        if c.legacy:
            found.legacy_duplicates += sum(n - 1 for n in twice.values())
        else:
            found.v3_duplicates += [f"{c!r} got {key} {n} times" for key, n in twice.items()]
        seqs: dict[str, list[int]] = defaultdict(list)
        for pub, seq in dict.fromkeys(got) if c.legacy else got:  # legacy: first copies
            seqs[pub].append(seq)
        found.out_of_order += [
            f"{c!r} got {pub}'s messages in the order {order}"
            for pub, order in seqs.items()
            if any(b <= a for a, b in itertools.pairwise(order))
        ]
        found.resyncs += [f"{c!r} at {at - t0:.2f}s: {f}" for at, _, f in c.frames if is_resync(f)]
        found.errors += [f"{c!r} at {at - t0:.2f}s: {f}" for at, _, f in c.frames if is_error(f)]
        if c.legacy:
            found.legacy_positions += [
                f"{c!r}: {f}" for _, _, f in c.frames if "offset" in f or "epoch" in f
            ][:1]
        else:
            found.offset_breaks += offset_breaks(c, t0)
    return found


def offset_breaks(client: RollingClient, t0: float) -> list[str]:
    """Each stream of a V3 client, from where it stood when the load began: +1 each time."""
    last = dict(client.start_positions)
    breaks = []
    for at, conn_no, frame in client.frames:
        if "offset" not in frame or at < t0:
            continue
        stream = STREAM_OF_TARGET[frame["target"]]
        position = (frame["epoch"], frame["offset"])
        before = last.get(stream)
        if before is not None and position != (before[0], before[1] + 1):
            breaks.append(
                f"{client!r} {stream}: {before} then {position} at {at - t0:.2f}s "
                f"(connection {conn_no})"
            )
        last[stream] = position
    return breaks


def evidence(client: RollingClient, sent: Sent, t0: float) -> str:
    connects = [(round(t - t0, 2), "AB"[node], url) for t, node, url in client.connects]
    drops = [(round(t - t0, 2), code) for t, code in client.drops]
    failures = [(round(t - t0, 2), "AB"[node], e) for t, node, e in client.failures]
    resyncs = [(round(t - t0, 2), f.get("payload")) for t, _, f in client.frames if is_resync(f)]
    return (
        f"{client!r} missed {sent.pub}#{sent.seq} ({sent.stream}, sent {sent.at - t0:.2f}s, "
        f"{sent.outcome}); its drops {drops}; its connects {connects}; failed attempts {failures}; "
        f"its resyncs {resyncs}"
    )


async def test_rolling_restart_loses_nothing(redis_server: RedisServer, launch: LaunchNode):
    nodes = [launch(redis_server.url, name, **HISTORY_ENV) for name in NODE_IDS]
    started = list(nodes)
    bases = [node.ws for node in nodes]  # restarted nodes keep their ports
    rng = random.Random(1012)
    clients = make_clients()
    opened = await asyncio.gather(*(c.connect(c.node, bases) for c in clients))
    assert all(opened)
    stop = asyncio.Event()
    readers = [asyncio.create_task(c.run(bases, rng, stop)) for c in clients]
    async with httpx.AsyncClient(timeout=5.0) as http:
        api = Api(http, nodes)
        await warm_up(api, clients)
        for c in clients:
            c.start_positions = dict(c.positions)

        t0 = time.monotonic()
        until = t0 + LOAD_SECONDS
        # Two rows in four send group messages: in every group, on both nodes, of both kinds.
        publishers = [c for i, c in enumerate(clients) if row(i) % 4 < 2]

        def direct_to(k: int) -> Callable[[int], tuple[str, str]]:
            return lambda seq: (
                "client",
                clients[(seq * DIRECT_PUBLISHERS + k) % len(clients)].name,
            )

        load = asyncio.gather(
            *(c.publish(until) for c in publishers),
            *(
                api.publish(f"api-d{k}", DIRECT_RATE, until, direct_to(k))
                for k in range(DIRECT_PUBLISHERS)
            ),
            api.publish("api-bc", BROADCAST_RATE, until, lambda seq: ("broadcast", "")),
        )

        tallies: Counter[str] = Counter()

        async def tally(node: NodeProcess) -> None:
            """Add a node's recovery counters (before it stops, or at the end)."""
            found = await metrics(node.http)
            tallies.update({k: v for k, v in found.items() if k.startswith(RECOVERY_METRICS)})

        async def roll(index: int) -> Restart:
            """SIGTERM one node, restart it on its port, wait until it and every client are
            back. The API goes to the other node first, as a load balancer's would."""
            api.target = 1 - index
            await asyncio.sleep(0.2)  # posts under way to the stopping node complete
            node = nodes[index]
            await tally(node)
            stopped = time.monotonic()
            node.proc.send_signal(signal.SIGTERM)
            exited = await exit_time(node)
            assert node.proc.returncode == -signal.SIGTERM, node.log.read_text()
            nodes[index] = launch(
                redis_server.url, NODE_IDS[index], port=node.port, wait=False, **HISTORY_ENV
            )
            started.append(nodes[index])
            ready = await ready_time(http, nodes[index])
            await eventually(lambda: all(c.ws is not None for c in clients), RECONNECT_BOUND)
            return Restart(
                NODE_IDS[index],
                stopped,
                exited,
                ready,
                reconnects(clients, stopped),
            )

        restarts = []
        for index, at in enumerate(STOP_AT):
            await asyncio.sleep(t0 + at - time.monotonic())
            restarts.append(await roll(index))
        await load
        load_end = time.monotonic()
        await asyncio.sleep(SETTLE)
        for node in nodes:
            await tally(node)
        stop.set()
        for c in clients:
            if c.ws is not None:
                await c.ws.close()
        await asyncio.gather(*readers)

    sent = [s for c in clients for s in c.sent] + api.sent
    seen = {key for c in clients for key in received(c)}
    published = {
        (s.pub, s.seq): s
        for s in sent
        if s.outcome in ("accepted", "echoed") or (s.pub, s.seq) in seen
    }
    unconfirmed = [s for s in sent if (s.pub, s.seq) not in published]
    findings = check(clients, published, t0)
    kinds = Counter(s.stream for s in published.values())
    legacy = [c for c in clients if c.legacy]
    print(
        f"FIGURE rolling restart: {len(clients)} clients ({V3_CLIENTS} V3, {V2_CLIENTS} V2) in "
        f"{len(GROUPS)} groups on 2 nodes; load {load_end - t0:.1f} s, "
        f"{len(published)} messages published ({len(published) / (load_end - t0):.0f}/s: "
        f"{kinds['group']} group, {kinds['client']} direct, {kinds['broadcast']} broadcast), "
        f"{len(unconfirmed)} sent on a closing socket and never published; "
        f"{findings.deliveries} deliveries checked: {len(findings.missing)} missing, "
        f"{len(findings.v3_duplicates)} V3 duplicates, {findings.legacy_duplicates} legacy "
        f"duplicates (over {len(legacy)} legacy clients), {len(findings.out_of_order)} out of "
        f"order, {len(findings.offset_breaks)} offset breaks, {len(findings.resyncs)} resyncs, "
        f"{len(findings.errors)} error replies"
    )
    for r in restarts:
        print(
            f"FIGURE rolling restart: {r.node} SIGTERM at {r.stopped - t0:.2f} s, exited after "
            f"{r.exited - r.stopped:.2f} s, ready again after {r.ready - r.stopped:.2f} s; "
            f"{len(r.reconnects)} clients reconnected {percentile(r.delays, 0.5):.3f} s "
            f"(p50) / {max(r.delays):.3f} s (max) after their 1012, all back "
            f"{r.all_back - r.stopped:.2f} s after SIGTERM"
        )
    handshakes = [h for c in clients for h in c.handshakes[1:]]
    failures = Counter(error for c in clients for _, _, error in c.failures)
    print(
        f"FIGURE rolling restart: opening handshakes of the reconnects "
        f"{percentile(handshakes, 0.5):.3f} s (p50) / {max(handshakes):.3f} s (max) after a "
        f"50-300 ms backoff; failed attempts: {dict(failures) or 'none'}"
    )
    counters = ", ".join(f"{name.removeprefix('aether_')} {n:.0f}" for name, n in tallies.items())
    print(f"FIGURE rolling restart: nodes' recovery counters: {counters}")

    # The promise: nothing missing, in publish order; V3 once each, offsets without a gap,
    # no resync (history covers a clean restart); the legacy shape unchanged.
    assert findings.missing == [], "\n".join(findings.missing[:20])
    assert findings.unexpected == [], findings.unexpected[:20]
    assert findings.out_of_order == [], findings.out_of_order[:20]
    assert findings.v3_duplicates == [], findings.v3_duplicates[:20]
    assert findings.offset_breaks == [], findings.offset_breaks[:20]
    assert findings.resyncs == [], findings.resyncs[:20]
    assert findings.legacy_positions == [], findings.legacy_positions[:5]
    # Nothing refused, nothing vanished unseen: a message no one received was sent on a socket
    # the stopping node closed before its sender's copy came back.
    assert findings.errors == [], findings.errors[:20]
    assert [s for s in unconfirmed if s.outcome != "dropped"] == []
    assert [s for s in api.sent if s.outcome == "failed"] == []
    # Every client was closed with 1012 once per restart of its node, and came back each time.
    drops = {repr(c): [code for _, code in c.drops] for c in clients}
    want = {repr(c): [1012] * (2 - c.first_node) for c in clients}
    assert drops == want, {k: v for k, v in drops.items() if v != want[k]}
    on_a = sum(c.first_node == 0 for c in clients)
    assert [len(r.reconnects) for r in restarts] == [on_a, len(clients)]
    troubles = [n.log for n in started if "Traceback" in n.log.read_text(errors="replace")]
    assert troubles == [], troubles
