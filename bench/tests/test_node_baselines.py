"""The Node.js baselines: skipped with a line without ``node``; with it, a real Socket.IO peer.

The second half starts its own redis-server and the real ``server.js`` (classic and sharded
adapters) and speaks Engine.IO/Socket.IO to it over a real WebSocket, as the load generator
does; it is skipped when ``node`` is absent or ``npm ci`` cannot install the locked packages.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from bench import node_deps, procs
from bench.dialects import SOCKETIO, stamp_ns
from bench.run import drop_unavailable, main
from bench.systems import DEFAULT_SYSTEMS, SYSTEMS

NODE_SYSTEMS = ("socketio-node", "socketio-node-sharded")


@pytest.fixture
def path_without_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holding only redis-server and git (what a run needs besides node), no node/npm."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("redis-server", "git"):
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} not on PATH")
        (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert shutil.which("node") is None
    return tmp_path


def test_node_systems_are_socketio_and_in_the_default_run() -> None:
    for name in NODE_SYSTEMS:
        assert SYSTEMS[name].node
        assert SYSTEMS[name].dialect == "socketio"
        assert name in DEFAULT_SYSTEMS
    assert not SYSTEMS["socketio"].node


def test_without_node_the_node_systems_are_dropped_with_a_line(
    path_without_node: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = drop_unavailable({"project", *NODE_SYSTEMS})
    assert kept == {"project"}
    err = capsys.readouterr().err
    assert "skipping socketio-node, socketio-node-sharded" in err
    assert "`node` not found on PATH" in err
    assert drop_unavailable({"project", "socketio"}) == {"project", "socketio"}


def test_a_run_of_only_node_systems_without_node_ends_cleanly(
    path_without_node: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole ``python -m bench`` path: no crash, the skip said once, an empty report."""
    argv = ["--quick", "--scenarios", "idle-small", "--systems", ",".join(NODE_SYSTEMS)]
    assert main([*argv, "--logdir", str(path_without_node / "logs")]) == 0
    out, err = capsys.readouterr()
    assert err.count("skipping socketio-node, socketio-node-sharded") == 1
    assert "[bench] idle-small /" not in err
    assert "## Benchmark run" in out


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not on PATH")
    with procs.redis_server(tmp_path_factory.mktemp("redis")) as redis:
        yield f"redis://127.0.0.1:{redis.port}/0"


@pytest.fixture(scope="module")
def node_ready() -> None:
    reason = node_deps.ensure()
    if reason is not None:
        pytest.skip(reason)


async def _open(url: str, auth: dict[str, str]) -> tuple[ClientConnection, str]:
    ws = await connect(url, compression=None, open_timeout=10)
    opening = await asyncio.wait_for(ws.recv(), 10)
    assert isinstance(opening, str)
    assert opening.startswith("0")  # Engine.IO open
    assert "sid" in orjson.loads(opening[1:])
    await ws.send("40" + orjson.dumps(auth).decode())
    return ws, str(await asyncio.wait_for(ws.recv(), 10))


@pytest.mark.parametrize("name", NODE_SYSTEMS)
async def test_server_answers_socketio_like_the_python_baseline(
    name: str, node_ready: None, redis_url: str, tmp_path: Path
) -> None:
    port = procs.free_port()
    child = procs.spawn(name, SYSTEMS[name].argv(port, redis_url), port, tmp_path, {})
    try:
        procs.wait_port(port, child.proc, 20.0)
        url = f"ws://127.0.0.1:{port}{SOCKETIO.path}"
        # no group in the auth: refused with CONNECT_ERROR, as python-socketio does
        ws, reply = await _open(url, {"client": "x"})
        assert reply.startswith("44"), reply
        await ws.close()
        ws, reply = await _open(url, {"group": "g1", "client": "c1"})
        assert reply.startswith("40"), reply
        other, reply = await _open(url, {"group": "g2", "client": "c2"})
        assert reply.startswith("40"), reply
        await ws.send(SOCKETIO.frame(7, 3, 123).decode())
        frame = str(await asyncio.wait_for(ws.recv(), 10))
        received = SOCKETIO.bench_payload(frame.encode())
        assert received is not None, frame  # the load generator's own parse accepts it
        assert (received.payload["s"], received.payload["k"]) == (7, 3)
        event = orjson.loads(frame[2:])
        assert event[0] == "msg"
        message = event[1]
        assert {k: message[k] for k in ("version", "msg_type", "target")} == {
            "version": "3",
            "msg_type": "msg",
            "target": "group",
        }
        assert (message["from_id"], message["group_id"]) == ("c1", "g1")
        assert stamp_ns(message["sent_at"]) > 0
        assert len(message["sent_at"].split(".")[1]) == 7  # µs and Z, like Python's isoformat
        # another group's member gets nothing
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(other.recv(), 0.5)
        await ws.close()
        await other.close()
    finally:
        procs.stop(child)
