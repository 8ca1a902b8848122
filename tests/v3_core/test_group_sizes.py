"""``ConnectionManager.group_sizes``: what the ops page shows per group, counted only on change."""

from __future__ import annotations

import contextlib

import pytest

from v3_core.registry import LocalRegistry

from ..helpers import embedded_manager
from ..support.senders import RecordingSender


async def test_sizes_follow_connects_and_closes_and_are_not_recounted_in_between(
    monkeypatch: pytest.MonkeyPatch,
):
    counts = 0
    channels = LocalRegistry.channels

    def counting(self: LocalRegistry) -> list[str]:  # type: ignore[type-arg]
        nonlocal counts
        counts += 1
        return channels.fget(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(LocalRegistry, "channels", property(counting))
    async with embedded_manager() as nodes, contextlib.AsyncExitStack() as stack:
        for group, client in (("g1", "a"), ("g1", "b"), ("g1", "b"), ("g2", "c")):
            await stack.enter_async_context(nodes.connect(group, client, RecordingSender()))
        assert dict(nodes.group_sizes()) == {"g1": 3, "g2": 1}
        counted = counts
        for _ in range(5):  # the node heartbeat asks every second
            assert dict(nodes.group_sizes()) == {"g1": 3, "g2": 1}
        assert counts == counted  # nothing changed: not walked again

        async with nodes.connect("g3", "d", RecordingSender()):
            assert dict(nodes.group_sizes()) == {"g1": 3, "g2": 1, "g3": 1}
        assert dict(nodes.group_sizes()) == {"g1": 3, "g2": 1}
    assert dict(nodes.group_sizes()) == {}
