"""``python -m bench.cluster_pubsub``: classic against sharded pub/sub on one Redis Cluster.

Starts a throwaway Redis Cluster of three masters (no replicas, no persistence, loopback, free
ports; CLUSTER ADDSLOTS and CLUSTER MEET, no redis-cli), then runs rounds that alternate
the node setting ``AETHER_CLUSTER_PUBSUB`` (``classic``, ``sharded``, ``classic``, ... for
``--repeat``). Each round starts two real ``aether-bridge serve`` processes on the cluster with a
fresh ``AETHER_CHANNEL_PREFIX``, as shipped otherwise (history on, 1,000 messages per stream,
unless ``--history-size``) but for ``AETHER_RATE_LIMIT=0`` so one sender may send 250 msg/s.

Where things live (the shard roles are fixed by choosing names from their hash slots):

- shard 0, *traffic*: every group channel (``{prefix}g:<group>``, so its history stream too),
  every group's presence, cursor and hash tag (``<group>``) and every client channel
  (``{prefix}c:<client>``);
- shard 1, *idle, broadcast*: the broadcast channel ``{prefix}b`` (each node subscribes to it
  while it holds a client) and the V2 mode key ``{prefix}v2:mode`` each node reads every second;
- shard 2, *idle*: nothing the nodes name. Classic channels have no slot: with ``classic``, a
  node's one subscriber connection (and its node channel, probed every 5 s with PUBLISH) sits
  on whichever seed it picked at random, so the round lines say where the two landed.

``--groups`` groups of ``--clients`` WebSocket clients, half on each node; one client per group
sends, alternating nodes, ``--messages`` messages in all at ``--rate`` msg/s. Each round has two
windows: *idle* (clients connected, nothing sent, ``messages / rate`` seconds) and *traffic*
(from the first send until every client holds every message of its group, plus 0.2 s). At each
window's edges, per Redis node: ``INFO cpu`` (``used_cpu_sys + used_cpu_user`` and the
``_main_thread`` pair), the process' schedstat (ns, all threads), ``CLUSTER INFO`` message
counters, ``INFO stats`` ``total_net_output_bytes``, and the bytes each node sent on its
cluster-bus sockets (``ss -tinp``, the kernel's ``bytes_sent`` per socket: the bus, which
``total_net_output_bytes`` does not show reliably). Figures are per message published;
the idle window, scaled to the traffic window's length, shows what the shard spends anyway.
Delivery is checked: every client must hold exactly the messages sent to its group, once each.

Run from the repository root with the project's venv: ``.venv/bin/python -m bench.cluster_pubsub``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis
from redis.crc import key_slot

from bench import procs, revision
from bench.dialects import BODY, V3
from bench.wsclient import BenchConnection
from tests.support.redis_cluster import RedisCluster, redis_cluster

ROOT = Path(__file__).resolve().parents[1]
MASTERS = 3
TRAFFIC, BROADCAST, EMPTY = 0, 1, 2  # shard indexes and what they hold (module docstring)
ROLES = {
    TRAFFIC: "traffic: groups, clients, history, presence",
    BROADCAST: "idle: broadcast channel, V2 mode key",
    EMPTY: "idle: nothing named",
}
MODES = ("classic", "sharded")
BUS_FIELDS = (
    "cluster_stats_messages_sent",
    "cluster_stats_messages_received",
    "cluster_stats_messages_publish_sent",
    "cluster_stats_messages_publish_received",
    "cluster_stats_messages_publishshard_sent",
    "cluster_stats_messages_publishshard_received",
)
TIMEOUT_S = 30.0


# -- pure parts: names and slots -----------------------------------------------------------


def shard_of(key: str, ranges: Sequence[range]) -> int:
    """Index of the master whose range holds ``key``'s slot (hash tags honoured)."""
    slot = key_slot(key.encode())
    return next(n for n, slots in enumerate(ranges) if slot in slots)


