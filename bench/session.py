"""Coordinator of one session: start a system's nodes, drive the workers, read /proc.

Servers and workers are separate processes; only the servers' CPU counts as "server CPU". The
coordinator itself sleeps between boundary samples so it costs next to nothing.
"""

from __future__ import annotations

import multiprocessing
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from bench import procs
from bench.measured import Sample, SessionResult, StepResult
from bench.scenarios import ConnSpec, Scenario, step_shares, timeline
from bench.systems import System
from bench.worker import WorkerSpec, worker_main

START_TIMEOUT_S = 30.0
ProfileHook = Callable[[int, Path], Callable[[], str | None]]


@dataclass
class Env:
    """What every session shares: Redis, a log directory, worker count, an optional profiler."""

    redis: procs.Child
    logdir: Path
    workers: int = 2
    profile_step: str | None = None
    profiler: ProfileHook | None = None

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/0"


class Cluster:
    """The nodes of one system, their pids, and the samples taken from them."""

    def __init__(
        self, system: System, nodes: int, env: Env, node_env: Sequence[Sequence[tuple[str, str]]]
    ) -> None:
        self.env = env
        self.children: list[procs.Child] = []
        for n in range(nodes):
            port = procs.free_port()
            argv = system.argv(port, env.redis_url)
            extra = {**dict(system.env), **dict(node_env[n] if n < len(node_env) else ())}
            self.children.append(procs.spawn(f"{system.name}-{n}", argv, port, env.logdir, extra))
        for child in self.children:
            try:
                procs.wait_port(child.port, child.proc, START_TIMEOUT_S)
            except (RuntimeError, TimeoutError) as exc:
                raise RuntimeError(f"{exc}\n{child.tail()}") from exc
        self.trees = [procs.process_tree(c.pid) for c in self.children]
        self.worker_pids: list[int] = []

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(c.port for c in self.children)

    def sample(self) -> Sample:
        busy, total, steal = procs.machine_jiffies()
        return Sample(
            time.monotonic_ns(),
            tuple(procs.cpu_ns(t) for t in self.trees),
            procs.cpu_ns([self.env.redis.pid]),
            procs.cpu_ns(self.worker_pids),
            busy,
            total,
            steal,
        )

    def rss(self) -> tuple[int, ...]:
        return tuple(procs.rss_bytes(t) for t in self.trees)

    def check_alive(self) -> None:
        for child in self.children:
            if child.proc.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited with {child.proc.returncode}\n{child.tail()}"
                )

    def stop(self) -> None:
        for child in self.children:
            procs.stop(child)


def run_session(system: System, scenario: Scenario, env: Env) -> SessionResult:
    """Run ``scenario`` on ``system``; failures are reported in the result, never raised."""
    nodes = min(scenario.nodes, system.max_nodes)
    conns = tuple(replace(c, node=c.node % nodes) for c in scenario.conns)
    result = SessionResult(system.name, system.label, scenario.name, nodes, len(conns))
    cluster: Cluster | None = None
    workers: list[tuple[BaseProcess, Connection]] = []
    redis_log_start = _size(env.redis.log)
    try:
        cluster = Cluster(system, nodes, env, scenario.node_env)
        workers = _spawn_workers(system, scenario, conns, cluster.ports, env.workers)
        cluster.worker_pids = [p.pid for p, _ in workers if p.pid is not None]
        _drive(cluster, scenario, workers, result, env)
    except Exception as exc:  # the report says what failed; the run goes on
        result.error = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        _finish_workers(workers)
        if cluster is not None:
            cluster.stop()
            result.notes += _log_notes(cluster.children)
        procs.redis_command(env.redis.port, "FLUSHALL")
        result.notes += _redis_notes(env.redis.log, redis_log_start)
    return result


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _redis_notes(log: Path, start: int) -> list[str]:
    """Redis drops a subscriber that falls too far behind; say so, it explains lost messages."""
    with log.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    dropped = text.count("overcoming of output buffer limits")
    if not dropped:
        return []
    return [f"Redis closed {dropped} client(s) over its output buffer limit (a slow subscriber)"]


def _log_notes(children: Sequence[procs.Child]) -> list[str]:
    """The first error line each server logged, if any."""
    notes = []
    for child in children:
        try:
            lines = child.log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        bad = [line for line in lines if "ERROR" in line or "Traceback" in line]
        if bad:
            notes.append(f"{child.name} logged {len(bad)} error line(s), first: {bad[0][:200]}")
    return notes


def _spawn_workers(
    system: System,
    scenario: Scenario,
    conns: Sequence[ConnSpec],
    ports: tuple[int, ...],
    count: int,
) -> list[tuple[BaseProcess, Connection]]:
    ctx = multiprocessing.get_context("spawn")
    sizes = dict(Counter(c.group_id for c in conns))
    workers: list[tuple[BaseProcess, Connection]] = []
    for w in range(count):
        mine = tuple(c for c in conns if c.index % count == w)
        spec = WorkerSpec(
            w,
            mine,
            ports,
            system.dialect,
            sizes,
            scenario.steps,
            step_shares(mine, conns, scenario.steps, system.dialect),
            scenario.drain_s,
            scenario.storm,
            scenario.connect_concurrency,
        )
        parent, child = ctx.Pipe()
        process = ctx.Process(target=worker_main, args=(child, spec), daemon=True)
        process.start()
        child.close()
        workers.append((process, parent))
    return workers


