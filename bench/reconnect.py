"""``python -m bench.reconnect``: a reconnect storm onto two nodes.

``--connections`` V3 clients (19,000 by default) in groups of ``--group-size`` connect to
``--nodes`` ``aether-bridge serve`` nodes on one Redis, with no balancer in front: each client
picks a node at random. ``--clients`` load-generator processes hold them. Phases, each printed:

1. connect: ``--concurrency`` handshakes in flight per process (failed ones retried as in
   the storm); the nodes' CPU per connect;
2. idle: ``--idle`` seconds with no traffic, the nodes' CPU at rest;
3. the storm: at one instant every process drops all its sockets (as a network blip or a
   restarted proxy would) and opens them again at once, each client on a node it picks anew.
   A client is back when its handshake completes, which the node sends once the connection is
   registered and its presence entry written. A failed attempt is retried after
   ``--retry-delay`` seconds, until ``--deadline``;
4. presence: every group's members, read from the HTTP API (``/v3/groups/{group}/presence``),
   must be exactly the clients whose socket is open; read again until they are, for up to
   ``--presence-wait`` seconds.

``--system socketio`` (or another multi-node system of ``python -m bench``) runs phases 1-3 on
that baseline instead, for its CPU per connect; it has no presence API to check. The
load-generator processes are ``bench/storm_worker.py``'s.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import signal
import sys
import tempfile
import time
import urllib.request
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from bench import procs
from bench.measured import Sample, percentile
from bench.session import Cluster, Env, _expect, _finish_workers
from bench.storm_worker import StormShare, clients, per_node, pick_nodes, worker_main
from bench.systems import SYSTEMS, System
from bench.worker import WorkerSpec

TARGET_S = 10.0  # issue 17: all back within 10 s


# -- presence -------------------------------------------------------------------------------


def presence_diff(
    expected: dict[str, set[str]], actual: dict[str, set[str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(missing, extra): clients connected but not listed, and listed but not connected."""
    missing, extra = [], []
    for group in sorted(expected.keys() | actual.keys()):
        want, have = expected.get(group, set()), actual.get(group, set())
        missing += [(group, c) for c in sorted(want - have)]
        extra += [(group, c) for c in sorted(have - want)]
    return missing, extra


def read_presence(ports: Sequence[int], groups: Iterable[str]) -> dict[str, set[str]]:
    """Each group's members from the HTTP API, asking the nodes in turn."""
    found = {}
    for n, group in enumerate(sorted(groups)):
        url = f"http://127.0.0.1:{ports[n % len(ports)]}/v3/groups/{group}/presence"
        with urllib.request.urlopen(url, timeout=10) as reply:
            found[group] = set(json.load(reply)["clients"])
    return found


def check_presence(
    ports: Sequence[int], expected: dict[str, set[str]], wait_s: float
) -> dict[str, Any]:
    """Read presence until it matches ``expected`` or ``wait_s`` has passed."""
    started = time.monotonic()
    reads = 0
    while True:
        reads += 1
        missing, extra = presence_diff(expected, read_presence(ports, expected))
        elapsed = time.monotonic() - started
        if (not missing and not extra) or elapsed > wait_s:
            break
        time.sleep(0.5)
    return {
        "groups": len(expected),
        "clients": sum(len(c) for c in expected.values()),
        "correct": not missing and not extra,
        "after_s": elapsed,
        "reads": reads,
        "missing": len(missing),
        "extra": len(extra),
        "examples": [f"missing {g}/{c}" for g, c in missing[:3]]
        + [f"extra {g}/{c}" for g, c in extra[:3]],
    }


# -- the coordinator ------------------------------------------------------------------------


def shares(args: argparse.Namespace, system: System) -> list[StormShare]:
    """Split the clients among the processes, with their first and second picks."""
    everyone = clients(args.connections, args.group_size)
    first = pick_nodes(everyone, args.nodes, args.seed)
    again = pick_nodes(everyone, args.nodes, args.seed + 1)
    sizes = dict(Counter(c.group_id for c in everyone))
    out = []
    for w in range(args.clients):
        spec = WorkerSpec(
            w,
            first[w :: args.clients],
            (),  # the ports: filled in once the nodes listen
            system.dialect,
            sizes,
            (),
            (),
            0.0,
            False,
            args.concurrency,
        )
        out.append(StormShare(spec, again[w :: args.clients], args.retry_delay, args.deadline))
    return out


def _cores(a: Sample, b: Sample) -> float:
    seconds = (b.t_ns - a.t_ns) / 1e9
    return (sum(b.nodes_cpu_ns) - sum(a.nodes_cpu_ns)) / 1e9 / seconds if seconds else math.nan


