"""The cross-node routing check both multi-process suites run (one Redis, a Redis Cluster)."""

from __future__ import annotations

from ..conftest import NodeProcess
from ..helpers import assert_silent, recv_msg, send_json, v3


async def every_target_is_delivered_across(a: NodeProcess, b: NodeProcess) -> None:
    """group, direct, broadcast and echo between clients on nodes ``a`` and ``b``; an outsider
    in another group sees only the broadcast, and nobody sees what was not theirs."""
    alice, bob, carol = (
        await v3(a.ws, "g1", "alice"),
        await v3(b.ws, "g1", "bob"),
        await v3(b.ws, "g2", "carol"),
    )
    async with alice, bob, carol:
        await send_json(alice, {"msg_type": "msg", "target": "group", "msg": "team"})
        assert (await recv_msg(alice))["msg"] == "team"
        assert (await recv_msg(bob))["msg"] == "team"

        await send_json(
            alice, {"msg_type": "msg", "target": "direct", "to_id": "carol", "msg": "dm"}
        )
        assert (await recv_msg(carol))["msg"] == "dm"

        await send_json(carol, {"msg_type": "cmd", "target": "broadcast", "cmd": "ALL"})
        for ws in (alice, bob, carol):
            assert (await recv_msg(ws))["cmd"] == "ALL"

        await send_json(bob, {"msg_type": "msg", "target": "echo", "msg": "me"})
        assert (await recv_msg(bob))["msg"] == "me"

        # The outsider saw only the broadcast; alice saw neither the DM nor bob's echo.
        await assert_silent(carol)
        await assert_silent(alice)