def pick_prefix(tag: str, ranges: Sequence[range], shard: int) -> str:
    """A channel prefix whose broadcast channel and V2 mode key both live on ``shard``."""
    for n in range(100_000):
        prefix = f"{tag}x{n}:"
        if shard_of(f"{prefix}b", ranges) == shard == shard_of(f"{prefix}v2:mode", ranges):
            return prefix
    raise ValueError("no prefix found")  # not reached: about one in nine fits


def pick_groups(prefix: str, ranges: Sequence[range], shard: int, count: int) -> list[str]:
    """Group IDs whose channel (its history too) and hash tag (presence) are on ``shard``."""
    found: list[str] = []
    n = 0
    while len(found) < count:
        group = f"grp{n}"
        if shard_of(f"{prefix}g:{group}", ranges) == shard == shard_of(group, ranges):
            found.append(group)
        n += 1
    return found


def pick_clients(prefix: str, ranges: Sequence[range], shard: int, count: int) -> list[str]:
    """Client IDs whose client channel is on ``shard``."""
    found: list[str] = []
    n = 0
    while len(found) < count:
        client = f"cli{n}"
        if shard_of(f"{prefix}c:{client}", ranges) == shard:
            found.append(client)
        n += 1
    return found


# -- pure parts: what was measured -----------------------------------------------------------


@dataclass
class Sample:
    """One Redis node at one instant."""

    cpu_s: float  # used_cpu_sys + used_cpu_user
    main_s: float  # the _main_thread pair (nan if absent)
    sched_ns: int  # schedstat of every thread of the process
    bus: dict[str, int]  # CLUSTER INFO counters of BUS_FIELDS (0 if absent)
    net_out: int  # INFO stats total_net_output_bytes
    bus_bytes: int  # bytes sent on its cluster-bus sockets (ss)
    commands: dict[str, int] = field(default_factory=dict)  # INFO commandstats: calls


@dataclass
class Delta:
    """What one Redis node spent in one window."""

    cpu_us: float
    main_us: float
    sched_us: float
    bus: dict[str, int]
    net_out: int
    bus_bytes: int
    commands: dict[str, int] = field(default_factory=dict)

    def scaled(self, factor: float) -> Delta:
        return Delta(
            self.cpu_us * factor,
            self.main_us * factor,
            self.sched_us * factor,
            {k: round(v * factor) for k, v in self.bus.items()},
            round(self.net_out * factor),
            round(self.bus_bytes * factor),
        )


def delta(before: Sample, after: Sample) -> Delta:
    return Delta(
        cpu_us=(after.cpu_s - before.cpu_s) * 1e6,
        main_us=(after.main_s - before.main_s) * 1e6,
        sched_us=(after.sched_ns - before.sched_ns) / 1e3,
        bus={k: after.bus[k] - before.bus[k] for k in BUS_FIELDS},
        net_out=after.net_out - before.net_out,
        bus_bytes=after.bus_bytes - before.bus_bytes,
        commands={
            name: calls - before.commands.get(name, 0)
            for name, calls in after.commands.items()
            if calls != before.commands.get(name, 0)
        },
    )