def _cpu_ms(a: Sample, b: Sample) -> float:
    return (sum(b.nodes_cpu_ns) - sum(a.nodes_cpu_ns)) / 1e6


def _spawn(
    plan: Sequence[StormShare], ports: tuple[int, ...]
) -> list[tuple[BaseProcess, Connection]]:
    ctx = multiprocessing.get_context("spawn")
    workers: list[tuple[BaseProcess, Connection]] = []
    for share in plan:
        ready = replace(share, spec=replace(share.spec, node_ports=ports))
        parent, child = ctx.Pipe()
        process = ctx.Process(target=worker_main, args=(child, ready), daemon=True)
        process.start()
        child.close()
        workers.append((process, parent))
    return workers


def _send(workers: Sequence[tuple[BaseProcess, Connection]], kind: str, value: Any) -> None:
    for _, pipe in workers:
        pipe.send((kind, value))


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    system = SYSTEMS[args.system]
    plan = shares(args, system)
    out: dict[str, Any] = {
        "system": system.name,
        "nodes": args.nodes,
        "connections": args.connections,
        "first_per_node": per_node((c for s in plan for c in s.spec.conns), args.nodes),
        "again_per_node": per_node((c for s in plan for c in s.again), args.nodes),
    }
    workers: list[tuple[BaseProcess, Connection]] = []
    with procs.redis_server(workdir) as redis:
        cluster = Cluster(system, args.nodes, Env(redis, workdir, args.clients), ())
        try:
            workers = _spawn(plan, cluster.ports)
            cluster.worker_pids = [p.pid for p, _ in workers if p.pid is not None]
            _expect(workers, "ready", 60)
            time.sleep(0.5)
            rss_before, before = cluster.rss(), cluster.sample()
            _send(workers, "connect", None)
            reports = _expect(workers, "connected", 120 + args.connections / 100)
            connected = cluster.sample()
            out["connect_s"] = max(r["took_ns"] for r in reports) / 1e9
            out["connect_failed"] = sum(r["missing"] for r in reports)
            out["connect_rounds"] = max(r["rounds"] for r in reports)
            out["connect_errors"] = [e for r in reports for e in r["errors"]][:5]
            opened = sum(r["back"] for r in reports)
            out["connect_cpu_ms_each"] = _cpu_ms(before, connected) / opened if opened else 0.0
            time.sleep(args.settle)
            idle_start = cluster.sample()
            time.sleep(args.idle)
            idle_end = cluster.sample()
            out["idle_cores"] = _cores(idle_start, idle_end)
            rss_idle = cluster.rss()

            at_ns = time.monotonic_ns() + 500_000_000
            _send(workers, "storm", at_ns)
            _sleep_until_ns(at_ns)
            dropped = cluster.sample()
            backs = _expect(workers, "back", args.deadline + 120)
            back = cluster.sample()
            time.sleep(args.tail)
            tail = cluster.sample()
            cluster.check_alive()
            out.update(storm_figures(backs, dropped, back, tail, out["idle_cores"]))
            out["rss_mib"] = [sum(r) / 2**20 for r in (rss_before, rss_idle, cluster.rss())]
            if system.project:
                _send(workers, "open", None)
                expected: dict[str, set[str]] = defaultdict(set)
                for pairs in _expect(workers, "open", 60):
                    for group, client in pairs:
                        expected[group].add(client)
                out["presence"] = check_presence(cluster.ports, expected, args.presence_wait)
        finally:
            _finish_workers(workers)
            cluster.stop()
    return out


def storm_figures(
    backs: Sequence[dict[str, Any]], dropped: Sample, back: Sample, tail: Sample, idle: float
) -> dict[str, Any]:
    """Time to all back, its percentiles, and the nodes' CPU per reconnect over the storm."""
    latencies = sorted(v for r in backs for v in array("q", r["latency_ns"]))
    returned = sum(r["back"] for r in backs)
    storm_ms = _cpu_ms(dropped, tail)
    idle_ms = idle * (tail.t_ns - dropped.t_ns) / 1e6
    return {
        "back": returned,
        "not_back": sum(r["missing"] for r in backs),
        "refused": sum(r.get("refused", 0) for r in backs),
        "rounds": max(r["rounds"] for r in backs),
        "storm_errors": [e for r in backs for e in r["errors"]][:5],
        "all_back_s": latencies[-1] / 1e9 if latencies else math.nan,
        "back_p50_s": percentile(latencies, 50) / 1e9,
        "back_p99_s": percentile(latencies, 99) / 1e9,
        "storm_cores": _cores(dropped, back),
        "storm_cpu_ms_each": storm_ms / returned if returned else math.nan,
        "storm_net_cpu_ms_each": (storm_ms - idle_ms) / returned if returned else math.nan,
    }


