"""``aether-bridge v2 dead-letters``: from the nodes' Redis, and from a running node."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from bridge.dead_letter_store import DeadLetter, RedisDeadLetterStore

from ..bridge.v2.test_cli import cli, cli_process  # noqa: F401  (the fixture)


def seed(redis_url: str, prefix: str) -> None:
    async def write() -> None:
        store = RedisDeadLetterStore(redis_url, prefix=prefix)
        letter = DeadLetter(
            time.time(),
            "nodeA",
            "legacy-frame",
            "untranslatable",
            "grp_a",
            "too deep",
            "[[[",
            9,
            "dev_1",
            "42",
            "7",
        )
        await store.record([letter], {"untranslatable": 4})
        await store.aclose()

    asyncio.run(write())


def test_lists_samples_and_counts_from_redis(cli, redis_url, prefix):  # noqa: F811
    seed(redis_url, prefix)
    env = {"AETHER_REDIS_URL": redis_url, "AETHER_CHANNEL_PREFIX": prefix}
    shown = cli("dead-letters", env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "counts: untranslatable=4"
    assert "untranslatable  node nodeA  group grp_a (42)  client dev_1 (7)" in lines[1]
    assert lines[2:] == ["    too deep", "    sample (9 bytes): [[["]
    as_json = json.loads(cli("dead-letters", "--json", env=env).stdout)
    assert as_json["dead_letters"][0]["client_legacy"] == "7"


def test_over_http_with_the_api_token(start_node, redis_url, prefix):
    seed(redis_url, prefix)
    node = start_node("--redis-url", redis_url, env={"AETHER_API_TOKEN": "s3cret"})
    assert httpx.get(f"{node.http}/v2/dead-letters").status_code == 401
    refused = cli_process("dead-letters", "--url", node.http)
    assert refused.returncode == 1 and "401 unauthorized" in refused.stderr
    shown = cli_process(
        "dead-letters", "--url", node.http, "--json", env={"AETHER_API_TOKEN": "s3cret"}
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["counts"] == {"untranslatable": 4}
