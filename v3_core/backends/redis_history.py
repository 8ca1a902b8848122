"""Streams in Redis: where a channel's history lives, how a publish carries its position,
and the reads both brokers share (scripts in lua/history_*.lua)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from v3_core.streams import EMPTY, HistoryPolicy, Position, StreamState

from .base import BrokerMessage
from .redis_client import backend_errors


def history_script(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"history_{name}.lua").read_text()


def history_keys(channel: str) -> tuple[str, str]:
    """A stream's meta hash and entries, in the channel's own hash slot: a key's hash tag is
    the channel name, which a channel without braces hashes by whole (SPUBLISH included)."""
    return f"{{{channel}}}:h", f"{{{channel}}}:s"


def history_args(history: HistoryPolicy, node_epoch: str, publish: str) -> tuple[str, ...]:
    """lua/history_publish.lua's ARGV after the channel and the data."""
    return str(history.size), str(max(1, round(history.ttl * 1000))), node_epoch, publish


def framed(channel: bytes, data: bytes) -> BrokerMessage:
    """A message as the history script publishes it (``@<offset> <epoch>`` on a first line),
    or as plain PUBLISH does (history off)."""
    if not data.startswith(b"@"):
        return BrokerMessage(channel.decode(), data)
    head, _, body = data.partition(b"\n")
    offset, _, epoch = head[1:].partition(b" ")
    return BrokerMessage(channel.decode(), body, Position(epoch.decode(), int(offset)))


ScriptCall = Callable[[list[str], list[str | int]], Awaitable[Any]]


async def read_history(
    script: ScriptCall,
    channel: str,
    since: Position,
    policy: HistoryPolicy,
    timeout: float | None,
) -> tuple[StreamState, list[BrokerMessage]]:
    """lua/history_read.lua for one stream: its state and entries after ``since``.

    ``timeout`` None: the call is bounded already (a pipelined wire's reads).
    """
    after = since.offset if since.epoch else 0
    with backend_errors("Redis history read failed"):
        epoch, last, entries = await _within(
            script(list(history_keys(channel)), [after, policy.size]), timeout
        )
    epoch = _text(epoch)
    found = [
        BrokerMessage(channel, fields[1], Position(epoch, int(entry_id.split(b"-")[1])))
        for entry_id, fields in entries
    ]
    first = found[0].position.offset if found and found[0].position else 0
    return StreamState(epoch, int(last), first), found


async def read_position(
    hmget: Callable[[str, str, str], Awaitable[Any]], channel: str, timeout: float | None
) -> Position:
    """The stream's newest position; EMPTY when it has no history (``timeout``: as above)."""
    meta, _ = history_keys(channel)
    with backend_errors("Redis history read failed"):
        epoch, last = await _within(hmget(meta, "epoch", "last"), timeout)
    return EMPTY if epoch is None else Position(_text(epoch), int(last or 0))


async def _within(call: Awaitable[Any], timeout: float | None) -> Any:
    if timeout is None:
        return await call
    async with asyncio.timeout(timeout):
        return await call


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
