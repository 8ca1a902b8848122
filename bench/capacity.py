"""``python -m bench.capacity``: one node at the machine's open-files limit.

One ``aether-bridge serve`` node on a throwaway Redis; ``--clients`` load-generator processes
open ``--connections`` V3 connections between them, each process from its own source address
(127.0.0.2, 127.0.0.3, ...) so no address runs short of ports. Most connections sit in groups
of ``--group-size``; the first ``--big`` form one big group. Phases, each printed:

1. connect: all at once from every process (``--concurrency`` handshakes in flight each);
2. idle: ``--idle`` seconds with no traffic at all: RSS and CPU per connection;
3. heartbeats: every connection sends one every ``--interval`` seconds, the first ones spread
   over an interval, for ``--measure`` seconds: CPU, echo round-trip percentiles;
4. meanwhile, in the last 10 s, one member of the big group sends ``--messages`` group
   messages (10 a second): the latency to every member.

The node may run with the stall probe (``--probe``: ``bench/probe``, GC passes and loop
stalls logged with CLOCK_MONOTONIC stamps): its worst lines are printed beside the heartbeats'
slowest round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import procs
from bench.dialects import V3, Dialect, Received
from bench.profile import py_spy_hook
from bench.systems import SYSTEMS
from bench.worker import run_loop
from bench.wsclient import BenchConnection

HEARTBEAT = b'{"msg_type":"heartbeat","target":"echo"}'
# Systems whose clients speak V3 and get a heartbeat echo (the socket.io ones speak their own).
CAPACITY_SYSTEMS = ("project", "ws-ceiling")
GROUP_RATE = 10.0  # group messages a second in phase 4
GROUP_WINDOW = 10.0  # seconds before the end of phase 3 when phase 4 starts


class CapacityDialect(Dialect):
    """V3, and a heartbeat echo counts as a received bench frame (``{"hb": 1}``)."""

    def bench_payload(self, data: bytes) -> Received | None:
        if b'"msg_type":"heartbeat"' in data:
            return Received({"hb": 1}, 0)
        return super().bench_payload(data)


DIALECT = CapacityDialect(**{f: getattr(V3, f) for f in V3.__dataclass_fields__})


@dataclass(frozen=True)
class Share:
    """One load-generator process's connections: (group, client) pairs, and its address."""

    worker: int
    port: int
    source: str
    members: tuple[tuple[str, str], ...]
    concurrency: int
    sender: int | None  # index in ``members`` of the big group's sender, if it is ours


class Load:
    def __init__(self, share: Share) -> None:
        self.share = share
        self.conns: list[BenchConnection | None] = [None] * len(share.members)
        self.heartbeat_sent: array[int] = array("q", [0] * len(share.members))
        self.rtt_ns: array[int] = array("q")
        self.rtt_at: array[int] = array("q")
        self.group_ns: array[int] = array("q")
        self.heartbeats_sent = 0
        self.failures: list[str] = []

    def on_frame(self, index: int, received: Received) -> None:
        now = time.monotonic_ns()
        if "hb" in received.payload:
            sent = self.heartbeat_sent[index]
            if sent:
                self.rtt_ns.append(now - sent)
                self.rtt_at.append(now)
                self.heartbeat_sent[index] = 0
        else:
            self.group_ns.append(now - int(received.payload["t"]))

    async def connect_all(self) -> dict[str, Any]:
        gate = asyncio.Semaphore(self.share.concurrency)
        loop = asyncio.get_running_loop()
        started = time.monotonic()

        async def one(index: int, group: str, client: str) -> None:
            url = f"ws://127.0.0.1:{self.share.port}/v3/ws/group/{group}/client/{client}"
            conn = BenchConnection(index, url, DIALECT, {}, self.on_frame)
            async with gate:
                try:
                    async with asyncio.timeout(60):
                        await loop.create_connection(
                            lambda: conn,
                            "127.0.0.1",
                            self.share.port,
                            local_addr=(self.share.source, 0),
                        )
                        await conn.ready
                except Exception as exc:
                    conn.abort()
                    self.failures.append(repr(exc))
                    return
            self.conns[index] = conn

        await asyncio.gather(*(one(i, g, c) for i, (g, c) in enumerate(self.share.members)))
        return {
            "took": time.monotonic() - started,
            "failures": self.failures[:5],
            "failed": len(self.failures),
        }

    async def heartbeats(self, start: float, interval: float, end: float) -> None:
        """Each connection beats every ``interval`` from a random offset; a beat whose echo has
        not come back when the next is due counts as missing."""
        offsets = sorted((random.uniform(0, interval), i) for i in range(len(self.conns)))
        self.missing = 0
        beat = 0
        while True:
            round_start = start + beat * interval
            for offset, index in offsets:
                due = round_start + offset
                if due >= end:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                conn = self.conns[index]
                if conn is None or conn.closed:
                    continue
                if self.heartbeat_sent[index]:
                    self.missing += 1
                self.heartbeat_sent[index] = time.monotonic_ns()
                conn.send(HEARTBEAT)
                self.heartbeats_sent += 1
            beat += 1

    async def group_messages(self, start: float, count: int) -> None:
        sender = self.share.sender
        if sender is None:
            return
        conn = self.conns[sender]
        for k in range(count):
            delay = start + k / GROUP_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if conn is not None:
                conn.send(V3.frame(sender, 4, time.monotonic_ns()))

    def close_all(self) -> int:
        lost = sum(1 for c in self.conns if c is not None and c.closed)
        for conn in self.conns:
            if conn is not None:
                conn.abort()
        return lost


