"""Child processes (redis-server, servers under test) and what /proc says about them.

CPU time comes from ``/proc/<pid>/task/*/schedstat`` (nanoseconds on CPU, per thread) because
``utime + stime`` in ``/proc/<pid>/stat`` ticks at 10 ms, too coarse for an idle node's share of a
few microseconds per message; ``stat`` is the fallback where schedstat is absent.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# One redis-server launcher for the tests and the bench; free_port and redis_command re-exported.
from tests.support.redis_server import RedisServer
from tests.support.redis_server import free_port as free_port
from tests.support.redis_server import redis_command as redis_command

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def raise_fd_limit() -> None:
    """Lift the soft open-files limit to the hard one; children (servers, workers) inherit it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll until something accepts on ``port``; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@dataclass
class Child:
    """A process we started: its Popen handle, the port it serves and where its output goes."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 20) -> str:
        """The end of the child's log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(name: str, argv: Sequence[str], port: int, logdir: Path, env: dict[str, str]) -> Child:
    """Start ``argv`` in its own session with output to ``logdir/name.log``."""
    log = logdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    return Child(name, proc, port, log)


def stop(child: Child, grace: float = 5.0) -> None:
    """SIGTERM the child (by pid), then SIGKILL after ``grace`` seconds."""
    if child.proc.poll() is not None:
        return
    child.proc.send_signal(signal.SIGTERM)
    try:
        child.proc.wait(grace)
    except subprocess.TimeoutExpired:
        child.proc.kill()
        child.proc.wait(grace)


@contextlib.contextmanager
def redis_server(logdir: Path) -> Iterator[Child]:
    """The tests' throwaway redis-server (no persistence, loopback only), room for many clients."""
    log = logdir / "redis.log"
    with RedisServer(log, extra=("--maxclients", "20000")) as server:
        assert server.proc is not None
        yield Child("redis", server.proc, server.port, log)


# -- /proc readers ------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (``--workers N`` servers fork children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_ns(pids: Sequence[int]) -> int:
    """CPU time consumed so far by ``pids`` (all threads), in nanoseconds."""
    total = 0
    for pid in pids:
        try:
            total += _schedstat_ns(pid)
        except (OSError, ValueError):
            with contextlib.suppress(OSError, IndexError):
                fields = _stat_fields(pid)
                total += (int(fields[11]) + int(fields[12])) * _TICK_NS
    return total


def _schedstat_ns(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            total += int((task / "schedstat").read_text().split()[0])
    if total == 0:
        raise ValueError("schedstat reports nothing")
    return total


def rss_bytes(pids: Sequence[int]) -> int:
    """Resident set size of ``pids`` in bytes (``/proc/<pid>/statm``)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    return total


def machine_jiffies() -> tuple[int, int, int]:
    """(busy, total, steal) jiffies of the whole machine from ``/proc/stat``.

    Steal is time the hypervisor ran something else while this VM wanted the CPU: it counts
    as busy, and no process of ours sees it, yet it delays every one of them.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total, fields[7]


def machine_info() -> dict[str, str]:
    """CPU model, core count, memory and kernel: the header of every report."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "nproc": str(len(os.sched_getaffinity(0))),
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": os.uname().release,
    }
