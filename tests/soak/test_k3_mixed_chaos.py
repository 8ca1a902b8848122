"""Scenario K3: mixed chaos. Opt-in (``AETHER_SOAK=1``): it runs for minutes.

Two real ``aether-bridge serve`` processes on one throwaway Redis; 200 V3 clients over 8 groups,
split across both nodes, each doing random operations for ``AETHER_SOAK_SECONDS`` (300 by
default): group messages stamped ``(pub, seq)`` as in the chaos tier, direct messages stamped
``(dpub, dseq)``, heartbeats, presence requests, clean close and reconnect (to a random node),
and now and then an abrupt close (the client's TCP transport aborted, no close frame). At about
1/3 of the run Redis is killed (-9) and restarted on its port 2 s later (F1); at about 2/3 the
nodes' subscriber connections are killed server-side (F4, ``CLIENT KILL TYPE pubsub``).

At the end: no unhandled exception in either node's log; the delivery invariants (per-publisher
order, no duplicates, nothing outside its group or to the wrong client, every message missing
at a receiver that was connected across it covered by a resync notice, and nothing missing at
all outside the declared fault windows); then, once every client has closed, K2's leak checks
(presence empty, only the nodes' own channels subscribed, RSS growth and fds bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets

from ..chaos.conftest import TTL, LaunchNode
from ..chaos.traffic import OUTCOME_TIMEOUT, Member, Outcome, ReadyWatch, open_fds, rss_kib
from ..conftest import NodeProcess
from ..helpers import eventually, metrics, presence
from ..support.redis_server import RedisServer

DURATION = float(os.environ.get("AETHER_SOAK_SECONDS", "300"))

pytestmark = [
    pytest.mark.soak,
    pytest.mark.skipif(
        os.environ.get("AETHER_SOAK") != "1", reason="soak test: set AETHER_SOAK=1 to run it"
    ),
    pytest.mark.timeout(DURATION + 300),
]

CLIENTS = 200
GROUPS = [f"k3g{i}" for i in range(8)]  # 25 clients each
PAUSE = (1.0, 3.0)  # seconds between one client's operations (about 100 operations/s in all)
# Weights of the random operations.
OPS = {
    "group": 40,
    "direct": 15,
    "heartbeat": 15,
    "presence": 10,
    "churn": 4,  # clean close, reconnect to a random node
    "kill": 1,  # abort the TCP transport (no close frame), reconnect
}
DIRECT_WAIT = 1.5  # a direct message has no receipt: wait this long for an error reply
MARGIN = 1.0  # a receiver counts for a message sent this long inside its open interval
F1_DOWN = 2.0  # seconds Redis stays dead
# Bounds of the leak checks (K2's, loosened for a run with faults and 200 clients).
RSS_BOUND_MIB = 20.0
FDS_SLACK = 10  # over the node's own fds with 200 clients on (its Redis pools have grown by then)
# Node log lines that count as an unhandled exception (warnings are checked separately).
UNHANDLED = ("ERROR:", "CRITICAL:", "Traceback", "Exception", "exception")


def figure(text: str) -> None:
    print(f"FIGURE K3 {text}")


@dataclass
class Session:
    """One socket of one client, from its handshake to its close."""

    name: str  # the publisher name stamped in its messages: client id and session number
    client: str
    group: str
    node: str
    member: Member
    opened: float
    closing_at: float | None = None  # when the test closed or aborted it
    closed_by_test: str = ""  # "close", "kill", or "" (still open, or closed by the node)
    group_sent: list[Outcome] = field(default_factory=list)
    direct_sent: list[tuple[Outcome, str]] = field(default_factory=list)  # (outcome, to_id)
    presence_replies: list[tuple[float, float, list[str] | None]] = field(default_factory=list)

    @property
    def end(self) -> float:
        """Until when the session counts as a receiver."""
        ends = [t for t in (self.closing_at, self.member.closed_at) if t is not None]
        return min(ends, default=float("inf"))


class Client:
    """One frontend: a client id in a group, a socket at a time, random operations."""

    def __init__(self, index: int, nodes: dict[str, str], rng: random.Random) -> None:
        self.client = f"c{index:03d}"
        self.group = GROUPS[index % len(GROUPS)]
        self.nodes = nodes
        self.rng = rng
        self.first_node = "AB"[index % 2]
        self.sessions: list[Session] = []
        self.current: Session | None = None
        self.ops: Counter[str] = Counter()
        self.connect_failures: list[tuple[float, str]] = []
        self.seq = 0

    async def connect(self, node: str) -> bool:
        url = f"{self.nodes[node]}/v3/ws/group/{self.group}/client/{self.client}"
        try:
            ws = await websockets.connect(url, open_timeout=5, max_queue=None)
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            self.connect_failures.append((time.monotonic(), type(exc).__name__))
            return False
        name = f"{self.client}.{len(self.sessions)}"
        session = Session(name, self.client, self.group, node, Member(name, ws), time.monotonic())
        self.sessions.append(session)
        self.current = session
        return True

    async def run(self, until: float, directory: list[str]) -> None:
        backoff = 0.5
        while time.monotonic() < until:
            session = self.current
            if session is None or session.member.closed_at is not None:
                self.current = None
                if not await self.connect(self.rng.choice("AB")):
                    await asyncio.sleep(backoff * self.rng.uniform(1, 2))
                    backoff = min(backoff * 2, 4.0)
                    continue
                backoff = 0.5
                self.ops["connect"] += 1
                session = self.current
                assert session is not None
            op = self.rng.choices(list(OPS), weights=list(OPS.values()))[0]
            self.ops[op] += 1
            with contextlib.suppress(websockets.ConnectionClosed):
                await self.do(op, session, directory)
            await asyncio.sleep(self.rng.uniform(*PAUSE))

    async def do(self, op: str, session: Session, directory: list[str]) -> None:
        member = session.member
        start, sent = len(member.frames), time.monotonic()
        if op == "group":
            self.seq += 1
            seq = self.seq
            payload = {"pub": session.name, "seq": seq}
            await member.ws.send(
                json.dumps({"msg_type": "msg", "target": "group", "payload": payload})
            )

            def answer(f: dict[str, Any]) -> bool:
                p = f.get("payload") or {}
                mine = p.get("pub") == session.name and p.get("seq") == seq
                return f.get("msg_type") == "error" or mine

            found = await member.wait_frame(answer, start, OUTCOME_TIMEOUT)
            kind = "unknown" if found is None else found[1]["msg_type"]
            kind = "ok" if kind == "msg" else kind
            if found is None and member.closed_at is not None:
                kind = "closed"  # the node closed the socket (a 1013 at connect): not published
            session.group_sent.append(Outcome(seq, sent, kind, time.monotonic()))
        elif op == "direct":
            self.seq += 1
            to_id = self.rng.choice(directory)
            payload = {"dpub": session.name, "dseq": self.seq}
            frame = {"msg_type": "msg", "target": "direct", "to_id": to_id, "payload": payload}
            await member.ws.send(json.dumps(frame))
            is_error: Callable[[dict[str, Any]], bool] = lambda f: f.get("msg_type") == "error"  # noqa: E731
            found = await member.wait_frame(is_error, start, DIRECT_WAIT)
            kind = "ok" if found is None else "error"
            if found is None and member.closed_at is not None:
                kind = "closed"
            session.direct_sent.append((Outcome(self.seq, sent, kind, time.monotonic()), to_id))
        elif op == "heartbeat":
            await member.ws.send(json.dumps({"msg_type": "heartbeat", "target": "echo"}))
            await member.wait_frame(
                lambda f: f.get("msg_type") in ("heartbeat", "error"), start, OUTCOME_TIMEOUT
            )
        elif op == "presence":
            await member.ws.send(json.dumps({"msg_type": "presence", "target": "echo"}))
            found = await member.wait_frame(
                lambda f: (
                    f.get("msg_type") == "error"
                    or (f.get("msg_type") == "presence" and f.get("target") == "echo")
                ),
                start,
                OUTCOME_TIMEOUT,
            )
            clients = None
            if found is not None and found[1]["msg_type"] == "presence":
                clients = list(found[1]["payload"]["clients"])
            session.presence_replies.append((sent, time.monotonic(), clients))
        elif op == "churn":
            session.closing_at, session.closed_by_test = time.monotonic(), "close"
            await member.aclose()
            self.current = None
        elif op == "kill":
            session.closing_at, session.closed_by_test = time.monotonic(), "kill"
            member.ws.transport.abort()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(member._task), 5)
            self.current = None

    async def aclose(self) -> None:
        session = self.current
        if session is not None and session.member.closed_at is None:
            session.closing_at, session.closed_by_test = time.monotonic(), "close"
            await session.member.aclose()


@dataclass
class Fault:
    name: str
    start: float
    end: float = 0.0  # the declared window: from the injection to 1 s after recovery


@dataclass
class Delivery:
    expected: int = 0
    delivered: int = 0
    lost_announced: int = 0
    lost_silently: list[str] = field(default_factory=list)
    lost_outside_faults: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)


def in_fault(t: float, faults: list[Fault]) -> bool:
    return any(f.start <= t <= f.end for f in faults)


def received(
    session: Session,
) -> tuple[dict[str, list[tuple[int, int]]], dict[str, list[tuple[int, int]]], list[int]]:
    """Per sender: (frame index, seq) of its group and its direct messages; resync indices."""
    group: dict[str, list[tuple[int, int]]] = {}
    direct: dict[str, list[tuple[int, int]]] = {}
    resyncs = [i for i, _, _ in session.member.resyncs()]
    for index, (_, frame) in enumerate(session.member.frames):
        payload = frame.get("payload") or {}
        if frame.get("msg_type") != "msg":
            continue
        if "seq" in payload:
            group.setdefault(payload["pub"], []).append((index, payload["seq"]))
        elif "dseq" in payload:
            direct.setdefault(payload["dpub"], []).append((index, payload["dseq"]))
    return group, direct, resyncs


def check_stream(
    report: Delivery,
    sender: Session,
    receiver: Session,
    outcomes: list[Outcome],
    got: list[tuple[int, int]],
    resyncs: list[int],
    faults: list[Fault],
) -> None:
    """check_delivery's rule for one sender and one receiver, counting only the messages sent
    while the receiver's socket was open (with MARGIN on each side)."""
    where = f"{sender.name}->{receiver.name}"
    seqs = [s for _, s in got]
    if len(set(seqs)) != len(seqs):
        report.duplicates.append(where)
    published = [o for o in outcomes if o.kind not in ("error", "closed")]
    sent = {o.seq for o in published}
    ordered = [s for s in seqs if s in sent]
    if ordered != sorted(ordered):
        report.out_of_order.append(where)
    index_of = {s: i for i, s in got}
    for o in published:
        if not (receiver.opened <= o.sent and o.answered + MARGIN <= receiver.end):
            continue
        report.expected += 1
        if o.seq in index_of:
            report.delivered += 1
            continue
        before = max((i for i, s in got if s < o.seq), default=-1)
        after = min((i for i, s in got if s > o.seq), default=len(receiver.member.frames))
        label = f"{where}#{o.seq}"
        if any(before < r < after for r in resyncs):
            report.lost_announced += 1
        else:
            resync_times = [round(at, 2) for _, at, _ in receiver.member.resyncs()]
            report.lost_silently.append(
                f"{label} ({o.kind}, sent {o.sent:.2f}, answered {o.answered:.2f}; receiver on "
                f"{receiver.node} open {receiver.opened:.2f}-{receiver.end:.2f}, resyncs at "
                f"{resync_times}; sender on {sender.node})"
            )
        if not in_fault(o.sent, faults) and not in_fault(o.answered, faults):
            report.lost_outside_faults.append(label)


