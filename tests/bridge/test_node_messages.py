"""What nodes exchange over Redis: garbage and foreign formats reach no client, and count."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from ..conftest import serve_app
from ..helpers import assert_silent, eventually, metrics, recv_json, recv_msg, send_json, v3


async def unreadable(base: str) -> float:
    return (await metrics(base))["aether_broker_unreadable_total"]


@pytest.mark.parametrize("history", [1000, 0])
async def test_garbage_on_a_channel_reaches_no_client_and_moves_the_metric(
    redis_url, make_settings, prefix, history
):
    async with serve_app(make_settings(redis_url=redis_url, history_size=history)) as node:
        alice = await v3(node.ws, "g1", "alice")
        async with alice, aioredis.Redis.from_url(redis_url) as client:
            await recv_json(alice)  # her join
            garbage = [
                b"not an envelope",
                b"n1 - - -\n" + b'{"version":"3","msg_type":"msg","target":"group"}',  # unversioned
                b'aether/2 o=n9\n{"version":"3","msg_type":"msg","target":"group"}',  # newer major
                b'aether/1 o=n9\n{"version":"2","msg":"old"}',
                b"aether/1 o=n9\n<html>",
                b'@7 e1\naether/1 o=n9\n{"msg":"no version"}',  # positioned, body still checked
            ]
            for data in garbage:
                await client.publish(f"{prefix}g:g1", data)

            async def all_counted() -> bool:
                return await unreadable(node.http) == len(garbage)

            await eventually(all_counted)
            await assert_silent(alice)
            # The node carries on.
            await send_json(alice, {"msg_type": "msg", "target": "group", "msg": "still here"})
            assert (await recv_msg(alice))["msg"] == "still here"