def _sleep_until_ns(deadline_ns: int) -> None:
    delay = (deadline_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


# -- report ---------------------------------------------------------------------------------


def report_rows(out: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, str]]:
    """The figures of one run as (label, value) rows."""
    met = "met" if out["not_back"] == 0 and out["all_back_s"] <= TARGET_S else "not met"
    nodes = " / ".join(f"{n:,}" for n in out["again_per_node"])
    rows = [
        ("system", SYSTEMS[out["system"]].label),
        (
            "connections (not connected, connect rounds)",
            f"{out['connections']:,} ({out['connect_failed']}, {out['connect_rounds']})",
        ),
        (f"first connect, {args.concurrency} at a time per process, s", f"{out['connect_s']:.1f}"),
        ("node CPU per connect, ms", f"{out['connect_cpu_ms_each']:.3f}"),
        ("idle CPU, all nodes, % of a core", f"{100 * out['idle_cores']:.1f}"),
        ("storm: back / not back", f"{out['back']:,} / {out['not_back']:,}"),
        ("storm: clients per node after", nodes),
        (f"storm: all back, s (target ≤ {TARGET_S:g} s: {met})", f"{out['all_back_s']:.2f}"),
        ("storm: back p50 / p99, s", f"{out['back_p50_s']:.2f} / {out['back_p99_s']:.2f}"),
        (
            "storm: connect rounds (1 = no retry); closed right after the handshake",
            f"{out['rounds']}; {out['refused']:,}",
        ),
        ("storm: nodes' CPU, cores, drop → all back", f"{out['storm_cores']:.2f}"),
        (
            f"storm: node CPU per reconnect, ms (drop → {args.tail:g} s after; without idle)",
            f"{out['storm_cpu_ms_each']:.3f} ({out['storm_net_cpu_ms_each']:.3f})",
        ),
        (
            "RSS of the nodes: before → idle → after the storm, MiB",
            " → ".join(f"{v:.0f}" for v in out["rss_mib"]),
        ),
    ]
    presence = out.get("presence")
    if presence is None:
        rows.append(("presence", "not checked (no presence API)"))
    else:
        verdict = (
            f"correct {presence['after_s']:.1f} s after all back ({presence['reads']} reads)"
            if presence["correct"]
            else f"WRONG after {presence['after_s']:.1f} s: {presence['missing']} missing, "
            f"{presence['extra']} extra"
        )
        rows.append(
            (f"presence of {presence['clients']:,} clients in {presence['groups']} groups", verdict)
        )
    return rows


def report(out: dict[str, Any], args: argparse.Namespace, argv: Sequence[str]) -> str:
    info = procs.machine_info()
    lines = [
        f"- command: `python -m bench.reconnect {' '.join(argv)}`",
        f"- machine: {info['cpu']}, nproc {info['nproc']}, {info['memory']}",
        "",
        "| figure | value |",
        "|---|---:|",
        *(f"| {label} | {value} |" for label, value in report_rows(out, args)),
    ]
    errors = out.get("connect_errors", []) + out.get("storm_errors", [])
    if errors:
        lines.append(f"\nconnect errors (first ones): {errors}")
    examples = out.get("presence", {}).get("examples")
    if examples:
        lines.append(f"\npresence mismatches (first ones): {examples}")
    return "\n".join(lines) + "\n"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.reconnect", description=__doc__)
    multi = [name for name, s in SYSTEMS.items() if s.max_nodes > 1]
    parser.add_argument("--system", default="project", choices=multi)
    parser.add_argument("--connections", type=int, default=19_000)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4, help="load-generator processes")
    parser.add_argument("--group-size", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=100, help="first connect, each")
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--tail", type=float, default=2.0, help="storm CPU counted until then")
    parser.add_argument("--retry-delay", type=float, default=1.0)
    parser.add_argument("--deadline", type=float, default=60.0, help="stop retrying after, s")
    parser.add_argument("--presence-wait", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--logdir", type=Path)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    given = list(argv) if argv is not None else sys.argv[1:]
    procs.raise_fd_limit()
    signal.signal(signal.SIGTERM, _interrupt)
    with tempfile.TemporaryDirectory(prefix="aether-reconnect-") as tmp:
        workdir = args.logdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        out = run(args, workdir)
    markdown = report(out, args, given)
    print(markdown)
    if args.write:
        args.write.write_text(markdown)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0 if out["not_back"] == 0 and out.get("presence", {}).get("correct", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