def parse_info(reply: Any) -> dict[str, str]:
    """INFO or CLUSTER INFO as ``{field: text}``: from the raw ``field:value`` lines, or from
    the dict redis-py parses them into."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    fields = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon and not name.startswith("#"):
            fields[name.strip()] = value.strip()
    return fields


def sample_from(
    info_cpu: Any,
    info_stats: Any,
    cluster_info: Any,
    sched_ns: int,
    bus: int,
    commandstats: dict[str, Any] | None = None,
) -> Sample:
    cpu, stats, cluster = parse_info(info_cpu), parse_info(info_stats), parse_info(cluster_info)
    main = float("nan")
    if "used_cpu_sys_main_thread" in cpu:
        main = float(cpu["used_cpu_sys_main_thread"]) + float(cpu["used_cpu_user_main_thread"])
    return Sample(
        cpu_s=float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
        main_s=main,
        sched_ns=sched_ns,
        bus={k: int(cluster.get(k, 0)) for k in BUS_FIELDS},
        net_out=int(stats["total_net_output_bytes"]),
        bus_bytes=bus,
        commands={
            name.removeprefix("cmdstat_"): int(stats["calls"])
            for name, stats in (commandstats or {}).items()
        },
    )


_PID = re.compile(r"pid=(\d+),")
_SENT = re.compile(r"\bbytes_sent:(\d+)")
_ACKED = re.compile(r"\bbytes_acked:(\d+)")


def bus_bytes_by_pid(ss_output: str) -> dict[int, int]:
    """Bytes sent per process over the sockets ``ss -tinpH`` lists (a socket's line, then its
    indented TCP info line). ``bytes_sent`` where the kernel has it, else ``bytes_acked``."""
    sent: dict[int, int] = {}
    pid: int | None = None
    for line in ss_output.splitlines():
        if line and not line[0].isspace():
            found = _PID.search(line)
            pid = int(found.group(1)) if found else None
            continue
        if pid is None:
            continue
        number = _SENT.search(line) or _ACKED.search(line)
        if number:
            sent[pid] = sent.get(pid, 0) + int(number.group(1))
        pid = None
    return sent


def check_delivery(got: Sequence[int], group: int, groups: int, messages: int) -> list[str]:
    """Problems with what one client received: it must hold each message ``n`` with
    ``n % groups == group`` exactly once (its group's sender sends them in that order)."""
    expected = range(group, messages, groups)
    problems = []
    if len(got) != len(set(got)):
        problems.append(f"{len(got) - len(set(got))} duplicates")
    missing = set(expected) - set(got)
    if missing:
        problems.append(f"{len(missing)} missing (first {min(missing)})")
    if stray := set(got) - set(expected):
        problems.append(f"{len(stray)} from other groups")
    if not problems and list(got) != list(expected):
        moved = sum(1 for a, b in zip(got, expected, strict=True) if a != b)
        problems.append(f"out of send order ({moved} positions differ)")
    return problems


@dataclass
class RoundResult:
    mode: str
    index: int  # 1-based round of this mode
    messages: int
    traffic_s: float  # the traffic window's length
    idle_s: float
    send_s: float  # from the first send to the last
    traffic: list[Delta]  # per shard
    idle: list[Delta]  # per shard, the idle window as measured
    nodes_us: float  # CPU of the two bridge processes in the traffic window
    nodes_idle_us: float
    subscribers: list[int]  # bridge subscriber connections per shard (CLIENT LIST)
    machine_busy: float  # share of both cores busy in the traffic window
    delivered: int = 0
    expected: int = 0
    problems: list[str] = field(default_factory=list)

    def idle_scaled(self, shard: int) -> Delta:
        """The idle window's spend at the traffic window's length."""
        return self.idle[shard].scaled(self.traffic_s / self.idle_s)


def per_message(value: float, messages: int) -> float:
    return value / messages if messages else float("nan")


def _median(values: Sequence[float]) -> float:
    kept = [v for v in values if v == v]
    return statistics.median(kept) if kept else float("nan")


def _fmt(value: float, digits: int = 1) -> str:
    return "–" if value != value else f"{value:,.{digits}f}"


def _per(rounds: Sequence[RoundResult], get: Any) -> float:
    """Median over ``rounds`` of ``get(round)`` per message published."""
    return _median([per_message(get(r), r.messages) for r in rounds])


def report(results: Sequence[RoundResult], header: Sequence[str]) -> str:
    """Markdown: medians per mode × shard, then one line per round."""
    lines = [
        *header,
        "",
        "Redis CPU per message published, µs, median over rounds (*idle*: the idle window, "
        "scaled to the traffic window's length; *net*: traffic minus idle, per round):",
        "",
        "| mode | shard | holds | CPU (INFO) | main thread | schedstat | idle | net |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    by_mode = [(mode, [r for r in results if r.mode == mode]) for mode in MODES]
    for mode, rounds in by_mode:
        for s in range(MASTERS) if rounds else ():
            figures = [
                _per(rounds, lambda r, s=s: r.traffic[s].cpu_us),
                _per(rounds, lambda r, s=s: r.traffic[s].main_us),
                _per(rounds, lambda r, s=s: r.traffic[s].sched_us),
                _per(rounds, lambda r, s=s: r.idle_scaled(s).cpu_us),
                _per(rounds, lambda r, s=s: r.traffic[s].cpu_us - r.idle_scaled(s).cpu_us),
            ]
            lines.append(f"| {mode} | {s} | {ROLES[s]} | " + " | ".join(map(_fmt, figures)) + " |")
    lines += [
        "",
        "Cluster bus per message published, median over rounds (*msgs*: CLUSTER INFO's "
        "`cluster_stats_messages_sent`/`_received`, pings and pongs included; *bytes*: what "
        "the node wrote to its bus sockets, from the kernel's per-socket `bytes_sent`; *net "
        "out*: INFO's `total_net_output_bytes`, what the node wrote to its clients):",
        "",
        "| mode | shard | msgs sent | msgs received | publish sent | publishshard sent "
        "| bytes sent | net out, bytes |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, rounds in by_mode:
        for s in range(MASTERS) if rounds else ():
            counters = [
                _per(rounds, lambda r, s=s, k=k: r.traffic[s].bus[k])
                for k in BUS_FIELDS
                if not k.endswith("publish_received") and not k.endswith("publishshard_received")
            ]
            sizes = [
                _per(rounds, lambda r, s=s: r.traffic[s].bus_bytes),
                _per(rounds, lambda r, s=s: r.traffic[s].net_out),
            ]
            lines.append(
                f"| {mode} | {s} | "
                + " | ".join(_fmt(v, 2) for v in counters)
                + " | "
                + " | ".join(_fmt(v, 0) for v in sizes)
                + " |"
            )
    lines += [
        "",
        "Rounds in the order run (µs per message; *subs*: the bridge nodes' subscriber "
        "connections on shards 0/1/2, from CLIENT LIST; *nodes*: both bridge processes, "
        "traffic window and idle window; *busy*: the machine's two cores, traffic window):",
        "",
        "| round | subs | Redis 0 | Redis 1 | Redis 2 | nodes | nodes idle | sent in | busy "
        "| delivered |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        cpu = [_fmt(per_message(r.traffic[s].cpu_us, r.messages)) for s in range(MASTERS)]
        nodes_idle = r.nodes_idle_us * r.traffic_s / r.idle_s
        status = f"{r.delivered:,}/{r.expected:,}"
        if r.problems:
            status += " — " + "; ".join(dict.fromkeys(r.problems))
        lines.append(
            f"| {r.mode} {r.index} | {'/'.join(map(str, r.subscribers))} | "
            + " | ".join(cpu)
            + f" | {_fmt(per_message(r.nodes_us, r.messages))} "
            f"| {_fmt(per_message(nodes_idle, r.messages))} | {r.send_s:.2f} s "
            f"| {r.machine_busy * 100:.0f} % | {status} |"
        )
    lines += [
        "",
        "Commands each shard ran in the traffic window, calls per message (first round of each "
        "mode; INFO commandstats, the meter's own INFO calls left out):",
        "",
    ]
    for mode, rounds in by_mode:
        for s in range(MASTERS) if rounds else ():
            first = rounds[0]
            lines.append(
                f"- {mode}, shard {s}: {commands_line(first.traffic[s].commands, first.messages)}"
            )
    return "\n".join(lines) + "\n"


def commands_line(commands: dict[str, int], messages: int) -> str:
    """``evalsha 1.00, xadd 1.00, ...``, most called first; the meter's own calls left out."""
    shown = [
        f"{name} {calls / messages:.2f}"
        for name, calls in sorted(commands.items(), key=lambda item: -item[1])
        if name not in ("info", "cluster|info", "client|list") and calls / messages >= 0.001
    ]
    return ", ".join(shown) or "none"


# -- the cluster ----------------------------------------------------------------------------


def command(port: int, *args: str) -> Any:
    """One command on a short-lived connection (set-up and between rounds, never in a window)."""
    with redis.Redis(port=port, socket_timeout=5) as client:
        return client.execute_command(*args)


class Meter:
    """Samples every Redis node of the cluster over connections opened once."""

    def __init__(self, cluster: RedisCluster) -> None:
        self.cluster = cluster
        self.clients = [redis.Redis(port=n.port, socket_timeout=5) for n in cluster.nodes]
        self.pids = [n.pid for n in cluster.nodes]

    def sample(self) -> list[Sample]:
        ports = " or ".join(f"sport = :{b} or dport = :{b}" for b in self.cluster.buses)
        ss = subprocess.run(
            ["ss", "-tinpH", f"( {ports} )"], capture_output=True, text=True, check=False
        ).stdout
        sent = bus_bytes_by_pid(ss)
        return [
            sample_from(
                client.info("cpu"),
                client.info("stats"),
                client.execute_command("CLUSTER INFO"),
                procs.cpu_ns([pid]),
                sent.get(pid, 0),
                client.info("commandstats"),
            )
            for client, pid in zip(self.clients, self.pids, strict=True)
        ]

    def subscribers(self, prefix: str) -> list[int]:
        """The bridge nodes' subscriber connections per node (their wires are named
        ``<node channel>:sub``, and this round's node channels start with ``prefix``)."""
        return [
            sum(
                1
                for entry in client.client_list()
                if entry.get("name", "").startswith(prefix) and entry["name"].endswith(":sub")
            )
            for client in self.clients
        ]

    def close(self) -> None:
        for client in self.clients:
            client.close()


# -- bridge nodes and clients -----------------------------------------------------------------


def start_node(
    name: str, url: str, mode: str, prefix: str, logdir: Path, extra: dict[str, str]
) -> procs.Child:
    port = procs.free_port()
    env = {
        "AETHER_CLUSTER_PUBSUB": mode,
        "AETHER_CHANNEL_PREFIX": prefix,
        "AETHER_NODE_ID": name,
        "AETHER_RATE_LIMIT": "0",
        "AETHER_LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
        **extra,
    }
    argv = [sys.executable, "-m", "bridge.cli", "serve", "--port", str(port), "--redis-url", url]
    child = procs.spawn(f"{prefix.rstrip(':')}-{name}", argv, port, logdir, env)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"node {name} exited:\n{child.tail()}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return child
        time.sleep(0.1)
    procs.stop(child)
    raise TimeoutError(f"node {name} not ready:\n{child.tail()}")


class Member(BenchConnection):
    """A client that keeps the number ``n`` of every bench message it receives, in order."""

    def __init__(self, url: str, group: int, tally: Tally) -> None:
        super().__init__(0, url, V3, {}, lambda _i, _p: None)
        self.group = group
        self.tally = tally
        self.got: list[int] = []

    def _on_text(self, data: bytes) -> None:
        if b'"msg_type":"msg"' not in data:
            return  # presence, heartbeats
        self.got.append(orjson.loads(data)["payload"]["n"])
        self.tally.one()


class Tally:
    """Deliveries so far across all clients; ``done`` once ``target`` is reached."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def one(self) -> None:
        self.count += 1
        if self.count >= self.target and not self.done.done():
            self.done.set_result(None)


def frame(n: int) -> bytes:
    return orjson.dumps({"msg_type": "msg", "target": "group", "payload": {"n": n, "body": BODY}})


async def connect(port: int, group: str, client: str, index: int, tally: Tally) -> Member:
    conn = Member(f"ws://127.0.0.1:{port}/v3/ws/group/{group}/client/{client}", index, tally)
    await asyncio.get_running_loop().create_connection(lambda: conn, "127.0.0.1", port)
    await asyncio.wait_for(conn.ready, TIMEOUT_S)
    return conn


async def send_at_rate(senders: Sequence[Member], messages: int, rate: float) -> float:
    """Message ``n`` from ``senders[n % len(senders)]`` at ``rate`` msg/s; returns seconds."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    n = 0
    while n < messages:
        due = min(messages, int((loop.time() - start) * rate) + 1)
        while n < due:
            senders[n % len(senders)].send(frame(n))
            n += 1
        await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
    return loop.time() - start


@dataclass
class Plan:
    messages: int
    rate: float
    groups: int
    clients: int
    settle: float = 1.0


async def measure_round(
    meter: Meter, ports: Sequence[int], node_pids: Sequence[int], prefix: str, plan: Plan
) -> tuple[list[Sample], list[Sample], list[Sample], dict[str, Any]]:
    """Connect, settle, idle window, traffic window; returns the three samples and facts."""
    ranges = meter.cluster.ranges
    groups = pick_groups(prefix, ranges, TRAFFIC, plan.groups)
    names = pick_clients(prefix, ranges, TRAFFIC, plan.groups * plan.clients)
    tally = Tally()
    members: list[Member] = []
    senders: list[Member] = []
    for g, group in enumerate(groups):
        for c in range(plan.clients):
            # Half of each group on each node; the sender of group g on node g % 2.
            port = ports[(g + c) % len(ports)]
            conn = await connect(port, group, names[g * plan.clients + c], g, tally)
            members.append(conn)
            if c == 0:
                senders.append(conn)
    try:
        await asyncio.sleep(plan.settle)
        loop = asyncio.get_running_loop()
        tree = [pid for p in node_pids for pid in procs.process_tree(p)]
        s0, n0 = meter.sample(), procs.cpu_ns(tree)
        t0 = loop.time()
        await asyncio.sleep(plan.messages / plan.rate)
        s1, n1 = meter.sample(), procs.cpu_ns(tree)
        t1 = loop.time()
        busy0, total0, _ = procs.machine_jiffies()
        tally.target = plan.messages * plan.clients
        send_s = await send_at_rate(senders, plan.messages, plan.rate)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(tally.done), TIMEOUT_S)
        await asyncio.sleep(0.2)
        s2, n2 = meter.sample(), procs.cpu_ns(tree)
        t2 = loop.time()
        busy1, total1, _ = procs.machine_jiffies()
        problems = []
        for conn in members:
            problems += check_delivery(conn.got, conn.group, plan.groups, plan.messages)
        facts = {
            "idle_s": t1 - t0,
            "traffic_s": t2 - t1,
            "send_s": send_s,
            "nodes_idle_us": (n1 - n0) / 1e3,
            "nodes_us": (n2 - n1) / 1e3,
            "machine_busy": (busy1 - busy0) / max(1, total1 - total0),
            "delivered": sum(len(conn.got) for conn in members),
            "expected": tally.target,
            "problems": problems,
            "subscribers": meter.subscribers(prefix),
        }
        return s0, s1, s2, facts
    finally:
        for conn in members:
            conn.close()
        await asyncio.sleep(0.3)
        for conn in members:
            conn.abort()


def run_round(
    cluster: RedisCluster,
    meter: Meter,
    mode: str,
    index: int,
    tag: str,
    plan: Plan,
    logdir: Path,
    extra: dict[str, str],
) -> RoundResult:
    prefix = pick_prefix(f"{tag}{mode[0]}{index}", cluster.ranges, BROADCAST)
    nodes = []
    try:
        for name in ("n0", "n1"):
            # One by one: the finally stops those started when a later one fails.
            nodes.append(start_node(name, cluster.url, mode, prefix, logdir, extra))  # noqa: PERF401
        ports = [n.port for n in nodes]
        runner = _event_loop_runner()
        s0, s1, s2, facts = runner(
            measure_round(meter, ports, [n.pid for n in nodes], prefix, plan)
        )
    finally:
        for node in nodes:
            procs.stop(node)
    errors = [
        line
        for node in nodes
        for line in node.log.read_text(errors="replace").splitlines()
        if "ERROR" in line or "Traceback" in line
    ]
    for shard in cluster.nodes:  # the next round starts on empty shards
        command(shard.port, "FLUSHALL")
    result = RoundResult(
        mode=mode,
        index=index,
        messages=plan.messages,
        traffic_s=facts["traffic_s"],
        idle_s=facts["idle_s"],
        send_s=facts["send_s"],
        traffic=[delta(a, b) for a, b in zip(s1, s2, strict=True)],
        idle=[delta(a, b) for a, b in zip(s0, s1, strict=True)],
        nodes_us=facts["nodes_us"],
        nodes_idle_us=facts["nodes_idle_us"],
        subscribers=facts["subscribers"],
        machine_busy=facts["machine_busy"],
        delivered=facts["delivered"],
        expected=facts["expected"],
        problems=facts["problems"] + [f"node log: {line[:160]}" for line in errors[:3]],
    )
    per = [per_message(d.cpu_us, plan.messages) for d in result.traffic]
    print(
        f"[cluster_pubsub] {mode} {index}: prefix {prefix} subs {result.subscribers} "
        f"Redis µs/msg {' '.join(f'{v:.1f}' for v in per)}, nodes "
        f"{per_message(result.nodes_us, plan.messages):.1f}, delivered "
        f"{result.delivered}/{result.expected}"
        + (f"; PROBLEMS: {sorted(set(result.problems))[:5]}" if result.problems else ""),
        file=sys.stderr,
    )
    for s, d in enumerate(result.traffic):
        print(f"    shard {s}: {commands_line(d.commands, plan.messages)}", file=sys.stderr)
    return result


def _event_loop_runner() -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="aether-cluster-pubsub-") as tmp:
            yield Path(tmp)
        return
    keep.mkdir(parents=True, exist_ok=True)
    yield keep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_pubsub", description=__doc__)
    parser.add_argument("--messages", type=int, default=5000, help="messages per round")
    parser.add_argument("--rate", type=float, default=1000.0, help="messages per second")
    parser.add_argument("--groups", type=int, default=4, help="groups, each with one sender")
    parser.add_argument("--clients", type=int, default=4, help="clients per group")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each mode, alternated")
    parser.add_argument("--history-size", type=int, help="AETHER_HISTORY_SIZE (default: shipped)")
    parser.add_argument("--logdir", type=Path, help="keep the nodes' and Redis' logs here")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    procs.raise_fd_limit()
    extra = {} if args.history_size is None else {"AETHER_HISTORY_SIZE": str(args.history_size)}
    plan = Plan(args.messages, args.rate, args.groups, args.clients)
    tag = f"cp{os.getpid() % 10000}"
    started = time.monotonic()
    results: list[RoundResult] = []
    with _workdir(args.logdir) as tmp, redis_cluster(tmp) as cluster:
        version = parse_info(command(cluster.nodes[0].port, "INFO", "server"))["redis_version"]
        meter = Meter(cluster)
        try:
            results.extend(
                run_round(cluster, meter, mode, index, tag, plan, tmp, extra)
                for index in range(1, args.repeat + 1)
                for mode in MODES
            )
        finally:
            meter.close()
    wall = time.monotonic() - started
    info = procs.machine_info()
    shown = " ".join(argv if argv is not None else sys.argv[1:])
    header = [
        f"- command: `python -m bench.cluster_pubsub {shown}`".replace(" `", " `", 1).rstrip(),
        f"- project code: working tree at {revision.describe_working_tree()}",
        f"- machine: {info['cpu']}, nproc {info['nproc']}, {info['memory']}, "
        f"kernel {info['kernel']}; Redis {version}, 3 masters, no replicas",
        f"- per round: 2 nodes, {plan.groups} groups × {plan.clients} clients, "
        f"{plan.messages:,} messages at {plan.rate:,.0f} msg/s"
        + (f", AETHER_HISTORY_SIZE={args.history_size}" if extra else ", history on (shipped)"),
        f"- rounds: {' '.join(f'{r.mode} {r.index}' for r in results)}; wall time {wall:.0f} s",
    ]
    print(report(results, header))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
