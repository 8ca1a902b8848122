"""Systems under test: how to start one node of each, and which dialect its clients speak."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import node_deps

Argv = Callable[[int, str], list[str]]


def _module(name: str, redis: bool) -> Argv:
    def argv(port: int, redis_url: str) -> list[str]:
        args = [sys.executable, "-m", name, "--port", str(port)]
        return [*args, "--redis-url", redis_url] if redis else args

    return argv


SRC_ENV = "AETHER_BENCH_PROJECT_SRC"
_FROM_SRC = "import sys; sys.path.insert(0, sys.argv.pop(1)); from bridge.cli import main; main()"


def project_command() -> list[str]:
    """``aether-bridge`` beside this interpreter (the bench venv), else on PATH.

    With ``$AETHER_BENCH_PROJECT_SRC`` (``--project-src``) the server is imported from that
    source tree instead, e.g. an older commit unpacked with ``git archive``, for before/after.
    """
    src = os.environ.get(SRC_ENV)
    if src:
        return [sys.executable, "-c", _FROM_SRC, src]
    local = Path(sys.executable).parent / "aether-bridge"
    if local.exists():
        return [str(local)]
    found = shutil.which("aether-bridge")
    return [found] if found else [sys.executable, "-c", "from bridge.cli import main; main()"]


def _project(port: int, redis_url: str) -> list[str]:
    return [
        *project_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--redis-url",
        redis_url,
        "--log-level",
        "warning",
    ]


def _node(adapter: str) -> Argv:
    def argv(port: int, redis_url: str) -> list[str]:
        node = node_deps.node_path() or "node"
        server = str(node_deps.SERVER_JS)
        return [node, server, "--port", str(port), "--redis-url", redis_url, "--adapter", adapter]

    return argv


@dataclass(frozen=True)
class System:
    """``max_nodes`` is 1 for the single-process ceiling, which has no cluster at all.

    ``env`` is added to each node's environment (a variant of a system differs only there);
    a system with ``default`` False runs only when ``--systems`` names it. A ``node`` system
    runs on Node.js and is skipped when ``node`` (or its ``npm ci``) is not available.
    """

    name: str
    label: str
    dialect: str
    argv: Argv
    max_nodes: int = 8
    project: bool = False
    env: tuple[tuple[str, str], ...] = ()
    default: bool = True
    node: bool = False


SYSTEMS = {
    s.name: s
    for s in (
        System("project", "aether-bridge (V3)", "v3", _project, project=True),
        # The same code with history and recovery off (docs/design.md section 9): beside ``project``
        # (history on, the default of 1,000 messages per stream) it gives what history costs.
        System(
            "project-nohistory",
            "aether-bridge (V3), history off",
            "v3",
            _project,
            project=True,
            env=(("AETHER_HISTORY_SIZE", "0"),),
            default=False,
        ),
        System(
            "socketio",
            "python-socketio + AsyncRedisManager",
            "socketio",
            _module("bench.baselines.socketio_app", redis=True),
        ),
        System(
            "socketio-node",
            "Node.js socket.io + redis-adapter (classic)",
            "socketio",
            _node("classic"),
            node=True,
        ),
        System(
            "socketio-node-sharded",
            "Node.js socket.io + redis-adapter (sharded)",
            "socketio",
            _node("sharded"),
            node=True,
        ),
        System(
            "v2global",
            "V2-global (one channel, filter in Python)",
            "v3",
            _module("bench.baselines.v2global_app", redis=True),
        ),
        System(
            "ws-ceiling",
            "websockets broadcast(), 1 process, no Redis",
            "v3",
            _module("bench.baselines.ws_broadcast", redis=False),
            max_nodes=1,
        ),
    )
}

DEFAULT_SYSTEMS = tuple(name for name, system in SYSTEMS.items() if system.default)
