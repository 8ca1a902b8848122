"""`aether-bridge v2 mode|usage`: against the test Redis directly, and over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from bridge.cli import main
from bridge.v2.cli import format_usage
from bridge.v2.policy import GLOBAL
from bridge.v2.store import RedisV2Store
from bridge.v2.usage import ClientDelta

from ...conftest import ROOT


def cli_process(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command, as ops run it."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", "v2", *argv],
        capture_output=True,
        text=True,
        env={**full_env, **(env or {})},
        cwd=ROOT,
        timeout=30,
    )


@pytest.fixture
def cli(monkeypatch, capsys):
    """The command in this process (a subprocess costs 2 s of imports): same main(), same output."""

    def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        for name in [n for n in os.environ if n.startswith("AETHER_")]:
            monkeypatch.delenv(name)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        code = main(["v2", *argv])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out, err)

    return run


@pytest.fixture
def redis_env(redis_url, prefix) -> dict[str, str]:
    return {"AETHER_REDIS_URL": redis_url, "AETHER_CHANNEL_PREFIX": prefix}


def store_policy(redis_url: str, prefix: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        store = RedisV2Store(redis_url, prefix=prefix)
        try:
            return (await store.policy()).as_json()
        finally:
            await store.aclose()

    return asyncio.run(read())


def test_mode_set_and_show_through_redis(cli, redis_env, redis_url, prefix):
    """A real subprocess, set from the environment's Redis and prefix; the store sees it."""
    assert cli_process("mode", "warn", env=redis_env).stdout == "global: warn\n"
    result = cli_process("mode", "closed", "--group", "grp_a", "--json", env=redis_env)
    assert json.loads(result.stdout) == {"global": "warn", "groups": {"grp_a": "closed"}}
    assert store_policy(redis_url, prefix) == {"global": "warn", "groups": {"grp_a": "closed"}}
    shown = cli("mode", env=redis_env).stdout
    assert shown == "global: warn\ngroup grp_a: closed\n"


def test_mode_clear_with_the_redis_url_flag(cli, redis_url, prefix):
    env = {"AETHER_CHANNEL_PREFIX": prefix}
    cli("mode", "closed", "--group", "grp_a", "--redis-url", redis_url, env=env)
    result = cli("mode", "--clear", "--group", "grp_a", "--redis-url", redis_url, env=env)
    assert (result.returncode, result.stdout) == (0, "global: open\n")


def test_mode_for_a_legacy_integer_group_uses_its_vision_id(cli, redis_env):
    data = json.loads(cli("mode", "closed", "--group", "3", "--json", env=redis_env).stdout)
    [(group_id, mode)] = data["groups"].items()
    assert (mode, group_id != "3") == ("closed", True)
    again = json.loads(cli("mode", "warn", "--group", "03", "--json", env=redis_env).stdout)
    assert again["groups"] == {group_id: "warn"}


def test_usage_through_redis(cli, redis_url, redis_env, prefix):
    async def record() -> None:
        store = RedisV2Store(redis_url, prefix=prefix)
        try:
            await store.record({("grp_a", "dev_1"): ClientDelta("3", "17", 4, 1, time.time())})
        finally:
            await store.aclose()

    asyncio.run(record())
    report = json.loads(cli("usage", "--json", env=redis_env).stdout)
    [group] = report["groups"]
    assert (group["group_id"], group["group_legacy"], group["messages"]) == ("grp_a", "3", 4)
    table = cli("usage", env=redis_env).stdout.splitlines()
    assert table[0].split() == [
        "group",
        "legacy",
        "client",
        "legacy",
        "messages",
        "connects",
        "last",
        "seen",
    ]
    assert table[1].split()[:6] == ["grp_a", "3", "dev_1", "17", "4", "1"]


def test_usage_text_when_nothing_was_recorded(cli, redis_env):
    assert cli("usage", env=redis_env).stdout == "no V2 usage recorded\n"


def test_without_redis_or_url_is_a_clear_error(cli):
    result = cli("mode")
    assert result.returncode == 2
    assert "needs --redis-url (or AETHER_REDIS_URL)" in result.stderr


def test_mode_and_clear_together_are_refused(cli, redis_env):
    result = cli("mode", "warn", "--clear", env=redis_env)
    assert (result.returncode, result.stderr) == (
        2,
        "aether-bridge v2: give a mode or --clear, not both\n",
    )


def test_unreachable_redis_exits_1(cli, prefix):
    from ...helpers import free_port

    result = cli("mode", "--redis-url", f"redis://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "V2 store call failed" in result.stderr


def test_over_http_against_an_embedded_node(cli, start_node):
    node = start_node()
    set_result = cli("mode", "closed", "--group", "grp_a", "--url", node.http)
    assert set_result.stdout == "global: open\ngroup grp_a: closed\n"
    bad = cli("mode", "warn", "--group", "bad*id", "--url", node.http)
    assert bad.returncode == 1
    assert "422 invalid-id" in bad.stderr
    assert cli("usage", "--url", node.http, "--json").stdout == '{\n  "groups": []\n}\n'


def test_format_usage_aligns_columns():
    report = {
        "groups": [
            {
                "group_id": "grp_a",
                "group_legacy": None,
                "clients": [
                    {
                        "client_id": "dev_1",
                        "client_legacy": "17",
                        "messages": 12,
                        "connects": 2,
                        "last_seen": "2025-01-01T00:00:00.000Z",
                    }
                ],
            }
        ]
    }
    assert format_usage(report).splitlines() == [
        "group  legacy  client  legacy  messages  connects  last seen",
        "grp_a  -       dev_1   17      12        2         2025-01-01T00:00:00.000Z",
    ]


def test_global_scope_is_never_a_vision_id():
    from v3_core import is_vision_id

    assert not is_vision_id(GLOBAL)
