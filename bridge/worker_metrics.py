"""``/metrics`` of a ``--workers N`` node: the whole process group, not the worker that answers.

prometheus-client's multiprocess mode needs Counter and Gauge objects writing mmap files; our
collectors read the manager's plain counters at scrape time (bridge/metrics.py). The
equivalent here: every worker renders its own families, in the text format /metrics serves, to
``<dir>/<pid>.prom`` once a second (a temp file, then ``os.replace``; no write while nothing
changed). The worker answering a scrape takes its own numbers live and adds every other live
worker's file (so theirs are up to a second old):

- counters are summed; so are gauges (``aether_connections``, ``aether_v2_connections``),
  except the state gauges of MIN_GAUGES, which show the minimum: ``aether_broker_ready`` is 1
  only while every worker has its broker, ``aether_v2_mode{group,mode}`` is 1 only where every
  worker applies that mode;
- ``aether_workers`` says how many workers' numbers the answer holds.

A worker that exited (its pid is gone) keeps its counters but not its gauges: the answering
worker folds its last counters into ``retired.prom`` and deletes its file, under a lock. So the
group's counters never go down (Prometheus would read a drop as a reset) and the directory holds
one file per live worker, plus one. ``aether-bridge serve`` makes the directory (AETHER_METRICS_DIR
for the workers) and removes it at exit. Single-process nodes do none of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import TypeAlias

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from .metrics import render

log = logging.getLogger("aether.metrics")

METRICS_DIR_ENV = "AETHER_METRICS_DIR"
SNAPSHOT_INTERVAL = 1.0  # seconds between a worker's snapshots
MIN_GAUGES = frozenset({"aether_broker_ready", "aether_v2_mode"})
RETIRED = "retired.prom"  # the counters of exited workers
_LOCK = "lock"

_SeriesKey: TypeAlias = tuple[str, tuple[tuple[str, str], ...]]


def merge(views: Iterable[Iterable[Metric]]) -> list[Metric]:
    """Several workers' families as one: each series summed, or its minimum for MIN_GAUGES.

    A series only some workers have is taken from those. Families and series keep the order
    they were first seen in.
    """
    families: dict[str, Metric] = {}
    series: dict[str, dict[_SeriesKey, tuple[dict[str, str], float]]] = {}
    for view in views:
        for family in view:
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                series[family.name] = {}
            values = series[family.name]
            lowest = family.type == "gauge" and family.name in MIN_GAUGES
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in values:
                    values[key] = (sample.labels, sample.value)
                    continue
                labels, value = values[key]
                values[key] = (
                    labels,
                    min(value, sample.value) if lowest else value + sample.value,
                )
    for name, family in families.items():
        for (sample_name, _), (labels, value) in series[name].items():
            family.add_sample(sample_name, labels, value)
    return list(families.values())


def counters(families: Iterable[Metric]) -> list[Metric]:
    return [family for family in families if family.type == "counter"]


def parse(text: str) -> list[Metric]:
    return list(text_string_to_metric_families(text))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: treat as alive (pids are rarely reused)
    return True


class _Families(Collector):
    """Fixed families, to render."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class SnapshotWriter:
    """Writes one worker's families to ``<directory>/<pid>.prom`` when they changed."""

    def __init__(self, registry: CollectorRegistry, directory: Path, pid: int) -> None:
        self._registry = registry
        self.path = directory / f"{pid}.prom"
        self._last = b""
        self._failing = False

    def write(self) -> None:
        data = render(self._registry)
        if data == self._last:
            return
        try:
            write_atomic(self.path, data)
        except OSError as exc:
            if not self._failing:  # once, not every second
                log.warning("cannot write the worker metrics snapshot %s: %s", self.path, exc)
            self._failing = True
            return
        self._last, self._failing = data, False


class GroupCollector(Collector):
    """This worker's live families plus every other worker's snapshot, merged."""

    def __init__(self, local: CollectorRegistry, directory: Path, pid: int) -> None:
        self._local = local
        self._dir = directory
        self._pid = pid

    def collect(self) -> Iterator[Metric]:
        views = [list(self._local.collect())]
        with self._locked():
            for path, pid in self._snapshots():
                if pid == self._pid:
                    continue
                families = _read(path)
                if pid_alive(pid):
                    if families is not None:
                        views.append(families)
                else:
                    self._retire(path, families)
            retired = _read(self._dir / RETIRED)
        workers = len(views)
        if retired is not None:
            views.append(retired)
        yield from merge(views)
        yield GaugeMetricFamily(
            "aether_workers", "worker processes whose numbers this answer sums", value=workers
        )

    def _retire(self, path: Path, families: list[Metric] | None) -> None:
        """Keep an exited worker's last counters in the retired file; forget its gauges."""
        if families is not None:
            retired = _read(self._dir / RETIRED) or []
            merged = merge([retired, counters(families)])
            write_atomic(self._dir / RETIRED, render(_Families(merged)))
        path.unlink(missing_ok=True)

    def _snapshots(self) -> Iterator[tuple[Path, int]]:
        for path in self._dir.glob("*.prom"):
            if path.stem.isdigit():
                yield path, int(path.stem)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Scrapes of several workers must not fold the same exited worker twice, nor read its
        # counters both in its file and in the retired file.
        with (self._dir / _LOCK).open("ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield  # closing the file releases the lock


def _read(path: Path) -> list[Metric] | None:
    try:
        return parse(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:  # not written by us: written atomically, a file is whole
        log.warning("ignoring unreadable metrics snapshot %s: %s", path, exc)
        return None


@contextlib.asynccontextmanager
async def worker_group(
    registry: CollectorRegistry, directory: Path | str | None
) -> AsyncIterator[CollectorRegistry]:
    """The registry /metrics renders.

    Without ``directory`` (a single-process node): ``registry`` itself, nothing else runs.
    With it (a ``--workers`` node): the group's view, while a task writes this worker's
    snapshot every SNAPSHOT_INTERVAL, and once more at the end for its last counters.
    """
    if directory is None:
        yield registry
        return
    directory, pid = Path(directory), os.getpid()
    writer = SnapshotWriter(registry, directory, pid)
    writer.write()
    task = asyncio.create_task(_keep_writing(writer))
    group = CollectorRegistry()
    group.register(GroupCollector(registry, directory, pid))
    try:
        yield group
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        writer.write()


async def _keep_writing(writer: SnapshotWriter) -> None:
    while True:
        await asyncio.sleep(SNAPSHOT_INTERVAL)
        writer.write()