def check_all(sessions: list[Session], faults: list[Fault]) -> tuple[Delivery, Delivery]:
    """(group messages, direct messages) over every pair of sessions that could meet."""
    groups, directs = Delivery(), Delivery()
    by_name = {s.name: s for s in sessions}
    by_group: dict[str, list[Session]] = {}
    by_client: dict[str, list[Session]] = {}
    for s in sessions:
        by_group.setdefault(s.group, []).append(s)
        by_client.setdefault(s.client, []).append(s)
    seen = {s.name: received(s) for s in sessions}
    for receiver in sessions:
        got_group, got_direct, _ = seen[receiver.name]
        for pub in got_group:
            if pub not in by_name or by_name[pub].group != receiver.group:
                groups.foreign.append(f"{pub}->{receiver.name}")
        for pub in got_direct:
            if pub not in by_name:
                directs.foreign.append(f"{pub}->{receiver.name}")
        for _, frame in receiver.member.frames:
            if frame.get("msg_type") == "msg" and frame.get("target") == "group":
                if frame.get("group_id") != receiver.group:
                    groups.foreign.append(f"group_id {frame.get('group_id')}->{receiver.name}")
            if frame.get("msg_type") == "msg" and frame.get("target") == "direct":
                if frame.get("to_id") != receiver.client:
                    directs.foreign.append(f"to_id {frame.get('to_id')}->{receiver.name}")
    for sender in sessions:
        for receiver in by_group[sender.group]:
            got_group, _, resyncs = seen[receiver.name]
            got = got_group.get(sender.name, [])
            check_stream(groups, sender, receiver, sender.group_sent, got, resyncs, faults)
        targets = {to for _, to in sender.direct_sent}
        for to_id in targets:
            outcomes = [o for o, to in sender.direct_sent if to == to_id]
            for receiver in by_client.get(to_id, []):
                if receiver.name == sender.name:
                    continue  # a direct message to oneself reaches one's other sockets only
                _, got_direct, resyncs = seen[receiver.name]
                got = got_direct.get(sender.name, [])
                check_stream(directs, sender, receiver, outcomes, got, resyncs, faults)
    return groups, directs