def worker_main(pipe: Connection, share: Share) -> None:
    run_loop(_worker(pipe, share))


async def _worker(pipe: Connection, share: Share) -> None:
    load = Load(share)
    loop = asyncio.get_running_loop()
    pipe.send("ready")
    await loop.run_in_executor(None, pipe.recv)  # "connect"
    pipe.send(await load.connect_all())
    start, interval, end, group_at, messages = await loop.run_in_executor(None, pipe.recv)
    await asyncio.gather(
        load.heartbeats(start, interval, end), load.group_messages(group_at, messages)
    )
    await asyncio.sleep(max(0.0, end + 2.0 - time.monotonic()))  # the last echoes land
    lost = load.close_all()
    pipe.send(
        {
            "rtt_ns": load.rtt_ns.tobytes(),
            "rtt_at": load.rtt_at.tobytes(),
            "group_ns": load.group_ns.tobytes(),
            "sent": load.heartbeats_sent,
            "missing": load.missing + sum(1 for s in load.heartbeat_sent if s),
            "lost": lost,
        }
    )


# -- the coordinator ------------------------------------------------------------------------


def members(total: int, big: int, group_size: int) -> list[tuple[str, str]]:
    """``big`` clients in group ``big``, the rest in groups of ``group_size``."""
    out = [("big", f"b{i}") for i in range(min(big, total))]
    out += [(f"g{i // group_size}", f"c{i}") for i in range(total - len(out))]
    return out


def quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=1000)[min(998, int(q * 1000) - 1)]


class NodeMeter:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def sample(self) -> tuple[float, int, int]:
        return time.monotonic(), procs.cpu_ns([self.pid]), procs.rss_bytes([self.pid])


def _cores(a: tuple[float, int, int], b: tuple[float, int, int]) -> float:
    return (b[1] - a[1]) / 1e9 / (b[0] - a[0])


