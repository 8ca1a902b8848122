"""/metrics of a ``--workers N`` node: the whole process group (bridge/worker_metrics.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from websockets.asyncio.client import ClientConnection

from bridge.metrics import render
from bridge.worker_metrics import (
    RETIRED,
    GroupCollector,
    SnapshotWriter,
    merge,
    parse,
    worker_group,
)

from ..helpers import eventually, v3


def worker(
    connections: float,
    opened: float,
    ready: float = 1,
    refused: dict[str, float] | None = None,
    mode: str = "open",
) -> list[Metric]:
    """The families of one worker, in the shapes bridge/metrics.py yields."""
    opened_family = CounterMetricFamily("aether_connections_opened", "accepted", value=opened)
    refused_family = CounterMetricFamily("aether_connections_refused", "refused", labels=["reason"])
    for reason, value in (refused or {}).items():
        refused_family.add_metric([reason], value)
    v2_mode = GaugeMetricFamily("aether_v2_mode", "mode", labels=["group", "mode"])
    for name in ("open", "closed"):
        v2_mode.add_metric(["*", name], int(name == mode))
    return [
        opened_family,
        refused_family,
        GaugeMetricFamily("aether_connections", "open", value=connections),
        GaugeMetricFamily("aether_broker_ready", "ready", value=ready),
        v2_mode,
    ]


def values(families: Iterable[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


def value(families: Iterable[Metric], name: str, **labels: str) -> float:
    return values(families)[(name, tuple(sorted(labels.items())))]


class Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def registry_of(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_merge_sums_counters_and_gauges_and_takes_the_minimum_of_state_gauges():
    merged = merge(
        [
            worker(3, 10, ready=1, refused={"node-limit": 2}),
            worker(4, 5, ready=0, refused={"node-limit": 1, "client-limit": 7}, mode="closed"),
        ]
    )
    assert value(merged, "aether_connections_opened_total") == 15
    assert value(merged, "aether_connections") == 7
    assert value(merged, "aether_connections_refused_total", reason="node-limit") == 3
    assert value(merged, "aether_connections_refused_total", reason="client-limit") == 7
    assert value(merged, "aether_broker_ready") == 0  # one worker without its broker
    # The workers disagree on the mode: no mode is in force for the whole group.
    assert value(merged, "aether_v2_mode", group="*", mode="open") == 0
    assert value(merged, "aether_v2_mode", group="*", mode="closed") == 0
    assert [family.name for family in merged] == [family.name for family in worker(0, 0)]


def test_merging_one_worker_changes_nothing():
    families = worker(3, 10, refused={"client-limit": 1})
    assert values(merge([families])) == values(families)


def test_merged_families_render_as_before():
    """The text format of a merge is the text format of one worker with the summed values."""
    merged = merge([worker(1, 2), worker(2, 3)])
    assert render(Fixed(merged)) == render(Fixed(worker(3, 5)))


def test_snapshots_round_trip_through_the_text_format():
    families = worker(3, 10, refused={"node-limit": 2})
    assert values(parse(render(Fixed(families)).decode())) == values(families)


def exited_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_snapshot(directory: Path, pid: int, families: list[Metric]) -> None:
    (directory / f"{pid}.prom").write_bytes(render(Fixed(families)))


def test_the_group_view_adds_live_workers_and_keeps_exited_workers_counters(tmp_path):
    local = registry_of(Fixed(worker(2, 20)))
    live, dead = os.getppid(), exited_pid()
    write_snapshot(tmp_path, live, worker(3, 30, refused={"client-limit": 1}))
    write_snapshot(tmp_path, dead, worker(5, 50, refused={"client-limit": 4}))
    write_snapshot(tmp_path, os.getpid(), worker(100, 100))  # our own: taken live instead
    group = GroupCollector(local, tmp_path, os.getpid())

    for _ in range(2):  # the exited worker is folded once, and counted once
        families = list(group.collect())
        assert value(families, "aether_connections") == 5  # live workers only
        assert value(families, "aether_connections_opened_total") == 100  # 20 + 30 + 50
        assert value(families, "aether_connections_refused_total", reason="client-limit") == 5
        assert value(families, "aether_workers") == 2
        assert not (tmp_path / f"{dead}.prom").exists()

    retired = parse((tmp_path / RETIRED).read_text())
    assert {family.type for family in retired} == {"counter"}

    write_snapshot(tmp_path, another := exited_pid(), worker(1, 7))
    families = list(group.collect())
    assert value(families, "aether_connections_opened_total") == 107
    assert not (tmp_path / f"{another}.prom").exists()


def test_a_single_worker_reads_its_own_numbers_live(tmp_path):
    local = registry_of(Fixed(worker(2, 20)))
    families = list(GroupCollector(local, tmp_path, os.getpid()).collect())
    assert value(families, "aether_connections") == 2
    assert value(families, "aether_workers") == 1


def test_a_snapshot_is_written_only_when_it_changed(tmp_path):
    collector = Fixed(worker(1, 1))
    writer = SnapshotWriter(registry_of(collector), tmp_path, 4242)
    writer.write()
    first = os.stat(writer.path).st_ino
    writer.write()
    assert os.stat(writer.path).st_ino == first  # os.replace would have made a new file
    collector.families = worker(2, 3)
    writer.write()
    assert os.stat(writer.path).st_ino != first
    assert value(parse(writer.path.read_text()), "aether_connections") == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["4242.prom"]  # no temp file


async def test_a_single_process_node_keeps_its_registry_and_writes_nothing(tmp_path):
    registry = registry_of(Fixed(worker(1, 1)))
    async with worker_group(registry, None) as shown:
        assert shown is registry


async def test_a_worker_writes_its_snapshot_at_once_and_at_the_end(tmp_path):
    collector = Fixed(worker(1, 1))
    async with worker_group(registry_of(collector), tmp_path) as shown:
        snapshot = tmp_path / f"{os.getpid()}.prom"
        assert value(parse(snapshot.read_text()), "aether_connections_opened_total") == 1
        assert value(list(shown.collect()), "aether_workers") == 1
        collector.families = worker(0, 9)
    assert value(parse(snapshot.read_text()), "aether_connections_opened_total") == 9


# -- a real ``--workers 2`` node ----------------------------------------------------------------


async def scrape(node) -> list[Metric]:
    """GET /metrics on a new TCP connection: any worker may answer."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{node.http}/metrics")
    response.raise_for_status()
    return parse(response.text)


