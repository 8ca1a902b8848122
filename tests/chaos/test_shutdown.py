"""Scenarios S1 and S2: SIGTERM drains a node quickly, even with a client that never reads."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import httpx
import pytest
import websockets

from ..conftest import NodeProcess
from ..helpers import presence
from .conftest import TTL, LaunchNode
from .rawws import RawWebSocket
from .traffic import Member

pytestmark = pytest.mark.chaos

CLIENTS = 100  # on the node that is stopped (full size: 200)


async def exit_time(node: NodeProcess, timeout: float = 15.0) -> float:
    """When the process exited (polled every 20 ms)."""
    async with asyncio.timeout(timeout):
        while True:
            if node.proc.poll() is not None:
                return time.monotonic()
            await asyncio.sleep(0.02)


async def new_connection_refused(base: str) -> bool:
    try:
        ws = await websockets.connect(f"{base}/v3/ws/group/g1/client/late", open_timeout=2)
    except (OSError, websockets.InvalidHandshake, TimeoutError):
        return True
    await ws.close()
    return False


async def wait_presence(http: httpx.AsyncClient, base: str, group: str, want: list[str]) -> float:
    async with asyncio.timeout(10):
        while True:
            got = (await http.get(f"{base}/v3/groups/{group}/presence")).json()["clients"]
            if got == want:
                return time.monotonic()
            await asyncio.sleep(0.05)


async def test_s1_sigterm_drains_with_1012(redis_url, launch: LaunchNode):
    """S1: SIGTERM: every client gets 1012 at once, presence empties, the process exits."""
    a = launch(redis_url, "nodeA")
    b = launch(redis_url, "nodeB")
    leaving = [await Member.open(a.ws, "g1", f"a{i:03d}") for i in range(CLIENTS)]
    staying = [await Member.open(b.ws, "g1", f"b{i}") for i in range(5)]
    survivors = sorted(m.name for m in staying)
    async with httpx.AsyncClient(timeout=2.0) as http:
        await wait_presence(http, b.http, "g1", sorted(m.name for m in leaving + staying))
        a.proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        # uvicorn closes its listening socket before it sends the first 1012.
        await leaving[0].wait_frame(lambda f: False, 0, 3.0)
        refused = await new_connection_refused(a.ws)
        presence_gone = await wait_presence(http, b.http, "g1", survivors)
        exited = await exit_time(a)
    await asyncio.gather(*(m.wait_frame(lambda f: False, 0, 3.0) for m in leaving))
    codes = {m.close_code for m in leaving}
    last_close = max(m.closed_at or 1e9 for m in leaving) - stopped
    leaves = {
        f["payload"]["client_id"]
        for _, f in staying[0].frames
        if f.get("msg_type") == "presence" and f["payload"].get("event") == "leave"
    }
    print(
        f"FIGURE S1 {CLIENTS} clients: last 1012 after {last_close:.2f} s, presence empty after "
        f"{presence_gone - stopped:.2f} s, exit after {exited - stopped:.2f} s"
    )
    assert codes == {1012}
    assert refused, "a node shutting down must stop accepting"
    assert last_close <= 1.0
    assert presence_gone - stopped <= 2.0
    assert exited - stopped <= 5.0
    # uvicorn re-raises the SIGTERM it handled once it is done, so the status is -SIGTERM.
    assert a.proc.returncode == -signal.SIGTERM
    assert "Application shutdown complete" in a.log.read_text()
    assert leaves == {m.name for m in leaving}
    assert all(m.closed_at is None for m in staying)
    for m in staying:
        await m.aclose()


async def test_s2_sigterm_with_a_stuck_writer(redis_url, launch: LaunchNode):
    """S2: one client with a full socket buffer cannot hold the shutdown past its bound."""
    # A slow-consumer policy this lax keeps the stuck client connected until SIGTERM.
    lax = {"AETHER_SEND_TIMEOUT": "60", "AETHER_QUEUE_MAX_BYTES": str(64 << 20)}
    a = launch(redis_url, "nodeA", **lax, AETHER_QUEUE_MAX_MESSAGES="100000")
    b = launch(redis_url, "nodeB")
    leaving = [await Member.open(a.ws, "g1", f"a{i:02d}") for i in range(20)]
    stuck = await RawWebSocket.connect(a.port, "/v3/ws/group/g2/client/stuck", rcvbuf=16384)
    feeder = await Member.open(b.ws, "g2", "feeder")
    pad = "x" * 16384
    for seq in range(512):  # 8 MiB: more than every buffer between the node and the client
        frame = {"msg_type": "msg", "target": "group", "payload": {"seq": seq, "pad": pad}}
        await feeder.ws.send(json.dumps(frame))
    await feeder.wait_frame(lambda f: (f.get("payload") or {}).get("seq") == 511, 0, 10.0)
    await asyncio.sleep(1.0)
    assert await presence(b.http, "g2") == ["feeder", "stuck"]
    a.proc.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    exited = await exit_time(a)
    orphans_at_exit = await presence(b.http, "g2")
    await asyncio.sleep(TTL + TTL / 3)
    orphans_later = await presence(b.http, "g2"), await presence(b.http, "g1")
    stuck.close()
    await asyncio.gather(*(m.wait_frame(lambda f: False, 0, 2.0) for m in leaving))
    print(
        f"FIGURE S2 exit with a stuck client after {exited - stopped:.2f} s "
        f"(graceful timeout 5 s); presence at exit {orphans_at_exit}"
    )
    assert exited - stopped <= 6.0
    assert {m.close_code for m in leaving} == {1012}
    assert orphans_at_exit == ["feeder"]
    assert orphans_later == (["feeder"], [])
    await feeder.aclose()


async def test_sigterm_drains_then_spreads_its_closes(redis_url, launch: LaunchNode):
    """AETHER_DRAIN_SECONDS: /readyz says 503 while every socket stays open; then the 1012s
    are spread over AETHER_CLOSE_SPREAD_SECONDS instead of coming in one instant."""
    drain, spread, clients = 1.0, 1.5, 40
    a = launch(
        redis_url,
        "nodeA",
        AETHER_DRAIN_SECONDS=str(drain),
        AETHER_CLOSE_SPREAD_SECONDS=str(spread),
    )
    members = [await Member.open(a.ws, "g1", f"c{i:02d}") for i in range(clients)]
    async with httpx.AsyncClient(timeout=2.0) as http:
        assert (await http.get(f"{a.http}/readyz")).status_code == 200
        a.proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        await asyncio.sleep(drain / 2)
        draining = await http.get(f"{a.http}/readyz")
    open_while_draining = sum(m.closed_at is None for m in members)
    await asyncio.gather(*(m.wait_frame(lambda f: False, 0, drain + spread + 3) for m in members))
    closes = sorted((m.closed_at or 1e9) - stopped for m in members)
    print(
        f"FIGURE drain {drain} s, spread {spread} s: first 1012 after {closes[0]:.2f} s, "
        f"last after {closes[-1]:.2f} s"
    )
    assert (draining.status_code, draining.json()["status"]) == (503, "draining")
    assert open_while_draining == clients
    assert {m.close_code for m in members} == {1012}
    assert closes[0] >= drain * 0.9
    assert closes[-1] - closes[0] >= spread * 0.6  # paced, not all at once
    assert closes[-1] <= drain + spread + 1.0


DRILL_CLIENTS = 1000


async def test_rolling_upgrade_drill(redis_url, launch: LaunchNode):
    """SIGTERM with drain and spread on a node of 1,000 clients: the 1012s are spread over
    the window, the node beside it absorbs the reconnects, and every client is back within
    the window plus 2 s."""
    drain, spread = 1.0, 4.0
    a = launch(
        redis_url,
        "nodeA",
        AETHER_DRAIN_SECONDS=str(drain),
        AETHER_CLOSE_SPREAD_SECONDS=str(spread),
    )
    b = launch(redis_url, "nodeB")
    closed: list[tuple[float, int | None]] = []
    back: list[float] = []
    stay_open = asyncio.Event()

    async def client(n: int, opened: asyncio.Event) -> None:
        path = f"/v3/ws/group/g{n % 20}/client/c{n}"
        async with websockets.connect(f"{a.ws}{path}", open_timeout=20, max_queue=None) as ws:
            opened.set()
            await ws.wait_closed()
            closed.append((time.monotonic(), ws.close_code))
        # A client library would back off a little; the drill reconnects at once.
        async with websockets.connect(f"{b.ws}{path}", open_timeout=10, max_queue=None):
            back.append(time.monotonic())
            await stay_open.wait()

    tasks, batch = [], []
    for n in range(DRILL_CLIENTS):
        opened = asyncio.Event()
        tasks.append(asyncio.create_task(client(n, opened)))
        batch.append(opened.wait())
        if len(batch) == 100:
            await asyncio.wait_for(asyncio.gather(*batch), 30)
            batch = []
    a.proc.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    window = drain + spread
    async with asyncio.timeout(window + 15):
        while len(back) < DRILL_CLIENTS:
            await asyncio.sleep(0.05)
            for task in tasks:
                if task.done():
                    task.result()  # a client that failed to reconnect fails the drill
    stay_open.set()
    await asyncio.gather(*tasks)
    closes = sorted(at - stopped for at, _ in closed)
    returns = sorted(at - stopped for at in back)
    print(
        f"FIGURE drill {DRILL_CLIENTS} clients, drain {drain} s + spread {spread} s: "
        f"1012s from {closes[0]:.2f} to {closes[-1]:.2f} s, "
        f"all back on the other node by {returns[-1]:.2f} s"
    )
    assert {code for _, code in closed} == {1012}
    assert closes[0] >= drain * 0.9
    assert closes[-1] - closes[0] >= spread * 0.75  # spread over the window, not one instant
    # No second of the window takes more than twice its share of the closes.
    per_second = [sum(1 for t in closes if s <= t - drain < s + 1) for s in range(int(spread))]
    assert max(per_second) <= 2 * DRILL_CLIENTS / spread, per_second
    assert returns[-1] <= window + 2.0