def log_lines(node: NodeProcess, start: int = 0, end: int | None = None) -> list[str]:
    data = node.log.read_bytes()[start:end]
    return data.decode(errors="replace").splitlines()


def log_size(node: NodeProcess) -> int:
    return node.log.stat().st_size


async def test_k3_mixed_chaos(redis_server: RedisServer, launch: LaunchNode, prefix: str) -> None:
    a = launch(redis_server.url, "nodeA")
    b = launch(redis_server.url, "nodeB")
    nodes = {"A": a, "B": b}
    bases = {"A": a.ws, "B": b.ws}
    fds_fresh = {n: open_fds(p.pid) for n, p in nodes.items()}
    rng = random.Random(int(os.environ.get("AETHER_SOAK_SEED", "3")))
    clients = [Client(i, bases, random.Random(rng.random())) for i in range(CLIENTS)]
    directory = [c.client for c in clients]
    opened = await asyncio.gather(*(c.connect(c.first_node) for c in clients))
    assert all(opened), [c.connect_failures for c in clients if c.connect_failures]
    await asyncio.sleep(2.0)
    rss0 = {n: rss_kib(p.pid) for n, p in nodes.items()}
    fds0 = {n: open_fds(p.pid) for n, p in nodes.items()}
    conns0 = {n: int((await metrics(p.http))["aether_connections"]) for n, p in nodes.items()}
    own0 = {n: fds0[n] - conns0[n] for n in nodes}  # the node's own: all but client sockets
    log0 = {n: log_size(p) for n, p in nodes.items()}

    faults: list[Fault] = []
    spans: dict[str, dict[str, tuple[int, int]]] = {}  # fault -> node -> log byte span
    resyncs_per_fault: dict[str, int] = {}
    redis = redis_server.client()
    start = time.monotonic()
    until = start + DURATION
    async with ReadyWatch({"A": a.http, "B": b.http}) as watch:
        tasks = [asyncio.create_task(c.run(until, directory)) for c in clients]

        # F1 at 1/3: kill -9 Redis, restart it on its port 2 s later.
        await asyncio.sleep(max(0.0, start + DURATION / 3 - time.monotonic()))
        logs = {n: log_size(p) for n, p in nodes.items()}
        redis_server.kill()
        f1 = Fault("F1", time.monotonic())
        await asyncio.sleep(F1_DOWN)
        await redis_server.start_async()
        restarted = time.monotonic()
        await eventually(lambda: ready_again(watch, restarted), 15.0)
        healthy = watch.healthy_since(restarted)
        assert healthy is not None
        f1.end = healthy + 1.0
        faults.append(f1)
        await asyncio.sleep(max(0.0, f1.end + 1.0 - time.monotonic()))
        spans["F1"] = {n: (logs[n], log_size(p)) for n, p in nodes.items()}
        figure(
            f"F1 Redis down {restarted - f1.start:.2f} s, both nodes ready "
            f"{healthy - restarted:.2f} s after the restart"
        )

        # F4 at 2/3: the subscriber connections killed server-side.
        await asyncio.sleep(max(0.0, start + 2 * DURATION / 3 - time.monotonic()))
        logs = {n: log_size(p) for n, p in nodes.items()}
        killed = await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        f4 = Fault("F4", time.monotonic())
        await asyncio.sleep(3.0)
        everyone = [s for c in clients for s in c.sessions]
        after = [at for s in everyone for _, at, _ in s.member.resyncs() if at >= f4.start]
        f4.end = max(after, default=f4.start + 5.0) + 1.0
        faults.append(f4)
        await asyncio.sleep(max(0.0, f4.end + 1.0 - time.monotonic()))
        spans["F4"] = {n: (logs[n], log_size(p)) for n, p in nodes.items()}
        figure(
            f"F4 CLIENT KILL TYPE pubsub killed {killed} connections; last resync "
            f"{f4.end - 1.0 - f4.start:.2f} s after"
        )

        await asyncio.gather(*tasks)
        ran = time.monotonic() - start
        await asyncio.sleep(1.5)  # the last messages land
        await asyncio.gather(*(c.aclose() for c in clients))
    await redis.aclose()
    sessions = [s for c in clients for s in c.sessions]
    print(
        f"K3 start {start:.2f}; fault windows "
        + ", ".join(f"{f.name} {f.start:.2f}-{f.end:.2f}" for f in faults)
    )

    # --- Figures -------------------------------------------------------------------------
    ops = sum((c.ops for c in clients), Counter())
    figure(
        f"ran {ran:.1f} s, {CLIENTS} clients over {len(GROUPS)} groups, "
        f"{len(sessions)} sockets in all"
    )
    figure(f"ops by kind {dict(sorted(ops.items()))}, total {sum(ops.values())}")
    group_out = Counter(o.kind for s in sessions for o in s.group_sent)
    direct_out = Counter(o.kind for s in sessions for o, _ in s.direct_sent)
    figure(f"group messages sent: {dict(group_out)}; direct messages sent: {dict(direct_out)}")
    for fault in faults:
        n = sum(
            1 for s in sessions for _, at, _ in s.member.resyncs() if fault.start <= at <= fault.end
        )
        resyncs_per_fault[fault.name] = n
    reasons = Counter(f["payload"]["reason"] for s in sessions for _, _, f in s.member.resyncs())
    figure(f"resync notices per fault {resyncs_per_fault}, by reason {dict(reasons)}")
    groups_report, directs_report = check_all(sessions, faults)
    for label, r in (("group", groups_report), ("direct", directs_report)):
        figure(
            f"{label} deliveries expected {r.expected}, delivered {r.delivered}, missing and "
            f"covered by a resync {r.lost_announced}, missing silently {len(r.lost_silently)}, "
            f"missing outside the fault windows {len(r.lost_outside_faults)}, duplicates "
            f"{len(r.duplicates)}, out of order {len(r.out_of_order)}, foreign {len(r.foreign)}"
        )

    # Sessions open across a whole fault window: each must have a resync notice in it.
    unannounced = {
        f.name: [
            s.name
            for s in sessions
            if s.opened < f.start
            and s.end > f.end + 0.5
            and not any(f.start <= at <= f.end for _, at, _ in s.member.resyncs())
        ]
        for f in faults
    }
    # Closes the test did not ask for. By design a socket opened while a node's subscriber is
    # not live (Redis down, or its subscriber reconnecting after F4) is accepted and closed with
    # 1013 at once ("retry with backoff"); any other close fails the row.
    unasked = [s for s in sessions if s.member.closed_at is not None and not s.closed_by_test]
    refused = {
        f.name: [
            s.name
            for s in unasked
            if s.member.close_code == 1013
            and f.start - 0.5 <= s.opened <= f.end
            and (s.member.closed_at or 0) - s.opened <= 1.0
        ]
        for f in faults
    }
    refused_names = {name for names in refused.values() for name in names}
    other_closes = [
        (s.name, s.member.close_code, round(s.opened - start, 2))
        for s in unasked
        if s.name not in refused_names
    ]
    failures = Counter(kind for c in clients for _, kind in c.connect_failures)
    figure(
        f"sockets accepted then closed 1013 during a fault "
        f"{ {k: len(v) for k, v in refused.items()} }; other closes not asked for "
        f"{len(other_closes)}; failed handshakes {dict(failures)}"
    )
    # Presence replies outside the fault windows list the asker.
    lonely = [
        s.name
        for s in sessions
        for sent, answered, clients_seen in s.presence_replies
        if clients_seen is not None
        and not in_fault(sent, faults)
        and not in_fault(answered, faults)
        and s.client not in clients_seen
    ]
    presence_errors = sum(
        1
        for s in sessions
        for sent, _, c in s.presence_replies
        if c is None and not in_fault(sent, faults)
    )

    # --- Logs ----------------------------------------------------------------------------
    unhandled = {
        n: [line for line in log_lines(p) if any(w in line for w in UNHANDLED)]
        for n, p in nodes.items()
    }
    warnings_in: dict[str, Counter[str]] = {}
    warnings_outside: dict[str, list[str]] = {}
    for name, p in nodes.items():
        lines = log_lines(p, log0[name])
        in_windows = [
            line
            for span in spans.values()
            for line in log_lines(p, *span[name])
            if line.startswith("WARNING:")
        ]
        warnings_in[name] = Counter(" ".join(line.split()[1:5]) for line in in_windows)
        every = [line for line in lines if line.startswith("WARNING:")]
        remaining = Counter(every) - Counter(in_windows)
        warnings_outside[name] = list(remaining.elements())
    figure(
        f"log lines: unhandled { {n: len(v) for n, v in unhandled.items()} }; warnings in the "
        f"fault windows { {n: dict(c) for n, c in warnings_in.items()} }; warnings outside "
        f"them { {n: len(v) for n, v in warnings_outside.items()} }"
    )

    # --- Leaks, once every client has closed -------------------------------------------------
    async def presence_empty() -> bool:
        found = await asyncio.gather(*(presence(a.http, g) for g in GROUPS))
        return all(m == [] for m in found)

    with contextlib.suppress(AssertionError):
        await eventually(presence_empty, TTL + TTL / 3 + 3.0)
    members = {g: await presence(b.http, g) for g in GROUPS}
    await asyncio.sleep(1.0)
    rss1 = {n: rss_kib(p.pid) for n, p in nodes.items()}
    fds1 = {n: open_fds(p.pid) for n, p in nodes.items()}
    client = redis_server.client()
    channels = sorted(await client.pubsub_channels(f"{prefix}*"))
    await client.aclose()
    conns = {n: (await metrics(p.http))["aether_connections"] for n, p in nodes.items()}
    growth = {n: (rss1[n] - rss0[n]) / 1024 for n in nodes}
    figure(
        "RSS MiB start -> end: "
        + ", ".join(
            f"{n} {rss0[n] / 1024:.1f} -> {rss1[n] / 1024:.1f} ({growth[n]:+.2f})" for n in nodes
        )
    )
    figure(
        "open fds fresh / with the first 200 clients (of which its own) / at the end: "
        + ", ".join(f"{n} {fds_fresh[n]} / {fds0[n]} ({own0[n]}) / {fds1[n]}" for n in nodes)
    )
    figure(f"after the close: presence {members}, channels {channels}, connections {conns}")

    # --- Assertions ------------------------------------------------------------------------
    assert unhandled == {"A": [], "B": []}, unhandled
    assert warnings_outside == {"A": [], "B": []}, warnings_outside
    assert other_closes == [], other_closes
    assert failures.get("InvalidStatus", 0) == 0, failures
    for r in (groups_report, directs_report):
        assert r.foreign == [], r.foreign[:20]
        assert r.duplicates == [] and r.out_of_order == [], (r.duplicates[:20], r.out_of_order[:20])
        assert r.lost_silently == [], r.lost_silently[:20]
        assert r.lost_outside_faults == [], r.lost_outside_faults[:20]
    assert groups_report.expected > 0 and directs_report.expected > 0
    assert killed == 2
    assert unannounced == {"F1": [], "F4": []}, unannounced
    assert all(resyncs_per_fault.values()), resyncs_per_fault
    assert lonely == [], lonely[:20]
    assert presence_errors == 0
    assert all(m == [] for m in members.values()), members
    assert channels == [f"{prefix}n:nodeA", f"{prefix}n:nodeB"]
    assert conns == {"A": 0, "B": 0}
    assert all(g <= RSS_BOUND_MIB for g in growth.values()), growth
    assert all(fds1[n] <= own0[n] + FDS_SLACK for n in nodes), (own0, fds1)


async def ready_again(watch: ReadyWatch, after: float) -> bool:
    return watch.healthy_since(after) is not None