def _expect(
    workers: Sequence[tuple[BaseProcess, Connection]], kind: str, timeout: float
) -> list[Any]:
    """One message of ``kind`` from every worker, within ``timeout`` seconds overall."""
    deadline = time.monotonic() + timeout
    values = []
    for process, pipe in workers:
        if not pipe.poll(max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"worker {process.pid} sent no {kind!r} within {timeout} s")
        got, value = pipe.recv()
        if got != kind:
            raise RuntimeError(f"worker sent {got!r}, expected {kind!r}")
        values.append(value)
    return values


def _drive(
    cluster: Cluster,
    scenario: Scenario,
    workers: Sequence[tuple[BaseProcess, Connection]],
    result: SessionResult,
    env: Env,
) -> None:
    _expect(workers, "ready", 60)
    time.sleep(0.5)
    result.rss_before = cluster.rss()
    before = cluster.sample()
    finish = _profile(cluster, env, "connect")
    for _, pipe in workers:
        pipe.send(("connect", None))
    _record_connect(result, _expect(workers, "connected", scenario.connect_timeout_s))
    result.connect_cpu_ns = sum(cluster.sample().nodes_cpu_ns) - sum(before.nodes_cpu_ns)
    if finish is not None:
        result.profile = finish()
    _settle(cluster, scenario)
    result.rss_after = cluster.rss()
    cluster.check_alive()
    if scenario.steps:
        _run_steps(cluster, scenario, workers, result, env)
    cluster.check_alive()


def _settle(cluster: Cluster, scenario: Scenario) -> None:
    """Sleep ``settle_s``, then until every node is quiet if the scenario asks for it."""
    time.sleep(scenario.settle_s)
    if not scenario.quiet_cores:
        return
    deadline = time.monotonic() + scenario.connect_timeout_s
    last = cluster.sample()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = cluster.sample()
        spent = max(b - a for a, b in zip(last.nodes_cpu_ns, now.nodes_cpu_ns, strict=True))
        if spent < scenario.quiet_cores * (now.t_ns - last.t_ns):
            return
        last = now


def _profile(cluster: Cluster, env: Env, phase: str) -> Callable[[], str | None] | None:
    """Start the profiler on node 0 if ``phase`` is the one asked for."""
    if env.profiler is None or phase != env.profile_step:
        return None
    finish = env.profiler(cluster.children[0].pid, env.logdir)
    return lambda: f"phase `{phase}`, {finish()}"


def _record_connect(result: SessionResult, reports: list[dict[str, Any]]) -> None:
    latencies: array[int] = array("q")
    for report in reports:
        result.connected += report["ok"]
        result.connect_failed += report["failed"]
        result.connect_errors.extend(report["errors"])
        latencies.frombytes(report["latency_ns"])
    result.connect_wall_s = max(r["wall_ns"] for r in reports) / 1e9
    probe = StepResult("connect", "connect", 0.0)
    probe.add_latencies(latencies)
    result.connect_latency_ms = {k: v / 1000 for k, v in probe.latency_us.items()}


def _run_steps(
    cluster: Cluster,
    scenario: Scenario,
    workers: Sequence[tuple[BaseProcess, Connection]],
    result: SessionResult,
    env: Env,
) -> None:
    t0 = time.monotonic_ns() + 300_000_000
    windows = timeline(scenario.steps, t0, scenario.drain_s)
    for _, pipe in workers:
        pipe.send(("run", t0))
    for step, window in zip(scenario.steps, windows, strict=True):
        _sleep_until(window.measure_start)
        first = cluster.sample()
        finish_profile = _profile(cluster, env, step.name)
        _sleep_until(window.end)
        measured = StepResult(step.name, step.mode, step.measure_s)
        measured.set_cpu(first, cluster.sample())
        result.steps.append(measured)
        if finish_profile is not None:
            result.profile = finish_profile()
    span = (windows[-1].end - t0) / 1e9 + scenario.drain_s + 30
    kinds = ("latency_ns", "received_ns", "uplink_ns", "downlink_ns")
    samples = [{kind: array("q") for kind in kinds} for _ in result.steps]
    for report in _expect(workers, "result", span):
        result.lost += report["lost"]
        for measured, arrays, tally in zip(result.steps, samples, report["steps"], strict=True):
            for key in ("sent", "sent_in_window", "expected", "delivered", "in_window"):
                setattr(measured, key, getattr(measured, key) + tally[key])
            for kind in kinds:
                arrays[kind].frombytes(tally[kind])
    for measured, arrays in zip(result.steps, samples, strict=True):
        measured.add_latencies(arrays["latency_ns"], arrays["received_ns"])
        measured.add_hops(arrays["uplink_ns"], arrays["downlink_ns"])


def _finish_workers(workers: Sequence[tuple[BaseProcess, Connection]]) -> None:
    for _, pipe in workers:
        try:
            pipe.send(("close", None))
        except OSError:
            pass
    for process, pipe in workers:
        process.join(10)
        if process.is_alive():
            process.terminate()
            process.join(5)
        pipe.close()


def _sleep_until(deadline_ns: int) -> None:
    delay = (deadline_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)
