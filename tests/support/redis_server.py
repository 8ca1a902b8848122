"""A throwaway redis-server on a free loopback port: the one launcher of the tests and bench.

It imports nothing from pytest, so ``bench`` starts its Redis with it too. A test may kill,
freeze and restart the server on its port; persistence is off, so a restart starts empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis.asyncio as aioredis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (Redis' ``port 0`` means no TCP)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_command(port: int, *args: str, timeout: float = 5.0) -> bytes:
    """Send one RESP command and return the raw first reply (enough for PING and FLUSHALL)."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.create_connection(("127.0.0.1", port), timeout) as sock:
        sock.sendall(b"".join(parts))
        return sock.recv(65536)


class _ExitedAtOnce(RuntimeError):
    """redis-server exited before it answered (most often: its port was taken)."""


class RedisServer:
    """One redis-server process on 127.0.0.1; never the developer's Redis on 6379.

    ``extra`` adds server options (cluster mode, ``--maxclients``); ``cwd`` is where a cluster
    node writes its ``nodes.conf``; ``logfile`` keeps the server's log (else it is dropped).
    ``cluster_bus``: a cluster node, its bus on a port of its own (``bus_port``).

    Ports it picks itself may be taken between the pick and the bind (another process's
    outgoing connection): a first start that exits at once tries new ones (CI saw it once).
    """

    def __init__(
        self,
        logfile: Path | None = None,
        port: int | None = None,
        *,
        extra: Sequence[str] = (),
        cwd: Path | None = None,
        binary: str = "redis-server",
        cluster_bus: bool = False,
    ) -> None:
        self.logfile = logfile
        self._own_ports = port is None
        self._options = (binary, tuple(extra), cluster_bus)
        self.proc: subprocess.Popen[bytes] | None = None
        self._cwd = cwd
        self._pick_ports(port)

    def _pick_ports(self, port: int | None = None) -> None:
        binary, extra, cluster_bus = self._options
        self.port = port or free_port()
        self.bus_port = free_port() if cluster_bus else 0
        self.url = f"redis://127.0.0.1:{self.port}"
        self._argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        self._argv += ["--save", "", "--appendonly", "no", *extra]
        if cluster_bus:
            self._argv += ["--cluster-enabled", "yes", "--cluster-port", str(self.bus_port)]
        if self.logfile is not None:
            self._argv += ["--logfile", str(self.logfile)]

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart on the same port) and wait until it answers PING."""
        first = self.proc is None
        for attempt in range(3):
            try:
                self._start(timeout)
                return
            except _ExitedAtOnce:
                if not (first and self._own_ports) or attempt == 2:
                    raise
                self._pick_ports()

    def _start(self, timeout: float) -> None:
        if self._cwd is not None:
            self._cwd.mkdir(parents=True, exist_ok=True)
        # Its own session: a Ctrl-C meant for the run reaches the run, which then stops this.
        self.proc = subprocess.Popen(
            self._argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self._cwd,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None:
                raise _ExitedAtOnce(f"redis-server exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"redis-server on port {self.port} silent after {timeout} s")
            time.sleep(0.02)

    async def start_async(self, timeout: float = 10.0) -> None:
        """``start`` without blocking the event loop (a restart while clients run)."""
        await asyncio.to_thread(self.start, timeout)

    def _answers(self) -> bool:
        with contextlib.suppress(OSError):
            return redis_command(self.port, "PING", timeout=1.0).startswith(b"+PONG")
        return False

    def kill(self) -> None:
        """kill -9: no goodbye to any client."""
        assert self.proc is not None, "not started"
        self.proc.kill()
        self.proc.wait(5)

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, grace: float = 5.0) -> None:
        """End the server whatever its state: a frozen one is thawed, a stuck one killed."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(grace)

    def client(self) -> aioredis.Redis:
        """A fresh asyncio client with short timeouts and ``str`` replies; the caller closes it."""
        return aioredis.Redis.from_url(
            self.url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
