"""``aether-bridge serve``: flags (or AETHER_* variables) -> Settings -> uvicorn.

``aether-bridge v2 ...`` (the V2 phase-out controls) lives in bridge/v2/cli.py.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from . import node_server, worker_metrics
from .app import app_from_env, configure_logging, create_app
from .settings import Settings
from .sockets import SocketRouter
from .uvicorn_ws import server_options
from .v2 import cli as v2_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aether-bridge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a gateway node")
    serve.add_argument("--host", help="interface to bind (AETHER_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (AETHER_PORT, default 8000)")
    serve.add_argument(
        "--redis-url",
        help="redis://, rediss:// or unix:// URL shared by every node, or "
        "redis+cluster://host:port[,host:port...] for a Redis Cluster (AETHER_REDIS_URL); "
        "without it the node runs on an embedded in-process broker",
    )
    serve.add_argument("--workers", type=int, help="worker processes (AETHER_WORKERS; needs Redis)")
    serve.add_argument("--log-level", help="debug, info, warning... (AETHER_LOG_LEVEL)")
    v2_cli.add_parser(commands)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Flags given on the command line win over AETHER_* variables, which win over defaults."""
    flags = {"host", "port", "redis_url", "workers", "log_level"}
    overrides = {name: getattr(args, name) for name in flags if getattr(args, name) is not None}
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "v2":
        return v2_cli.run(args)
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            field = ".".join(str(part) for part in error["loc"])
            where = f"AETHER_{field.upper()}: " if field else ""
            message = error["msg"].removeprefix("Value error, ")
            print(f"aether-bridge: {where}{message}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(
            f"aether-bridge: {exc} (list settings are JSON, e.g. '[\"https://a.example\"]')",
            file=sys.stderr,
        )
        return 2
    serve(settings)
    return 0


def serve(settings: Settings) -> None:
    configure_logging(settings)
    options = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        **server_options(settings),
    }
    if settings.workers == 1:
        app = create_app(settings)
        freeze_startup_heap()
        node_server.run(app, **options)
        return
    # uvicorn's worker processes run its own Server: they keep its 0.1 s main-loop tick.
    # Workers import the app themselves; hand them the settings through the environment.
    for name, value in settings.model_dump(exclude={"node_id"}).items():
        if value is not None:
            os.environ[f"AETHER_{name.upper()}"] = (
                value if isinstance(value, str) else _env_value(value)
            )
    # /metrics answers for the whole group: each worker leaves its numbers here.
    with tempfile.TemporaryDirectory(prefix="aether-metrics-") as metrics_dir:
        os.environ[worker_metrics.METRICS_DIR_ENV] = metrics_dir
        uvicorn.run(
            "bridge.cli:worker_app",
            factory=True,
            workers=settings.workers,
            **options,
        )


def worker_app() -> SocketRouter:
    """Factory for uvicorn workers: the app from the AETHER_* environment, heap frozen."""
    app = app_from_env()
    freeze_startup_heap()
    return app


GC_THRESHOLDS = (10_000, 20, 10)  # see freeze_startup_heap and docs/performance.md


def freeze_startup_heap() -> None:
    """Keep what importing and building the app allocated out of every later GC pass, and
    collect the young generations less often.

    Those ~70,000 objects live as long as the process, yet each full collection walked them
    all: about 40 ms with the event loop stopped (docs/decisions/). Collected first, so
    no startup garbage is frozen with them. The first threshold (10,000 allocations instead
    of 700) lets the short-lived objects of a message or a heartbeat die before a collection
    looks at them, so far fewer survive into the oldest generation; it is their number that
    triggers full collections, which at 19,000 connections stop the loop for about a second.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _env_value(value: object) -> str:
    import json

    return json.dumps(value) if isinstance(value, list | dict | bool) else str(value)


if __name__ == "__main__":
    raise SystemExit(main())
