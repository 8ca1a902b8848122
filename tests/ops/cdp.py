"""Headless Chromium driven over the Chrome DevTools Protocol: a real browser, no extra deps.

The browser is started with ``--remote-debugging-port=0``; it writes the port it chose to
``DevToolsActivePort`` in its profile. We talk to the page's target over a WebSocket
(the ``websockets`` package the project already uses).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import httpx
import websockets

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_binary() -> str | None:
    if path := os.environ.get("AETHER_CHROMIUM"):
        return path
    return next((p for name in CHROMIUM_NAMES if (p := shutil.which(name))), None)


class Page:
    """One tab: evaluate JavaScript, collect events, take screenshots."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self._ws:
            message = json.loads(raw)
            if "id" in message and message["id"] in self._waiting:
                self._waiting.pop(message["id"]).set_result(message)
            elif "method" in message:
                self.events.append(message)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        done = self._waiting[call_id] = asyncio.get_running_loop().create_future()
        await self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(done, 15)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    async def js(self, expression: str) -> Any:
        """The value of ``expression`` (awaited if a promise)."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 10.0) -> float:
        """Poll until ``expression`` is truthy; the seconds it took."""
        started = time.monotonic()
        while not await self.js(expression):
            if time.monotonic() - started > timeout:
                raise AssertionError(f"not true within {timeout}s: {expression}")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def screenshot(self, path: Path) -> Path:
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
        return path

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._ws.close()


@contextlib.asynccontextmanager
async def browser_page(binary: str, url: str) -> AsyncIterator[Page]:
    """Headless Chromium showing ``url``; stopped on exit."""
    with (
        tempfile.TemporaryDirectory(
            prefix="aether-ops-chromium-",
            ignore_cleanup_errors=True,  # its helpers may still write
        ) as profile,
        tempfile.TemporaryFile() as log,
    ):
        proc = subprocess.Popen(  # noqa: ASYNC220  (starting it does not block)
            [
                binary,
                "--headless=new",
                "--no-sandbox",  # CI containers run as root
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--window-size=1400,1600",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            port = await _devtools_port(Path(profile), proc, log)
            page = await _attach(port, url)
            try:
                yield page
            finally:
                await page.close()
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def _devtools_port(profile: Path, proc: subprocess.Popen[bytes], log: IO[bytes]) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            stderr = log.read().decode(errors="replace")
            raise AssertionError(f"Chromium exited ({proc.returncode}):\n{stderr[-3000:]}")
        if marker.exists() and (lines := marker.read_text().splitlines()):
            return int(lines[0])
        await asyncio.sleep(0.05)
    raise AssertionError("Chromium never opened its DevTools port")


async def _attach(port: int, url: str) -> Page:
    deadline = time.monotonic() + 10
    async with httpx.AsyncClient() as http:
        while True:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"no page target for {url}: {targets}")
            await asyncio.sleep(0.05)
    ws = await websockets.connect(pages[0]["webSocketDebuggerUrl"], max_size=None)
    return Page(ws)
