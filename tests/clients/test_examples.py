"""The client examples in the docs are real: they are files here, shown verbatim, and run.

- ``examples/python_client.py`` (frontend guide section 14) runs against two real nodes: it
  lists members, sends, gets an error reply, sees another client, a platform command and
  presence, and rides out a node restart without losing or repeating a message.
- The README's minimal client runs against a real node.
- The guide's TypeScript client (``clients/typescript/examples/chat.ts``) is compiled and run
  against a real node; it and the migration guide's V3 version compile in the package's type
  tests (tests/clients/test_typescript_client.py), and the V2 snippet parses.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import aether_client

from ..conftest import ROOT, NodeProcess
from .conftest import npm_run

pytestmark = pytest.mark.cluster

GUIDE = ROOT / "docs" / "v3-frontend-guide.md"
MIGRATION = ROOT / "docs" / "migration-guide.md"
PYTHON_EXAMPLE = ROOT / "examples" / "python_client.py"
TS_EXAMPLES = ROOT / "clients" / "typescript" / "examples"


def code_blocks(markdown: Path, language: str) -> list[str]:
    return re.findall(
        rf"^```{language}\n(.*?)^```$", markdown.read_text(), re.MULTILINE | re.DOTALL
    )


def test_the_docs_show_the_example_files_verbatim() -> None:
    assert PYTHON_EXAMPLE.read_text() in code_blocks(GUIDE, "python")
    assert (TS_EXAMPLES / "chat.ts").read_text() in code_blocks(GUIDE, "ts")
    assert (TS_EXAMPLES / "readme.ts").read_text() in code_blocks(ROOT / "README.md", "ts")
    migration = code_blocks(MIGRATION, "ts")
    assert (TS_EXAMPLES / "migrated.ts").read_text() in migration
    assert (TS_EXAMPLES / "legacy-v2.js").read_text() in code_blocks(MIGRATION, "js")
    if node := shutil.which("node"):  # the V2 snippet is JavaScript that parses
        subprocess.run([node, "--check", str(TS_EXAMPLES / "legacy-v2.js")], check=True)


class Output:
    """Lines a subprocess prints (stdout and stderr merged), read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._changed.set()

    async def wait_for(self, pattern: str, timeout: float = 10.0) -> str:
        """The first line matching ``pattern``; fails with everything printed so far."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = next((line for line in self.lines if re.search(pattern, line)), None)
                    if found is not None:
                        return found
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"no line matching {pattern!r}:\n" + "\n".join(self.lines), False)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._task


async def run(*args: str) -> Output:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    return Output(proc)


async def test_the_guides_python_client_against_two_nodes_and_a_restart(
    start_node: Callable[..., NodeProcess], redis_url: str
) -> None:
    a = start_node("--redis-url", redis_url)
    b = start_node("--redis-url", redis_url)
    out = await run(str(PYTHON_EXAMPLE), f"{a.ws},{b.ws}", "team_a1", "device_py1")
    try:
        await out.wait_for(r"^online: \['device_py1'\]$")
        await out.wait_for(r"^msg from device_py1: Hello from Python$")
        await out.wait_for(r"^rejected \(spoofed-from-id\): from_id must be your own")
        async with (
            httpx.AsyncClient(base_url=b.http) as http,
            aether_client.connect(b.ws, group_id="team_a1", client_id="bob") as bob,
        ):
            await out.wait_for(r"^bob came online$")
            await bob.send_direct("device_py1", msg="hi from bob")
            await out.wait_for(r"^msg from bob: hi from bob$")
            body = {"msg_type": "cmd", "target": "group", "group_id": "team_a1", "cmd": "RELOAD_UI"}
            assert (await http.post("/v3/messages", json=body)).status_code == 202
            await out.wait_for(r"^cmd from the platform: RELOAD_UI$")

            # Node A restarts (SIGTERM: 1012); what is sent meanwhile is recovered from history.
            a.proc.send_signal(signal.SIGTERM)
            await out.wait_for(r"closed 1012 server restarting; reconnecting in")
            away = {"msg_type": "msg", "target": "group", "group_id": "team_a1"}
            for n in range(3):
                away["msg"] = f"while away {n}"
                assert (await http.post("/v3/messages", json=away)).status_code == 202
            await out.wait_for(r"^msg from the platform: while away 2$")
            await bob.send_group(msg="after the restart")
            await out.wait_for(r"^msg from bob: after the restart$")
        await out.wait_for(r"^bob went offline$")
    finally:
        await out.stop()
    print("the example printed:", *out.lines, sep="\n  ")
    messages = [line for line in out.lines if " from " in line]
    assert len(messages) == len(set(messages)), messages  # nothing twice across the reconnect
    assert [line for line in messages if "while away" in line] == [
        f"msg from the platform: while away {n}" for n in range(3)
    ]
    assert not [line for line in out.lines if line.startswith("refetch group")]  # recovered


async def test_the_readme_client_against_a_node(
    start_node: Callable[..., NodeProcess], redis_url: str
) -> None:
    node = start_node("--redis-url", redis_url)
    blocks = [b for b in code_blocks(ROOT / "README.md", "python") if "aether_client" in b]
    assert len(blocks) == 1, "the README's minimal client is one python block using aether_client"
    assert "ws://127.0.0.1:8000" in blocks[0]
    out = await run("-c", blocks[0].replace("ws://127.0.0.1:8000", node.ws))
    try:
        await out.wait_for(r"'event': 'join', 'client_id': 'device_x9'")
        await out.wait_for(r"msg='Hello team!'")
    finally:
        await out.stop()


async def test_the_guides_typescript_chat_against_a_node(
    ts_package: Path, start_node: Callable[..., NodeProcess], redis_url: str
) -> None:
    """examples/chat.ts, compiled as the docs show it, run by test/examples/run-chat.mjs (the
    global WebSocket: Node 22's, or `ws` put there on Node 20); it exits on its own after
    close()."""
    node_binary = shutil.which("node") or "node"
    compiled = npm_run([node_binary, "node_modules/typescript/bin/tsc", "-p", "test/examples"])
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    node = start_node("--redis-url", redis_url)
    proc = await asyncio.create_subprocess_exec(
        node_binary,
        "test/examples/run-chat.mjs",
        cwd=ts_package,
        env={**os.environ, "AETHER_NODE": node.ws},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = Output(proc)
    try:
        await out.wait_for(r"^members: device_ts1$")
        await out.wait_for(r"^message from device_ts1: Hello team!$")  # it was queued
        async with (
            httpx.AsyncClient(base_url=node.http) as http,
            aether_client.connect(node.ws, group_id="team_a1", client_id="bob") as bob,
        ):
            await out.wait_for(r"^notice: bob came online$")
            await bob.send_group(msg="hi all")
            await out.wait_for(r"^message from bob: hi all$")
            body = {"msg_type": "cmd", "target": "group", "group_id": "team_a1", "cmd": "RELOAD_UI"}
            assert (await http.post("/v3/messages", json=body)).status_code == 202
            await out.wait_for(r"^reload all$")
            await bob.send_direct("device_ts1", msg="bye")
            await out.wait_for(r"^closed$")
        assert await asyncio.wait_for(proc.wait(), 10) == 0  # nothing left scheduled
    finally:
        await out.stop()
    print("the example printed:", *out.lines, sep="\n  ")