def _probe_lines(probe_dir: Path, pid: int, start: float, end: float, top: int) -> list[str]:
    """The probe's worst lines in the window, after a count of full GC passes."""
    path = probe_dir / f"probe-{pid}.log"
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and start <= float(parts[0]) <= end:
            events.append((float(parts[2]), parts[1], line))
    full = [ms for ms, kind, _ in events if kind == "gc2"]
    longest = max(full, default=0.0)
    summary = f"{len(full)} full GC passes, {sum(full):.0f} ms in all, longest {longest:.0f} ms"
    return [summary, *(line for _, _, line in sorted(events, reverse=True)[:top])]


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    procs.raise_fd_limit()
    ctx = multiprocessing.get_context("spawn")
    out: dict[str, Any] = {
        "system": args.system,
        "connections": args.connections,
        "clients": args.clients,
    }
    with procs.redis_server(workdir) as redis:
        port = procs.free_port()
        env: dict[str, str] = {}
        if args.probe:
            here = Path(__file__).resolve().parent
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(here / "probe"), os.environ.get("PYTHONPATH", "")])
            )
            env["AETHER_PROBE_DIR"] = str(workdir)
        argv = SYSTEMS[args.system].argv(port, f"redis://127.0.0.1:{redis.port}")
        node = procs.spawn("node", argv, port, workdir, env)
        workers: list[tuple[Any, Connection]] = []
        try:
            procs.wait_port(port, node.proc, 30)
            meter = NodeMeter(node.pid)
            redis_meter = NodeMeter(redis.pid)
            everyone = members(args.connections, args.big, args.group_size)
            for w in range(args.clients):
                mine = tuple(everyone[w :: args.clients])
                share = Share(
                    w, port, f"127.0.0.{2 + w}", mine, args.concurrency, 0 if w == 0 else None
                )
                parent, child = ctx.Pipe()
                process = ctx.Process(target=worker_main, args=(child, share), daemon=True)
                process.start()
                workers.append((process, parent))
            for _, pipe in workers:
                assert pipe.recv() == "ready"
            time.sleep(1.0)
            before = meter.sample()
            for _, pipe in workers:
                pipe.send("connect")
            reports = [pipe.recv() for _, pipe in workers]
            connected = meter.sample()
            out["connect_s"] = max(r["took"] for r in reports)
            out["connect_failed"] = sum(r["failed"] for r in reports)
            out["connect_errors"] = [e for r in reports for e in r["failures"]][:5]
            out["connect_cpu_ms_per_conn"] = (connected[1] - before[1]) / 1e6 / args.connections
            time.sleep(args.settle)
            idle_start, redis_idle_start = meter.sample(), redis_meter.sample()
            finish = py_spy_hook(node.pid, workdir) if args.profile == "idle" else None
            time.sleep(args.idle)
            idle_end, redis_idle_end = meter.sample(), redis_meter.sample()
            if finish is not None:
                out["profile"] = finish()
            out["rss_mib_before"] = before[2] / 2**20
            out["rss_mib_idle"] = idle_end[2] / 2**20
            out["kib_per_conn"] = (idle_end[2] - before[2]) / 1024 / args.connections
            out["idle_cores"] = _cores(idle_start, idle_end)

            start = time.monotonic() + 1.0
            end = start + args.measure
            group_at = end - GROUP_WINDOW
            messages = int(GROUP_WINDOW * GROUP_RATE) - 5
            for _, pipe in workers:
                pipe.send((start, args.interval, end, group_at, messages))
            # CPU over whole intervals once every connection beats (after the first interval).
            time.sleep(max(0.0, start + args.interval - time.monotonic()))
            beat_start, redis_beat_start = meter.sample(), redis_meter.sample()
            finish = py_spy_hook(node.pid, workdir) if args.profile == "heartbeats" else None
            time.sleep(max(0.0, end - time.monotonic()))
            beat_end, redis_beat_end = meter.sample(), redis_meter.sample()
            if finish is not None:
                out["profile"] = finish()
            results = [pipe.recv() for _, pipe in workers]
        finally:
            for process, pipe in workers:
                pipe.close()
                process.join(5)
                if process.is_alive():
                    process.kill()
            procs.stop(node, grace=20)
    rtts = [v / 1e6 for r in results for v in array("q", r["rtt_ns"])]
    group = [v / 1e6 for r in results for v in array("q", r["group_ns"])]
    sent = sum(r["sent"] for r in results)
    out["beat_cores"] = _cores(beat_start, beat_end)
    out["beats_per_s"] = args.connections / args.interval
    out["cpu_ms_per_beat"] = (out["beat_cores"] - out["idle_cores"]) * 1000 / out["beats_per_s"]
    # Redis' own CPU (its main thread and any others), for what presence costs Redis.
    out["redis_idle_cores"] = _cores(redis_idle_start, redis_idle_end)
    out["redis_beat_cores"] = _cores(redis_beat_start, redis_beat_end)
    out["redis_us_per_beat"] = (
        (out["redis_beat_cores"] - out["redis_idle_cores"]) * 1e6 / out["beats_per_s"]
    )
    out["heartbeats"] = {
        "sent": sent,
        "answered": len(rtts),
        "missing": sum(r["missing"] for r in results),
        "p50_ms": quantile(rtts, 0.5),
        "p99_ms": quantile(rtts, 0.99),
        "max_ms": max(rtts, default=0.0),
    }
    expected = min(args.big, args.connections) * messages
    out["group"] = {
        "members": min(args.big, args.connections),
        "messages": messages,
        "delivered": len(group),
        "expected": expected,
        "p50_ms": quantile(group, 0.5),
        "p99_ms": quantile(group, 0.99),
        "max_ms": max(group, default=0.0),
    }
    out["lost"] = sum(r["lost"] for r in results)
    if args.probe:
        out["probe"] = _probe_lines(workdir, node.pid, start, end, 15)
    return out


def report(out: dict[str, Any], args: argparse.Namespace) -> str:
    hb, group = out["heartbeats"], out["group"]
    rows = [
        ("connections (failed)", f"{out['connections']:,} ({out['connect_failed']})"),
        (f"connect, all at once from {args.clients} processes, s", f"{out['connect_s']:.1f}"),
        ("node CPU per connect, ms", f"{out['connect_cpu_ms_per_conn']:.3f}"),
        ("RSS before → idle, MiB", f"{out['rss_mib_before']:.1f} → {out['rss_mib_idle']:.1f}"),
        ("RSS per connection, KiB", f"{out['kib_per_conn']:.1f}"),
        ("idle CPU, no heartbeats, % of a core", f"{100 * out['idle_cores']:.1f}"),
        (
            f"CPU with heartbeats ({out['beats_per_s']:.0f}/s), % of a core",
            f"{100 * out['beat_cores']:.1f}",
        ),
        ("node CPU per heartbeat, ms", f"{out['cpu_ms_per_beat']:.3f}"),
        (
            "Redis CPU idle / with heartbeats, % of a core",
            f"{100 * out['redis_idle_cores']:.1f} / {100 * out['redis_beat_cores']:.1f}",
        ),
        ("Redis CPU per heartbeat, µs", f"{out['redis_us_per_beat']:.1f}"),
        (
            "heartbeats sent / answered / missing",
            f"{hb['sent']:,} / {hb['answered']:,} / {hb['missing']:,}",
        ),
        (
            "heartbeat echo p50 / p99 / max, ms",
            f"{hb['p50_ms']:.2f} / {hb['p99_ms']:.2f} / {hb['max_ms']:.1f}",
        ),
        (
            f"group of {group['members']:,}: {group['messages']} messages, delivered / expected",
            f"{group['delivered']:,} / {group['expected']:,}",
        ),
        (
            "group message p50 / p99 / max, ms",
            f"{group['p50_ms']:.2f} / {group['p99_ms']:.2f} / {group['max_ms']:.1f}",
        ),
        ("connections lost", f"{out['lost']}"),
    ]
    lines = [
        f"- command: `python -m bench.capacity {' '.join(sys.argv[1:])}`",
        f"- system: {SYSTEMS[out['system']].label}",
        f"- machine: {procs.machine_info().get('cpu', '?')}, nproc {os.cpu_count()}",
        "",
        "| figure | value |",
        "|---|---:|",
        *(f"| {label} | {value} |" for label, value in rows),
    ]
    if out.get("connect_errors"):
        lines.append(f"\nconnect errors (first 5): {out['connect_errors']}")
    if out.get("profile"):
        lines += ["", f"Profile of the node, {args.profile} phase:", "", out["profile"]]
    if out.get("probe"):
        lines += ["", "Worst probe lines in the heartbeat window:", "", "```", *out["probe"], "```"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    parser.add_argument(
        "--system",
        choices=CAPACITY_SYSTEMS,
        default="project",
        help="the node under test; ws-ceiling is plain websockets, no Redis, no presence",
    )
    parser.add_argument("--connections", type=int, default=19_000)
    parser.add_argument("--clients", type=int, default=4, help="load-generator processes")
    parser.add_argument("--big", type=int, default=1_000, help="members of the big group")
    parser.add_argument("--group-size", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight each")
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--measure", type=float, default=90.0)
    parser.add_argument("--probe", action="store_true", help="run the node with bench/probe")
    parser.add_argument(
        "--profile", choices=("idle", "heartbeats"), help="py-spy the node during this phase"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--logdir", type=Path)
    args = parser.parse_args(argv)
    if args.measure < args.interval + GROUP_WINDOW:
        parser.error("--measure must cover an interval and the group window")
    with tempfile.TemporaryDirectory(prefix="aether-capacity-") as tmp:
        workdir = args.logdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        out = run(args, workdir)
    print(report(out, args))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
