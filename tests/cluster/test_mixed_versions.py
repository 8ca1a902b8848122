"""Two releases side by side on one Redis (docs/design.md section 4): today's node, and a build that
adds a field to what nodes exchange, as the next release might. Everything works both ways."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from ..conftest import ROOT, NodeProcess
from ..helpers import connect, eventually, recv_json, recv_msg, send_json, v3
from .routing import every_target_is_delivered_across

pytestmark = pytest.mark.cluster

NEW_FIELD = "trace=from-a-newer-release"


@pytest.fixture(scope="module")
def newer_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packages whose envelopes carry one more header field."""
    build = tmp_path_factory.mktemp("newer")
    for package in ("v3_core", "translators", "bridge"):
        shutil.copytree(
            ROOT / package, build / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    routing = build / "v3_core" / "routing.py"
    old = 'fields = [ENVELOPE, f"o={self.origin}"]'
    text = routing.read_text()
    assert old in text, "the envelope's header changed: update this test's patch"
    routing.write_text(
        text.replace(old, f'fields = [ENVELOPE, f"o={{self.origin}}", "{NEW_FIELD}"]')
    )
    return build


@pytest.fixture
def mixed(start_node, redis_url, newer_build) -> tuple[NodeProcess, NodeProcess]:
    today = start_node("--redis-url", redis_url)
    newer = start_node("--redis-url", redis_url, cwd=newer_build)
    return today, newer


async def metric(node: NodeProcess, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{node.http}/metrics")).text
    return float(next(line for line in text.splitlines() if line.startswith(name + " ")).split()[1])


async def test_the_newer_node_really_sends_the_added_field(mixed, redis_url, prefix):
    _, newer = mixed
    async with aioredis.Redis.from_url(redis_url) as client, client.pubsub() as pubsub:
        await pubsub.subscribe(f"{prefix}g:g1")
        async with await v3(newer.ws, "g1", "probe"):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    assert NEW_FIELD.encode() in message["data"]  # its join, published by the newer node


async def test_routing_presence_legacy_ids_and_recovery_work_both_ways(mixed):
    today, newer = mixed
    await every_target_is_delivered_across(today, newer)
    await every_target_is_delivered_across(newer, today)

    # Presence: each node lists the other's clients.
    async with await v3(today.ws, "room", "ann"), await v3(newer.ws, "room", "ben"):

        async def both_listed() -> bool:
            async with httpx.AsyncClient() as http:
                for node in mixed:
                    listed = (await http.get(f"{node.http}/v3/groups/room/presence")).json()
                    if listed["clients"] != ["ann", "ben"]:
                        return False
            return True

        await eventually(both_listed)

    # Legacy IDs: integers on both sides, whichever node minted the Vision IDs.
    one = await connect(today.ws, "/ws/group/700/client/701")
    two = await connect(newer.ws, "/ws/group/700/client/702")
    async with one, two:
        await one.send(json.dumps({"msg": "from 701"}))
        await two.send(json.dumps({"to": 701, "msg": "to 701"}))
        got = [await recv_msg(two), await recv_msg(one), await recv_msg(one)]
        assert (got[0]["msg"], got[0]["from"], got[0]["group"]) == ("from 701", 701, 700)
        assert {(f["msg"], f["from"]) for f in got[1:]} == {("from 701", 701), ("to 701", 702)}

    # Recovery: what one node published is replayed by the other, in both directions.
    for reader, writer in ((today, newer), (newer, today)):
        await recovers_across(reader, writer)
    for node in mixed:
        assert await metric(node, "aether_broker_unreadable_total") == 0


async def recovers_across(reader: NodeProcess, writer: NodeProcess) -> None:
    group = f"r{reader.port}"
    async with await v3(reader.ws, group, "zoe") as zoe:
        join = await recv_json(zoe)
    position = f"group:{join['epoch']}:{join['offset']}"
    async with await v3(writer.ws, group, "yan") as yan:
        for n in range(3):
            await send_json(yan, {"msg_type": "msg", "target": "group", "msg": f"m{n}"})
        for n in range(3):
            assert (await recv_msg(yan))["msg"] == f"m{n}"
        again = await connect(reader.ws, f"/v3/ws/group/{group}/client/zoe?recover={position}")
        async with again:
            replayed = [await recv_msg(again) for _ in range(3)]
    assert [f["msg"] for f in replayed] == ["m0", "m1", "m2"]
    offsets = [f["offset"] for f in replayed]
    assert offsets == sorted(offsets) and len(set(offsets)) == 3
