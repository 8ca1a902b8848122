"""``python -m bench.recovery_cost``: what a V3 recovery of 1,000 messages costs.

One ``aether-bridge serve`` node (history on, the shipped defaults; inbound rate limit off so a
publisher can send 1,000 messages at once) on a throwaway Redis. In one group:

- ``P`` publishes; ``K`` is a second connection of the recovering client ``A`` (another tab), so
  that ``A``'s disconnect is not a presence leave (a leave is a message of the group stream too,
  and would take one of the history's slots: ``--alone`` leaves it out to show that case);
- ``A`` takes its position (``offset``, ``epoch``) from a marker message ``P`` sends, closes,
  ``P`` publishes ``--messages`` messages and waits for its own copies (so all are in history),
  then ``A`` reconnects with ``?recover=group:<epoch>:<offset>`` and sends a heartbeat.

Measured from the reconnect until the last replayed message and the heartbeat's echo (the echo
comes after the replay: the node reads no frame before it): wall time to the handshake, the
first and the last replayed message; the node's CPU time (schedstat of its threads, ns, where
``utime+stime`` of ``/proc/<pid>/stat`` would tick at 10 ms); Redis' CPU from ``INFO cpu``
(``used_cpu_sys + used_cpu_user``) and from its schedstat. A *control* reconnect, the same
but with nothing published while ``A`` was away (a recovery of 0 messages), runs in every
round; *net* is full minus control: the replay alone, without the handshake and the empty
history read. The two alternate in ABBA order over ``--repeat`` rounds (after one warm-up
round), and the medians are printed. Every full round checks that exactly the messages
published arrive, in order, at offsets ``offset+1``, ``offset+2``, ... and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench import procs, revision
from bench.dialects import BODY, V3
from bench.systems import SRC_ENV, _project
from bench.wsclient import BenchConnection

GROUP = "recg"
HEARTBEAT = b'{"msg_type":"heartbeat","target":"echo"}'
TIMEOUT_S = 30.0


class Client(BenchConnection):
    """A connection that keeps every text frame it receives, with its arrival time."""

    def __init__(self, url: str) -> None:
        super().__init__(0, url, V3, {}, lambda _i, _p: None)
        self.frames: list[tuple[int, bytes]] = []
        self.msgs = 0  # frames with msg_type "msg"
        self.heartbeats = 0
        self.want_msgs = self.want_heartbeats = 0
        self.done = asyncio.get_running_loop().create_future()
        self.lost = asyncio.get_running_loop().create_future()

    def _on_text(self, data: bytes) -> None:
        self.frames.append((time.monotonic_ns(), data))
        if b'"msg_type":"msg"' in data:
            self.msgs += 1
        elif b'"msg_type":"heartbeat"' in data:
            self.heartbeats += 1
        self._check()

    def expect(self, msgs: int, heartbeats: int) -> asyncio.Future[None]:
        """A future done once ``msgs`` messages and ``heartbeats`` echoes have come."""
        self.want_msgs, self.want_heartbeats = msgs, heartbeats
        self.done = asyncio.get_running_loop().create_future()
        self._check()
        return self.done

    def _check(self) -> None:
        if (
            not self.done.done()
            and self.msgs >= self.want_msgs
            and self.heartbeats >= self.want_heartbeats
        ):
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.lost.done():
            self.lost.set_result(None)


async def open_client(port: int, client_id: str, query: str = "") -> Client:
    url = f"ws://127.0.0.1:{port}/v3/ws/group/{GROUP}/client/{client_id}{query}"
    conn = Client(url)
    await asyncio.get_running_loop().create_connection(lambda: conn, "127.0.0.1", port)
    await asyncio.wait_for(conn.ready, TIMEOUT_S)
    return conn


def message(n: int) -> bytes:
    return orjson.dumps({"msg_type": "msg", "target": "group", "payload": {"n": n, "body": BODY}})


@dataclass
class Figures:
    """One reconnect: ms of wall time and CPU, and what arrived."""

    kind: str
    connect_ms: float = 0.0  # to the end of the handshake
    first_ms: float = float("nan")  # to the first replayed message
    last_ms: float = float("nan")  # to the last replayed message
    echo_ms: float = 0.0  # to the heartbeat's echo (the window's end)
    node_ms: float = 0.0
    redis_info_ms: float = 0.0
    redis_sched_ms: float = 0.0
    replayed: int = 0
    problems: list[str] = field(default_factory=list)


def redis_info_cpu_s(port: int) -> float:
    """``used_cpu_sys + used_cpu_user`` of ``INFO cpu``, in seconds."""
    text = procs.redis_command(port, "INFO", "cpu").decode(errors="replace")
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return float(fields["used_cpu_sys"]) + float(fields["used_cpu_user"])


class Bench:
    def __init__(self, port: int, node_pid: int, redis: procs.Child, messages: int) -> None:
        self.port, self.node_pid, self.redis, self.messages = port, node_pid, redis, messages

    async def start(self, alone: bool) -> None:
        self.pub = await open_client(self.port, "pub")
        self.keep = None if alone else await open_client(self.port, "a")
        self.a = await open_client(self.port, "a")
        self.marks = 0

    async def position(self) -> tuple[str, int]:
        """Where ``A`` is: the marker ``P`` sends, as ``A`` receives it."""
        self.marks += 1
        before = self.a.msgs
        waiting = self.a.expect(before + 1, 0)
        self.pub.send(message(-self.marks))
        await asyncio.wait_for(waiting, TIMEOUT_S)
        last = orjson.loads(next(d for _, d in reversed(self.a.frames) if b'"msg_type":"msg"' in d))
        return last["epoch"], last["offset"]

    async def reconnect(self, full: bool) -> Figures:
        epoch, offset = await self.position()
        self.a.close()
        await asyncio.wait_for(self.a.lost, TIMEOUT_S)
        await asyncio.sleep(0.1)
        n = self.messages if full else 0
        if n:
            echoes = self.pub.expect(self.pub.msgs + n, 0)
            for i in range(n):
                self.pub.send(message(i))
            await asyncio.wait_for(echoes, TIMEOUT_S)
        await asyncio.sleep(0.3)  # the node writes to K, and settles
        tree = procs.process_tree(self.node_pid)
        node0, info0 = procs.cpu_ns(tree), redis_info_cpu_s(self.redis.port)
        sched0 = procs.cpu_ns([self.redis.pid])
        t0 = time.monotonic_ns()
        self.a = await open_client(self.port, "a", f"?recover=group:{epoch}:{offset}")
        t_open = time.monotonic_ns()
        waiting = self.a.expect(0, 1)
        self.a.send(HEARTBEAT)
        await asyncio.wait_for(waiting, TIMEOUT_S)
        with contextlib.suppress(TimeoutError):  # a replay short of n (a gap): _check says so
            await asyncio.wait_for(self.a.expect(n, 1), 1.0)
        t_end = time.monotonic_ns()
        node1, info1 = procs.cpu_ns(tree), redis_info_cpu_s(self.redis.port)
        sched1 = procs.cpu_ns([self.redis.pid])
        figures = Figures(
            "full" if full else "control",
            connect_ms=(t_open - t0) / 1e6,
            echo_ms=(t_end - t0) / 1e6,
            node_ms=(node1 - node0) / 1e6,
            redis_info_ms=(info1 - info0) * 1e3,
            redis_sched_ms=(sched1 - sched0) / 1e6,
        )
        self._check(figures, epoch, offset, n, t0)
        return figures

    def _check(self, figures: Figures, epoch: str, offset: int, n: int, t0: int) -> None:
        """Exactly messages 0..n-1, in order, before the echo; every frame with a position at
        offsets offset+1, offset+2, ... With ``--alone`` the client's own leave comes first."""
        got, positioned, others = [], [], []
        for at, data in self.a.frames:
            frame = orjson.loads(data)
            kind = frame.get("msg_type")
            if "offset" in frame:
                positioned.append(frame)
            if kind == "msg":
                got.append((at, frame))
            elif kind == "presence" and self.keep is None and frame["payload"]["client_id"] == "a":
                continue  # its own leave, in the stream when no other connection holds "a"
            elif kind != "heartbeat":
                others.append(f"{kind}: {data[:120]!r}")
        figures.replayed = len(got)
        if got:
            figures.first_ms = (got[0][0] - t0) / 1e6
            figures.last_ms = (got[-1][0] - t0) / 1e6
        numbers = [f["payload"].get("n") for _, f in got]
        if numbers != list(range(n)):
            head = numbers[:5]
            figures.problems.append(f"{len(numbers)} messages, not 0..{n - 1} in order: {head}")
        offsets = [f["offset"] for f in positioned]
        if offsets != list(range(offset + 1, offset + 1 + len(offsets))):
            figures.problems.append(f"offsets not {offset + 1}, {offset + 2}, ...: {offsets[:5]}")
        if any(f.get("epoch") != epoch for f in positioned):
            figures.problems.append(f"an epoch other than {epoch}")
        if others:
            figures.problems.append(f"{len(others)} other frame(s), first: {others[0]}")
        if self.a.frames and b'"msg_type":"heartbeat"' not in self.a.frames[-1][1]:
            figures.problems.append("the heartbeat's echo came before the replay's end")

    async def close(self) -> None:
        for conn in (self.a, self.keep, self.pub):
            if conn is not None:
                conn.close()
        await asyncio.sleep(0.2)
        for conn in (self.a, self.keep, self.pub):
            if conn is not None:
                conn.abort()


