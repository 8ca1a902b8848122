"""`aether-bridge serve`: flags, environment, and the refusals it makes up front."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from bridge.cli import build_parser, settings_from_args


def settings(*argv: str):
    return settings_from_args(build_parser().parse_args(["serve", *argv]))


def test_defaults_are_one_local_process():
    s = settings()
    assert (s.host, s.port, s.redis_url, s.workers, s.log_level) == (
        "127.0.0.1",
        8000,
        None,
        1,
        "info",
    )


def test_environment_variables_set_every_flag(monkeypatch):
    monkeypatch.setenv("AETHER_HOST", "0.0.0.0")
    monkeypatch.setenv("AETHER_PORT", "9001")
    monkeypatch.setenv("AETHER_REDIS_URL", "redis://r:6379")
    monkeypatch.setenv("AETHER_WORKERS", "3")
    monkeypatch.setenv("AETHER_LOG_LEVEL", "debug")
    s = settings()
    assert (s.host, s.port, s.redis_url, s.workers, s.log_level) == (
        "0.0.0.0",
        9001,
        "redis://r:6379",
        3,
        "debug",
    )


def test_flags_win_over_environment(monkeypatch):
    monkeypatch.setenv("AETHER_PORT", "9001")
    assert settings("--port", "9002").port == 9002


def test_workers_without_redis_is_a_clear_error():
    result = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "serve", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--workers > 1 needs --redis-url" in result.stderr


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("redis+cluster://", "at least one seed"),
        ("redis+cluster://127.0.0.1", "is not host:port"),
        ("redis+cluster://127.0.0.1:7000/3", "database 0 only"),
        ("memcached://127.0.0.1:11211", "unsupported Redis URL scheme"),
    ],
)
def test_a_bad_redis_url_is_refused_with_a_clear_message(url: str, error: str):
    from v3_core.backends import open_backends

    async def open_url() -> None:
        async with open_backends(url, prefix="p:", node_channel="p:n:x", presence_ttl=1):
            pass

    import asyncio

    with pytest.raises(ValueError, match=error):
        asyncio.run(open_url())


def test_embedded_node_says_so_in_its_startup_log(start_node):
    node = start_node()
    assert httpx.get(f"{node.http}/healthz").json() == {"status": "ok"}
    assert "embedded in-process broker" in node.log.read_text()


def test_redis_node_names_redis_without_the_password(start_node, redis_url):
    node = start_node("--redis-url", redis_url)
    log = node.log.read_text()
    assert f"Redis at {redis_url}" in log


def test_two_workers_share_redis(start_node, redis_url):
    node = start_node("--redis-url", redis_url, "--workers", "2")
    assert httpx.get(f"{node.http}/readyz").status_code == 200
    deadline = time.monotonic() + 15
    while node.log.read_text().count(f"using Redis at {redis_url}") < 2:  # one line per worker
        assert time.monotonic() < deadline, node.log.read_text()
        time.sleep(0.05)


def test_a_bad_setting_names_its_variable():
    env = {**os.environ, "AETHER_PRESENCE_TTL": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "serve"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 2
    assert "AETHER_PRESENCE_TTL: Input should be greater than 0" in result.stderr


_SERVE_AND_REPORT_GC = """
import gc, sys
import bridge.cli, bridge.node_server

def run(app, **options):  # stands in for the server: report what serve() left behind
    print(gc.get_freeze_count(), sum(gc.get_count()))

bridge.node_server.run = run
bridge.cli.main(["serve"])
"""


def test_serve_freezes_the_startup_heap_before_serving():
    """Import-time objects would otherwise be walked by every full collection (~40 ms)."""
    result = subprocess.run(
        [sys.executable, "-c", _SERVE_AND_REPORT_GC],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    frozen, young = map(int, result.stdout.split())
    assert frozen > 10_000  # the app and everything it imported
    assert young < 1_000  # collected and frozen last: nothing left over to walk


def test_each_worker_freezes_its_own_heap():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gc; from bridge.cli import worker_app; worker_app(); "
            "print(gc.get_freeze_count())",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert int(result.stdout) > 10_000
