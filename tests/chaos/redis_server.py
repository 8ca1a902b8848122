"""A redis-server the test owns outright: it can be killed, frozen and restarted on its port."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis.asyncio as aioredis
import redis.exceptions

from ..helpers import free_port


class RedisServer:
    """One throwaway redis-server on 127.0.0.1; never the developer's Redis on 6379."""

    def __init__(self, logfile: Path, port: int | None = None) -> None:
        self.logfile = logfile
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server not on PATH"
        self._binary = binary

    async def start(self, timeout: float = 10.0) -> None:
        """Start (or restart on the same port) and wait until it answers PING."""
        self._spawn()
        client = aioredis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    await client.ping()
                    return
                except (redis.exceptions.ConnectionError, OSError):
                    assert self.proc is not None
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                    await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    def _spawn(self) -> None:
        command = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--logfile", str(self.logfile)]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        """kill -9: no goodbye to any client."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """End the server whatever its state (a frozen one gets SIGCONT first)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.kill()
        self.proc.wait(5)

    def client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )
