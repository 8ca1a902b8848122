"""The ops page in real headless Chromium, against two real node processes on Redis.

It opens /ops/ on node A with the API token entered on the page and sees both nodes; a legacy
client connects to node B and the page's V2 count rises within 2 s; that client's
untranslatable frame appears under dead letters; flipping the group to ``closed`` on the page
refuses the next legacy connect on node B. A screenshot is kept (its path is printed).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import websockets

from ..conftest import ROOT, NodeProcess
from ..helpers import MS, connect, eventually, recv_msg
from .cdp import browser_page, chromium_binary

TOKEN = "ops-test-token"
TOO_DEEP = "[" * 10_000 + "]" * 10_000
ROW_42 = '#groups tr[data-legacy="42"]'
ARTIFACTS = Path(os.environ.get("AETHER_ARTIFACTS_DIR", ROOT / ".artifacts"))


def text_of(selector: str) -> str:
    return f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent"


@pytest.mark.cluster
async def test_ops_page_in_chromium_against_two_nodes(
    start_node: Callable[..., NodeProcess], redis_url: str, tmp_path: Path
) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip(
            "Chromium not installed: the browser test needs it (Debian/Ubuntu: apt-get install -y "
            "chromium; or set AETHER_CHROMIUM to a Chrome/Chromium binary)"
        )
    env = {"AETHER_API_TOKEN": TOKEN}
    node_a = start_node("--redis-url", redis_url, env={**env, "AETHER_NODE_ID": "ops-a"})
    node_b = start_node("--redis-url", redis_url, env={**env, "AETHER_NODE_ID": "ops-b"})

    async with browser_page(binary, f"{node_a.http}/ops/") as page:
        for domain in ("Page", "Log", "Network", "Runtime"):
            await page.call(f"{domain}.enable")
        await page.call("Page.reload")  # every request and console entry from the start
        await page.wait_for("document.readyState === 'complete'")

        # Reads need the token: the page says so until it is entered.
        await page.wait_for(f"{text_of('#status')}.includes('API token')")
        await page.js(
            f"document.getElementById('token').value = {json.dumps(TOKEN)};"
            "document.getElementById('token-form').requestSubmit(); true"
        )
        await page.wait_for(f"{text_of('#status')}.startsWith('live')")
        assert await page.js("document.getElementById('token').value") == ""  # not kept there
        stored = "[localStorage.length, sessionStorage.length, document.cookie]"
        assert await page.js(stored) == [0, 0, ""]  # nor anywhere that outlives the page

        # 1. Both nodes listed.
        await page.wait_for("document.querySelectorAll('#nodes tbody tr').length === 2")
        nodes = await page.js(
            "[...document.querySelectorAll('#nodes tbody tr')].map(r => r.dataset.node)"
        )
        assert sorted(nodes) == ["ops-a", "ops-b"]
        assert await page.js(text_of("#total-v2")) == "0"

        # 2. A legacy client on node B: the V2 count rises within 2 s.
        legacy = await connect(node_b.ws, "/ws/group/42/client/7")
        seconds = await page.wait_for(f"{text_of('#total-v2')} === '1'", timeout=5)
        print(f"FIGURE ops page: V2 count rose {seconds:.2f} s after a legacy connect on node B")
        assert seconds <= 2.0
        await page.wait_for("document.querySelector('#groups tr[data-legacy=\"42\"]') !== null")
        assert await page.js(text_of(f"{ROW_42} .v2-clients")) == "1"

        # Presence of a chosen group (by its legacy integer), and some traffic for the chart.
        await page.js(
            "document.getElementById('presence-group').value = '42';"
            "document.getElementById('presence-form').requestSubmit(); true"
        )
        await page.wait_for("document.querySelectorAll('#presence li').length === 1")
        for n in range(3):
            await legacy.send(json.dumps({"msg": f"hello {n}"}))

        # 3. An untranslatable frame appears under dead letters.
        await legacy.send(TOO_DEEP)
        while (reply := await recv_msg(legacy))["type"] != "error":
            pass  # its own group messages come back first
        assert reply["data"]["code"] == "untranslatable"
        await page.wait_for(
            "document.querySelector('#dead-letters tr[data-code=\"untranslatable\"]') !== null",
            timeout=5,
        )
        dead = await page.js(text_of('#dead-letters tr[data-code="untranslatable"]'))
        assert "ops-b" in dead and "(42)" in dead and "(7)" in dead

        # 4. Flip the group to closed on the page (node A): node B refuses the next connect.
        await page.js(
            "(() => { const s = document.querySelector('#groups tr[data-legacy=\"42\"] select');"
            "s.focus(); s.value = 'closed'; s.dispatchEvent(new Event('change')); return true })()"
        )
        await page.wait_for(f"{text_of('#mode-result')}.includes('closed')")
        await page.wait_for(text_of(f"{ROW_42} .mode") + " === 'closed'")

        async def refused_on_b() -> bool:
            ws = await connect(node_b.ws, "/ws/group/42/client/8")
            try:
                while True:
                    await recv_msg(ws)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd is not None and closed.rcvd.code == 1008
            except TimeoutError:
                await ws.close()
                return False

        await eventually(refused_on_b, timeout=5000 * MS)
        await legacy.close()

        # The traffic chart drew the legacy group messages (rates are sampled every 5 s).
        await page.wait_for(
            "document.querySelector('#legend li[data-series=\"v2 group\"]') !== null", timeout=15
        )
        assert await page.js("document.querySelectorAll('#chart polyline').length") >= 1

        # The page ran under its CSP: nothing refused, nothing fetched from elsewhere.
        await page.wait_for(f"{text_of('#total-v2')} === '0'", timeout=5)
        shot = await page.screenshot(tmp_path / "ops-page.png")
        urls = [
            e["params"]["request"]["url"]
            for e in page.events
            if e["method"] == "Network.requestWillBeSent"
        ]
        problems = [
            e["params"]["entry"]
            for e in page.events
            if e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
        ]
    assert urls and all(u.startswith(node_a.http) for u in urls), urls
    csp = [p for p in problems if "Content Security Policy" in p.get("text", "")]
    assert not csp, csp
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240  (after the browser)
    kept = shutil.copy(shot, ARTIFACTS / "ops-page.png")
    print(f"ops page screenshot: {kept} ({shot.stat().st_size} bytes)")