def connections_per_worker(tmp: Path) -> list[float]:
    """Each worker's own count, from its snapshot (up to a second old)."""
    return [
        value(parse(path.read_text()), "aether_connections")
        for path in tmp.glob("aether-metrics-*/*.prom")
        if path.stem.isdigit()
    ]


@pytest.mark.timeout(30)
async def test_metrics_of_two_workers_show_the_whole_group(start_node, redis_url, tmp_path):
    tmp = tmp_path / "tmp"  # where serve() makes the metrics directory, to look at the split
    tmp.mkdir()
    node = start_node("--redis-url", redis_url, "--workers", "2", env={"TMPDIR": str(tmp)})

    async def both_workers_report() -> bool:
        return value(await scrape(node), "aether_workers") == 2

    await eventually(both_workers_report, 8.0)

    sockets: list[ClientConnection] = []

    async def snapshots_caught_up() -> bool:
        return sum(connections_per_worker(tmp)) == len(sockets)

    async def metrics_show_the_total() -> bool:
        return value(await scrape(node), "aether_connections") == len(sockets)

    try:
        # Open sockets until both workers hold some, so one worker's share cannot pass for
        # the total (the kernel, not us, picks the worker of each connection).
        while len(sockets) < 80:
            batch = 10 if sockets else 20
            sockets.extend(
                await asyncio.gather(
                    *(v3(node.ws, "g1", f"c{len(sockets) + n}") for n in range(batch))
                )
            )
            await eventually(snapshots_caught_up, 8.0)
            if all(count > 0 for count in connections_per_worker(tmp)):
                break
        shares = connections_per_worker(tmp)
        assert len(shares) == 2 and all(shares), shares

        await eventually(metrics_show_the_total, 8.0)
        for _ in range(6):  # whichever worker answers
            families = await scrape(node)
            assert value(families, "aether_connections") == len(sockets) > max(shares)
            assert value(families, "aether_connections_opened_total") == len(sockets)
            assert value(families, "aether_broker_ready") == 1
            assert value(families, "aether_workers") == 2
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
