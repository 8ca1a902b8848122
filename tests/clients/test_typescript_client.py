"""The TypeScript client (clients/typescript, ``@aether/ws-client``) against real nodes.

Once per session: ``npm ci`` from the committed package-lock.json, then ``npm run build`` (which
first checks that src/generated.ts matches docs/ws-message-v3.schema.json). Then:

- the package's own unit and type tests (``npm test``: a fake socket and fake timers, ``tsc`` over
  a file that must compile and one whose every line must fail);
- the failover scenario (test/integration/failover.mjs) against two ``aether-bridge serve``
  processes on the test Redis: every target and presence, then node A is killed when the script
  prints ``KILL A``; the client must reconnect to node B, recover, and see every message once, in
  order;
- the same package in headless Chromium, from a page served by a local HTTP server.

Skipped, with the reason, when ``node``/``npm`` (or, for the browser test, Chromium) are missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import NodeProcess
from .conftest import PACKAGE, npm_run

SCENARIO_TIMEOUT = 30.0  # seconds; the scenario itself gives up after 20 s


def test_unit_and_type_tests(ts_package: Path) -> None:
    result = npm_run([shutil.which("npm") or "npm", "test"], timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # node --test's summary, as TAP ("# pass 33") or spec (an info sign, then "pass 33") prints it
    summary = dict(re.findall(r"^(?:# |\u2139 )(tests|pass|fail) (\d+)$", output, re.MULTILINE))
    assert summary.get("fail") == "0" and int(summary.get("pass", 0)) >= 30, output


@pytest.mark.cluster
@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_failover_recovers_every_message_once_in_order(
    ts_package: Path,
    start_node: Callable[..., NodeProcess],
    redis_url: str,
    kill: signal.Signals,
) -> None:
    summary = await _failover(
        ts_package, start_node, redis_url, kill, shutil.which("node") or "node"
    )
    assert summary["runtime"]["websocket"] == "ws"


def _node_22() -> str | None:
    """A Node.js >= 22 binary: ``AETHER_NODE22``, or ``node`` on PATH when it is one."""
    for candidate in (os.environ.get("AETHER_NODE22"), shutil.which("node")):
        if candidate and _node_major(candidate) >= 22:
            return candidate
    return None


def _node_major(binary: str) -> int:
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return int(re.sub(r"^v(\d+).*", r"\1", version.strip()) or 0)


@pytest.mark.cluster
async def test_failover_on_node_22_with_its_global_websocket(
    ts_package: Path, start_node: Callable[..., NodeProcess], redis_url: str
) -> None:
    """The same scenario with no WebSocket passed in: the client takes Node 22's global one."""
    node = _node_22()
    if node is None:
        pytest.skip(
            "needs Node.js >= 22 (its global WebSocket): on PATH, or AETHER_NODE22=/path/to/node "
            "(e.g. the binary `npx -y node@22` installs)"
        )
    summary = await _failover(
        ts_package, start_node, redis_url, signal.SIGKILL, node, {"AETHER_WEBSOCKET": "global"}
    )
    assert summary["runtime"]["websocket"] == "global"
    assert int(summary["runtime"]["node"].lstrip("v").split(".")[0]) >= 22


