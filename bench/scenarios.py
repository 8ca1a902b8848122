"""Scenario catalogue: who connects where, and which load steps run on those connections.

Fan-out, heavy and saturation share one set of connections (three steps of one session) so a
full run stays near ten minutes; the report still gives each its own table.

The legacy scenario compares two client dialects inside one session: both populations stay
connected to the same server processes and the steps alternate which of them sends. Two
sessions back to back saw the machine's speed drift by ±40 %, far more than the difference
being measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

Mode = Literal["idle", "rate", "window"]


@dataclass(frozen=True, slots=True)
class ConnSpec:
    """One client connection: the node it dials, its group and client IDs, whether it sends.

    ``dialect`` overrides the system's (``None``), so one session can hold V3 and V2 clients.
    ``population`` names the connection's side in an A/B session whose two sides speak the
    same dialect (a step's ``senders`` then names it instead of a dialect).
    """

    index: int
    node: int
    group_id: str
    client_id: str
    sender: bool = True
    dialect: str | None = None
    population: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """A load step: ``warmup_s`` unmeasured, then ``measure_s`` measured, then a drain gap.

    ``rate`` is cluster-wide messages/s (mode ``rate``); ``window`` is the number of messages in
    flight across all workers (mode ``window``: the next is sent when the sender sees its own copy,
    so "as fast as possible" stays a closed loop instead of an unbounded queue).

    ``senders`` names a dialect (or a connection's ``population``): only sender connections
    speaking it (or of it) send in this step, and the rate is theirs alone (``None``: every
    sender). It lets an A/B comparison alternate between client populations in one session.
    """

    name: str
    mode: Mode
    warmup_s: float
    measure_s: float
    rate: float = 0.0
    window: int = 0
    senders: str | None = None


@dataclass(frozen=True, slots=True)
class StepWindow:
    """Absolute CLOCK_MONOTONIC times (ns) of one step, shared by workers and coordinator."""

    start: int
    measure_start: int
    end: int


@dataclass(frozen=True)
class Scenario:
    """Connections, nodes and steps, plus the systems that run it.

    ``node_env`` adds to the environment of node ``n`` its ``n``-th entry (over the system's
    own), so one session can hold nodes configured two ways.
    """

    name: str
    title: str
    conns: tuple[ConnSpec, ...]
    nodes: int
    steps: tuple[Step, ...]
    systems: tuple[str, ...]
    storm: bool = False
    connect_concurrency: int = 100
    settle_s: float = 1.0
    drain_s: float = 1.5
    node_env: tuple[tuple[tuple[str, str], ...], ...] = ()
    connect_timeout_s: float = 120.0  # for all connections to open; tens of thousands need more
    # After settle_s, also wait (up to connect_timeout_s) until no node uses more than this
    # share of a core: what a big connect leaves behind must not land in the first step. 0: no.
    quiet_cores: float = 0.0


def timeline(steps: tuple[Step, ...], t0: int, drain_s: float) -> list[StepWindow]:
    """Lay the steps end to end from ``t0``; each is followed by ``drain_s`` without sending."""
    windows, cursor = [], t0
    for step in steps:
        measure_start = cursor + int(step.warmup_s * 1e9)
        end = measure_start + int(step.measure_s * 1e9)
        windows.append(StepWindow(cursor, measure_start, end))
        cursor = end + int(drain_s * 1e9)
    return windows


def dialect_of(conn: ConnSpec, default: str) -> str:
    """The dialect ``conn`` speaks: its own, else the system's (``default``)."""
    return conn.dialect or default


def sends_in(conn: ConnSpec, step: Step, default: str) -> bool:
    """Whether ``conn`` sends in ``step``: a sender, of the step's dialect (or population) if
    it names one."""
    side = conn.population or dialect_of(conn, default)
    return conn.sender and (step.senders is None or side == step.senders)


def step_shares(
    mine: Sequence[ConnSpec], every: Sequence[ConnSpec], steps: Sequence[Step], default: str
) -> tuple[float, ...]:
    """A worker's share of each step's cluster-wide rate or window.

    The share is the worker's senders in that step over the cluster's, so the cluster sends at
    the step's rate whichever workers hold the senders, and a worker holding none sends nothing.
    """
    shares = []
    for step in steps:
        total = sum(sends_in(c, step, default) for c in every)
        own = sum(sends_in(c, step, default) for c in mine)
        shares.append(own / total if total else 0.0)
    return tuple(shares)


def spread(n: int, groups: int, nodes: int, prefix: str) -> tuple[ConnSpec, ...]:
    """``n`` connections over ``groups`` groups, every group split evenly across ``nodes``."""
    return tuple(
        ConnSpec(i, (i // groups) % nodes, f"{prefix}g{i % groups:04d}", f"{prefix}c{i:05d}")
        for i in range(n)
    )


def noisy(n_busy: int, group_size: int, prefix: str) -> tuple[ConnSpec, ...]:
    """Node 0 (A) holds one silent connection; node 1 (B) holds every busy group."""
    silent = ConnSpec(0, 0, f"{prefix}silent", f"{prefix}quiet", sender=False)
    busy = tuple(
        ConnSpec(i + 1, 1, f"{prefix}g{i // group_size:04d}", f"{prefix}c{i:05d}")
        for i in range(n_busy)
    )
    return (silent, *busy)


def two_dialects(n: int, groups: int, nodes: int) -> tuple[ConnSpec, ...]:
    """``n`` V3 clients in ``f`` groups and ``n`` V2 clients in ``l`` groups, laid out alike.

    The V2 clients' indices follow the V3 clients' so every connection has its own (indices
    pick the worker and name the sender in each bench message).
    """
    v3 = tuple(replace(c, dialect="v3") for c in spread(n, groups, nodes, "f"))
    v2 = tuple(replace(c, index=c.index + n, dialect="v2") for c in spread(n, groups, nodes, "l"))
    return (*v3, *v2)


LEGACY_PAIR = ("v3", "v2")  # (A, B): the report gives B's CPU per delivery over A's
HISTORY_PAIR = ("off", "on")  # history off (A) against on (B), the history scenario
HISTORY_NODES = {"on": (0, 1), "off": (2, 3)}  # which nodes serve each side
# Deliveries/s of the history scenario's pairs: 1-4 at the first rate, 5-8 at the second.
HISTORY_RATES = (20_000, 40_000)
HISTORY_PAIRS_PER_RATE = 4


def history_rate(pair: int) -> int:
    """The deliveries/s of pair number ``pair`` (from 1) of the history scenario."""
    return HISTORY_RATES[min((pair - 1) // HISTORY_PAIRS_PER_RATE, len(HISTORY_RATES) - 1)]


def two_histories(n: int, groups: int) -> tuple[ConnSpec, ...]:
    """``n`` clients in ``groups`` groups on nodes 0 and 1 (history on) and ``n`` in other
    groups on nodes 2 and 3 (history off), laid out alike."""
    on = tuple(replace(c, population="on") for c in spread(n, groups, 2, "h"))
    off = tuple(
        replace(c, index=c.index + n, node=c.node + 2, population="off")
        for c in spread(n, groups, 2, "o")
    )
    return (*on, *off)


def ab_step_name(dialect: str, pair: int) -> str:
    """``v3-1``, ``v2-1``, ...: what the report looks the steps of one pair up by."""
    return f"{dialect}-{pair}"


def abba(pairs: int, a: str, b: str, first: int = 1) -> tuple[tuple[str, int], ...]:
    """(dialect, pair number) in the order A B, B A, A B, ..., pairs numbered from ``first``.

    Every two pairs put A and B at the same mean time, so a linear drift of the machine's speed
    weighs on both alike, and each pair's two steps are neighbours.
    """
    order: list[tuple[str, int]] = []
    for pair in range(first, first + pairs):
        one, two = (a, b) if (pair - first) % 2 == 0 else (b, a)
        order += [(one, pair), (two, pair)]
    return tuple(order)


def interleaved_steps(
    pairs: int, rate: float, warmup_s: float, measure_s: float, a: str, b: str, first: int = 1
) -> tuple[Step, ...]:
    """Rate steps that alternate the sending dialect, ``pairs`` pairs in ABBA order."""
    return tuple(
        Step(ab_step_name(d, n), "rate", warmup_s, measure_s, rate=rate, senders=d)
        for d, n in abba(pairs, a, b, first)
    )


# ``project-nohistory`` runs only when named (``--systems``), next to ``project``.
MULTI_NODE = (
    "project",
    "project-nohistory",
    "socketio",
    "socketio-node",
    "socketio-node-sharded",
    "v2global",
)
ALL_V3 = (*MULTI_NODE, "ws-ceiling")


def catalogue(quick: bool) -> dict[str, Scenario]:
    """Every scenario, sized for a full run or for a few-second ``--quick`` smoke check."""
    q = 0.2 if quick else 1.0
    n_fan, groups = (200, 10) if quick else (1000, 20)
    per_group = n_fan // groups

    def load_steps() -> tuple[Step, ...]:
        # Saturation is a closed loop and leaves no backlog; heavy goes last because a system
        # that cannot keep up with it leaves one (and Redis may drop its subscriber).
        return (
            Step("fan-out", "rate", 1.0 * q, 5.0 * q, rate=10_000 / per_group),
            Step("saturation", "window", 2.0 * q, 8.0 * q, window=64),
            Step("heavy", "rate", 1.0 * q, 8.0 * q, rate=20_000 / per_group),
        )

    fan = spread(n_fan, groups, 2, "f")
    idle_small, idle_big = (200, 1000) if quick else (1000, 10_000)
    n_noisy = 100 if quick else 500
    scenarios = [
        Scenario(
            "fanout",
            f"Fan-out: {n_fan} connections, {groups} groups, 2 nodes",
            fan,
            2,
            load_steps(),
            ALL_V3,
        ),
        Scenario(
            "legacy",
            f"Legacy path: V3 and V2 clients interleaved in one session "
            f"({n_fan} + {n_fan} connections, {groups} + {groups} groups, 2 nodes)",
            two_dialects(n_fan, groups, 2),
            2,
            interleaved_steps(4, 20_000 / per_group, 0.5 * q, 3.0 * q, *LEGACY_PAIR),
            ("project",),
            drain_s=1.0,  # keeps the session under a minute; late deliveries count by tag
        ),
        Scenario(
            "history",
            f"History on against off: two node pairs interleaved in one session "
            f"({n_fan} + {n_fan} connections, {groups} + {groups} groups, 2 + 2 nodes)",
            two_histories(n_fan, groups),
            4,
            tuple(
                step
                for i, rate in enumerate(HISTORY_RATES)
                for step in interleaved_steps(
                    HISTORY_PAIRS_PER_RATE,
                    rate / per_group,
                    0.5 * q,
                    3.0 * q,
                    *HISTORY_PAIR,
                    first=1 + i * HISTORY_PAIRS_PER_RATE,
                )
            ),
            ("project",),
            drain_s=1.0,
            # nodes 0 and 1 as shipped (history on), 2 and 3 with history off
            node_env=((), (), (("AETHER_HISTORY_SIZE", "0"),), (("AETHER_HISTORY_SIZE", "0"),)),
        ),
        Scenario(
            "noisy",
            "Noisy neighbour: node A holds one silent connection, node B the traffic",
            noisy(n_noisy, 5, "n"),
            2,
            (
                Step("idle", "idle", 0.0, 5.0 * q),
                Step("traffic", "rate", 1.0 * q, 8.0 * q, rate=2000.0),
            ),
            ("project", "project-nohistory", "v2global", "socketio-node", "socketio-node-sharded"),
        ),
        Scenario(
            "idle-small",
            f"Idle memory: {idle_small} connections, 1 node",
            spread(idle_small, idle_small // 20, 1, "i"),
            1,
            (),
            ALL_V3,
            settle_s=2.0,
        ),
        Scenario(
            "idle-big",
            f"Idle memory: {idle_big} connections, 1 node",
            spread(idle_big, idle_big // 20, 1, "j"),
            1,
            (),
            ALL_V3,
            settle_s=3.0,
            connect_concurrency=200,
        ),
        Scenario(
            "storm",
            f"Connect storm: {n_fan} connects at once to 1 node",
            spread(n_fan, groups, 1, "s"),
            1,
            (),
            ALL_V3,
            storm=True,
        ),
    ]
    return {s.name: s for s in scenarios}