async def rounds(bench: Bench, repeat: int) -> list[tuple[Figures, Figures]]:
    """A warm-up pair, then ``repeat`` (full, control) pairs in ABBA order."""
    await bench.reconnect(full=True)
    await bench.reconnect(full=False)
    pairs = []
    for r in range(repeat):
        if r % 2 == 0:
            full = await bench.reconnect(full=True)
            control = await bench.reconnect(full=False)
        else:
            control = await bench.reconnect(full=False)
            full = await bench.reconnect(full=True)
        print(
            f"[recovery] round {r + 1}: {full.replayed} replayed, last at {full.last_ms:.1f} ms, "
            f"node {full.node_ms:.2f} ms (control {control.node_ms:.2f}), redis "
            f"{full.redis_info_ms:.2f} ms (control {control.redis_info_ms:.2f})"
            + (
                f"; PROBLEMS: {full.problems + control.problems}"
                if full.problems or control.problems
                else ""
            ),
            file=sys.stderr,
        )
        pairs.append((full, control))
    return pairs


def _median(values: list[float]) -> str:
    values = [v for v in values if v == v]
    return f"{statistics.median(values):.2f}" if values else "–"


def report(pairs: list[tuple[Figures, Figures]], messages: int, command: str, code: str) -> str:
    full = [f for f, _ in pairs]
    ctrl = [c for _, c in pairs]
    net_node = [f.node_ms - c.node_ms for f, c in pairs]
    net_info = [f.redis_info_ms - c.redis_info_ms for f, c in pairs]
    net_sched = [f.redis_sched_ms - c.redis_sched_ms for f, c in pairs]
    info = procs.machine_info()
    rows: list[tuple[str, list[float], list[float], list[float]]] = [
        (
            "connect → handshake done, ms",
            [f.connect_ms for f in full],
            [c.connect_ms for c in ctrl],
            [],
        ),
        ("connect → first replayed message, ms", [f.first_ms for f in full], [], []),
        (f"connect → message {messages:,} (last), ms", [f.last_ms for f in full], [], []),
        (
            "connect → heartbeat echo (window end), ms",
            [f.echo_ms for f in full],
            [c.echo_ms for c in ctrl],
            [],
        ),
        ("node CPU, ms", [f.node_ms for f in full], [c.node_ms for c in ctrl], net_node),
        (
            "Redis CPU (INFO cpu), ms",
            [f.redis_info_ms for f in full],
            [c.redis_info_ms for c in ctrl],
            net_info,
        ),
        (
            "Redis CPU (schedstat), ms",
            [f.redis_sched_ms for f in full],
            [c.redis_sched_ms for c in ctrl],
            net_sched,
        ),
    ]
    lines = [
        f"## Recovery of {messages:,} messages (median of {len(pairs)} rounds)",
        "",
        f"- command: `{command}`",
        f"- project code: {code}",
        f"- machine: {info['cpu']}, nproc {info['nproc']}, {info['memory']}, "
        f"kernel {info['kernel']}",
        "",
        f"| figure | recovery of {messages:,} | control (0 to replay) | net (difference) |",
        "|---|---:|---:|---:|",
    ]
    for name, a, b, net in rows:
        lines.append(f"| {name} | {_median(a)} | {_median(b)} | {_median(net)} |")
    per = statistics.median(net_node) * 1000 / messages
    redis_per = statistics.median(net_info) * 1000 / messages
    lines += [
        "",
        f"Net per replayed message: node {per:.2f} µs, Redis {redis_per:.2f} µs (INFO cpu).",
    ]
    problems = [p for f, c in pairs for p in f.problems + c.problems]
    lines.append(
        "Every round delivered exactly the messages published, in order, nothing else."
        if not problems
        else "PROBLEMS: " + "; ".join(dict.fromkeys(problems))
    )
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="aether-recovery-") as tmp:
            yield Path(tmp)
        return
    keep.mkdir(parents=True, exist_ok=True)
    yield keep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recovery_cost", description=__doc__)
    parser.add_argument("--messages", type=int, default=1000, help="messages to recover")
    parser.add_argument("--repeat", type=int, default=5, help="measured rounds (after a warm-up)")
    parser.add_argument("--history-size", type=int, help="AETHER_HISTORY_SIZE (default: shipped)")
    parser.add_argument(
        "--alone",
        action="store_true",
        help="no second connection of the recovering client: its leave is in the stream too",
    )
    parser.add_argument("--project-rev", help="measure this commit (git archive), not the tree")
    parser.add_argument("--project-src", type=Path, help="run the project from this tree")
    parser.add_argument("--logdir", type=Path, help="keep the node's and Redis' logs here")
    args = parser.parse_args(argv)
    procs.raise_fd_limit()
    env = {"AETHER_RATE_LIMIT": "0"}
    if args.history_size is not None:
        env["AETHER_HISTORY_SIZE"] = str(args.history_size)
    with _workdir(args.logdir) as tmp, procs.redis_server(tmp) as redis:
        if args.project_rev:
            tree, short = revision.unpack(args.project_rev, tmp)
            os.environ[SRC_ENV] = str(tree)
            code = f"commit {short} (unpacked with git archive)"
        elif args.project_src:
            os.environ[SRC_ENV] = str(args.project_src.resolve())
            code = f"source tree {args.project_src}"
        else:
            code = f"working tree at {revision.describe_working_tree()}"
        port = procs.free_port()
        node = procs.spawn(
            "node", _project(port, f"redis://127.0.0.1:{redis.port}/0"), port, tmp, env
        )
        try:
            procs.wait_port(port, node.proc, 30.0)
            pairs = _run(Bench(port, node.pid, redis, args.messages), args.repeat, args.alone)
        finally:
            procs.stop(node)
            errors = [
                line
                for line in node.log.read_text(errors="replace").splitlines()
                if "ERROR" in line or "Traceback" in line
            ]
    command = "python -m bench.recovery_cost " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    print(report(pairs, args.messages, command.strip(), code))
    if errors:
        print(f"The node logged {len(errors)} error line(s), first: {errors[0][:200]}")
    return 1 if errors or any(f.problems or c.problems for f, c in pairs) else 0


def _run(bench: Bench, repeat: int, alone: bool) -> list[tuple[Figures, Figures]]:
    async def go() -> list[tuple[Figures, Figures]]:
        await bench.start(alone)
        try:
            return await rounds(bench, repeat)
        finally:
            await bench.close()

    try:
        import uvloop
    except ImportError:
        return asyncio.run(go())
    return uvloop.run(go())


if __name__ == "__main__":
    sys.exit(main())