async def _failover(
    ts_package: Path,
    start_node: Callable[..., NodeProcess],
    redis_url: str,
    kill: signal.Signals,
    node_binary: str,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run test/integration/failover.mjs against two nodes, killing A when it asks."""
    node_a = start_node("--redis-url", redis_url)
    node_b = start_node("--redis-url", redis_url)
    proc = await asyncio.create_subprocess_exec(
        node_binary,
        "test/integration/failover.mjs",
        cwd=ts_package,
        env={**os.environ, "AETHER_NODE_A": node_a.ws, "AETHER_NODE_B": node_b.ws, **(env or {})},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    lines: list[str] = []
    killed = False

    async def drive() -> int:
        nonlocal killed
        assert proc.stdin is not None and proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if line == "KILL A":
                node_a.proc.send_signal(kill)
                await asyncio.to_thread(node_a.proc.wait, 15)
                killed = True
                proc.stdin.write(b"killed\n")
                await proc.stdin.drain()
                proc.stdin.close()
        return await proc.wait()

    try:
        code = await asyncio.wait_for(drive(), SCENARIO_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(
            "the Node scenario did not exit in time (a hang, or a timer or socket left behind "
            "after close()):\n" + "\n".join(lines),
            pytrace=False,
        )
    finally:
        if not proc.stdin.is_closing():
            proc.stdin.close()
    output = "\n".join(lines)
    print("the scenario printed:", *lines, sep="\n  ")  # shown with -s / -rA
    assert killed, f"the scenario never asked for the kill:\n{output}"
    assert lines and lines[-1].startswith("PASS "), output
    assert code == 0, output
    summary: dict[str, Any] = json.loads(lines[-1].removeprefix("PASS "))
    expected_close = 1012 if kill == signal.SIGTERM else 1006
    assert summary["killed"]["code"] == expected_close, output
    assert summary["reconnectedTo"].startswith(node_b.ws), output
    assert set(summary["recover"]) == {"group", "client", "broadcast"}, output
    return summary


@pytest.mark.cluster
def test_tokens_and_refusals_that_are_not_retried(
    ts_package: Path, start_node: Callable[..., NodeProcess], redis_url: str
) -> None:
    secret = "test-secret-for-the-typescript-client"
    node = start_node("--redis-url", redis_url, env={"AETHER_AUTH_SECRET": secret})
    result = subprocess.run(
        [shutil.which("node") or "node", "test/integration/refusals.mjs"],
        cwd=ts_package,
        env={**os.environ, "AETHER_NODE": node.ws, "AETHER_AUTH_SECRET": secret},
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT,
    )
    output = result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1:] or [""]
    assert result.returncode == 0 and last[0].startswith("PASS "), output
    summary = json.loads(last[0].removeprefix("PASS "))
    assert [r["code"] for r in summary["refused"]] == [4501, 1008], output
    # Refused with the token as a subprotocol, the client sees the 4501 too (the gateway echoes
    # aether.bearer on a refusal; it did not before, and the handshake failed as 1006).
    print("refused via subprotocol:", summary["refusedViaSubprotocol"])
    assert summary["refusedViaSubprotocol"]["code"] == 4501, output


# --- browser ----------------------------------------------------------------------------------

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _chromium() -> str | None:
    if path := os.environ.get("AETHER_CHROMIUM"):
        return path
    return next((p for name in CHROMIUM_NAMES if (p := shutil.which(name))), None)


class _ResultServer(http.server.ThreadingHTTPServer):
    """Serves the package directory; the page POSTs its result to /result, and /kill-a."""

    daemon_threads = True
    result: dict[str, Any] | None
    received: threading.Event
    kill_a: Callable[[], None]


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _ResultServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(PACKAGE), **kwargs)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/kill-a":
            self.server.kill_a()
        else:
            self.server.result = json.loads(body)
            self.server.received.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _page_server() -> Iterator[_ResultServer]:
    server = _ResultServer(("127.0.0.1", 0), _Handler)
    server.result = None
    server.received = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.cluster
def test_browser_page_uses_the_built_package(
    ts_package: Path, start_node: Callable[..., NodeProcess], redis_url: str
) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip(
            "Chromium not installed: the browser test needs it (Debian/Ubuntu: apt-get install -y "
            "chromium; or set AETHER_CHROMIUM to a Chrome/Chromium binary)"
        )
    node_a = start_node("--redis-url", redis_url)
    node_b = start_node("--redis-url", redis_url)

    def kill_a() -> None:
        node_a.proc.kill()
        node_a.proc.wait(10)

    with (
        _page_server() as server,
        tempfile.TemporaryDirectory(
            prefix="aether-chromium-",
            ignore_cleanup_errors=True,  # its helpers may still write
        ) as profile,
    ):
        server.kill_a = kill_a
        port = server.server_address[1]
        page = f"http://127.0.0.1:{port}/test/browser/index.html?a={node_a.ws}&b={node_b.ws}"
        browser = subprocess.Popen(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",  # CI containers run as root
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",  # keeps headless Chromium running until killed
                page,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            got = server.received.wait(25)
        finally:
            browser.terminate()
            try:
                _, stderr = browser.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                browser.kill()
                _, stderr = browser.communicate()
        log = stderr.decode(errors="replace")[-3000:]
        assert got, f"the page never reported (Chromium's log tail):\n{log}"
    result = server.result
    assert result is not None
    print("the page listed:", *result.get("received", []), sep="\n  ")  # shown with -s / -rA
    assert result["ok"], json.dumps(result, indent=2)
    # What the page listed, as a human would read it off the page.
    assert {"group", "direct", "broadcast", "echo", "presence", "members", "failover"} <= set(
        result["covered"]
    ), result
    assert result["closeCode"] == 1006, result  # what a browser reports for a killed node
    assert result["reconnectedTo"].startswith(node_b.ws), result
