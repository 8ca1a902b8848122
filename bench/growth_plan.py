"""The growth table's cells: which the machine can hold, and the session that measures each.

One cell is a group size, a number of nodes and connections per node. Its session (run as
``python -m bench`` runs its sessions, ``bench/session.py``) holds the cell's connections in
groups of the cell's size, every group split evenly across the nodes, every connection sending
in turn; after the connects, an idle step and then group messages at a fixed rate of deliveries.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.scenarios import Scenario, Step, spread

GROUPS = (10, 100, 1000)
NODES = (1, 2, 4)
CONNS = (1000, 5000, 19_000)
QUICK_NODES = (1, 2)
QUICK_CONNS = (1000,)

CONNS_PER_WORKER = 15_000  # a load-generator process stays well under the open-files limit
SOCKETS_BESIDE_CLIENTS = 200  # a node's listening socket, Redis connections, log, imports
SERVER_KIB_PER_CONN = 14  # measured: 13.2-13.3 KiB per idle connection (docs/performance.md)
CLIENT_KIB_PER_CONN = 24  # the load generator's side, with room to spare
PROCESS_MIB = 120  # a node or a worker before its connections
QUIET_CORES = 0.3  # a node holding 19,000 idle connections uses about 0.1 (docs/performance.md)
MEMORY_SHARE = 0.7  # of MemAvailable: the rest is the other sessions' on a shared machine


@dataclass(frozen=True, order=True)
class Cell:
    """One measurement: ``group_size`` members per group, ``nodes`` nodes, each holding
    ``conns_per_node`` connections."""

    group_size: int
    nodes: int
    conns_per_node: int

    @property
    def total(self) -> int:
        return self.nodes * self.conns_per_node

    @property
    def groups(self) -> int:
        return self.total // self.group_size

    @property
    def key(self) -> str:
        """A Vision-ID-safe name: the session's scenario name and its clients' ID prefix."""
        return f"g{self.group_size}-n{self.nodes}-c{self.conns_per_node}"

    @property
    def series(self) -> str:
        return f"{self.nodes} node{'s' * (self.nodes > 1)} × {self.conns_per_node:,}"


@dataclass(frozen=True)
class Limits:
    """What this machine lets one run hold."""

    open_files: int  # per process
    ephemeral_ports: int  # local ports for connections from 127.0.0.1 to one node's port
    memory_bytes: int  # available now

    @classmethod
    def here(cls) -> Limits:
        import resource

        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        available = 0
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
        return cls(
            resource.getrlimit(resource.RLIMIT_NOFILE)[1], int(high) - int(low) + 1, available
        )


def workers_for(total: int) -> int:
    """Load-generator processes for ``total`` connections: at least two."""
    return max(2, math.ceil(total / CONNS_PER_WORKER))


def memory_needed(cell: Cell) -> int:
    """Bytes the nodes, the workers and their connections would take, with room to spare."""
    processes = cell.nodes + workers_for(cell.total)
    per_conn = (SERVER_KIB_PER_CONN + CLIENT_KIB_PER_CONN) * 1024
    return processes * PROCESS_MIB * 2**20 + cell.total * per_conn


def why_not(cell: Cell, limits: Limits) -> str | None:
    """Why this machine cannot measure ``cell``, or ``None`` if it can.

    The clients connect without binding a port first, so the kernel picks the local port per
    destination: every node's port has the whole ephemeral range to itself.
    """
    if cell.group_size > cell.total:
        return f"a group of {cell.group_size:,} needs more than {cell.total:,} connections"
    if cell.conns_per_node + SOCKETS_BESIDE_CLIENTS > limits.open_files:
        return (
            f"a node would hold {cell.conns_per_node:,} sockets; "
            f"a process may open {limits.open_files:,} files"
        )
    if cell.conns_per_node > limits.ephemeral_ports:
        return (
            f"{cell.conns_per_node:,} connections to one port need more than the "
            f"{limits.ephemeral_ports:,} local ports of 127.0.0.1"
        )
    need, have = memory_needed(cell), limits.memory_bytes * MEMORY_SHARE
    if need > have:
        return f"needs about {need / 2**30:.1f} GiB; {have / 2**30:.1f} GiB can be spared"
    return None


def plan(
    groups: Iterable[int], nodes: Iterable[int], conns: Iterable[int], limits: Limits
) -> list[tuple[Cell, str | None]]:
    """Every cell of the grid, smallest first, with the reason it cannot run (or ``None``)."""
    cells = sorted(Cell(g, n, c) for g in groups for n in nodes for c in conns)
    return [(cell, why_not(cell, limits)) for cell in cells]


@dataclass(frozen=True)
class Timing:
    """The steps' lengths and the rate of deliveries every cell is measured at."""

    deliveries_per_s: float
    warmup_s: float
    measure_s: float

    @classmethod
    def of(cls, quick: bool, rate: float | None) -> Timing:
        if quick:
            return cls(rate or 5_000.0, 0.5, 2.0)
        return cls(rate or 20_000.0, 1.0, 5.0)


def scenario(cell: Cell, timing: Timing) -> Scenario:
    """The session of one cell: its connections, then an idle step and a fixed-rate step."""
    conns = spread(cell.total, cell.groups, cell.nodes, f"{cell.key}-")
    steps = (
        Step("idle", "idle", 0.0, timing.measure_s),
        Step(
            "rate",
            "rate",
            timing.warmup_s,
            timing.measure_s,
            rate=timing.deliveries_per_s / cell.group_size,
        ),
    )
    return Scenario(
        cell.key,
        f"{cell.series}, groups of {cell.group_size:,}",
        conns,
        cell.nodes,
        steps,
        ("project",),
        connect_concurrency=100,
        settle_s=2.0,
        drain_s=1.0,
        connect_timeout_s=120.0 + cell.total / 200 + presence_frames(cell) / 50_000,
        quiet_cores=QUIET_CORES,
    )


def presence_frames(cell: Cell) -> int:
    """At most the frames the connects send: each announces its join to its group's members."""
    return cell.total * cell.group_size
