"""Every frame a real node sends a V3 socket validates against the published JSON Schema.

The schema (docs/ws-message-v3.schema.json, ``$defs/ServerMessage``) is what the TypeScript
types are generated from and what frontends are told to expect; here it is checked with a
JSON Schema validator (not the pydantic models it came from) against what an
``aether-bridge serve`` process on its own Redis actually sends: stream messages of every
target (from clients and from ``POST /v3/messages``), echoes, heartbeats, presence events and
the member list, ``resync`` for a history gap and for a Redis restart, and an ``error`` reply
for every code a V3 socket can get. Raw sockets on purpose: this is about the wire.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from websockets.asyncio.client import ClientConnection

from ..conftest import ROOT, NodeProcess
from ..helpers import connect, eventually
from ..support.redis_server import RedisServer

pytestmark = pytest.mark.cluster

SCHEMA = json.loads((ROOT / "docs" / "ws-message-v3.schema.json").read_text())


def validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator for ``$defs/<name>`` of the published document."""
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]})


VALIDATOR = validator("ServerMessage")
MEMBERS = [
    item["$ref"].removeprefix("#/$defs/") for item in SCHEMA["$defs"]["ServerMessage"]["oneOf"]
]

# Every code a V3 socket can get, and the frame that gets it (rate-limited: a flood, below;
# untranslatable is for legacy V2 sockets only).
BAD_FRAMES: dict[str, str] = {
    "invalid-json": "{not json",
    "not-an-object": '["msg"]',
    "unknown-field": '{"msg_type":"msg","target":"group","text":"hi"}',
    "invalid-field": '{"msg_type":"msg","target":"group","msg":5}',
    "missing-field": '{"target":"group"}',
    "invalid-version": '{"version":3,"msg_type":"msg","target":"group"}',
    "invalid-id": '{"msg_type":"msg","target":"direct","to_id":"12345"}',
    "missing-to-id": '{"msg_type":"msg","target":"direct","msg":"hi"}',
    "server-only-type": '{"msg_type":"error","target":"echo"}',
    "invalid-target": '{"msg_type":"heartbeat","target":"group"}',
    "spoofed-from-id": '{"msg_type":"msg","target":"group","from_id":"someone_else"}',
    "spoofed-group-id": '{"msg_type":"msg","target":"group","group_id":"other_group"}',
    "broadcast-forbidden": '{"msg_type":"cmd","target":"broadcast","cmd":"X"}',
    "offset-is-the-servers": '{"msg_type":"msg","target":"group","offset":3}',
}


class Recorder:
    """A raw V3 socket that keeps every frame it receives."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, base: str, path: str) -> Recorder:
        return cls(await connect(base, path))

    async def _read(self) -> None:
        async for text in self.ws:
            self.frames.append(json.loads(text))

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout: float = 10) -> None:
        await eventually(lambda: any(check(f) for f in self.frames), timeout)

    async def close(self) -> None:
        await self.ws.close()
        await self._task


def member_of(frame: dict[str, Any]) -> str:
    """The one ``oneOf`` member ``frame`` validates against; fails with the schema's errors."""
    errors = sorted(VALIDATOR.iter_errors(frame), key=lambda e: e.path)
    assert not errors, (frame, [e.message for e in errors])
    matching = [name for name in MEMBERS if validator(name).is_valid(frame)]
    assert len(matching) == 1, (frame, matching)
    return matching[0]


def code(frame: dict[str, Any]) -> str | None:
    return frame["payload"]["code"] if frame.get("msg_type") == "error" else None


def test_the_schema_tells_every_shape_apart() -> None:
    """Frames that differ only in ``from_id`` or ``target`` are different members, and what the
    server never sends (null, a stray field, a client's own message) is no member at all."""
    sent_at = "2026-12-04T16:10:03.897709Z"
    payload = {"reason": "history-gap", "stream": "group"}
    resync: dict[str, Any] = {"version": "3", "msg_type": "cmd", "target": "echo", "cmd": "resync"}
    resync |= {"payload": payload, "sent_at": sent_at}
    echoed = {**resync, "from_id": "alice", "group_id": "team_a1"}
    assert member_of(resync) == "ResyncMessage"
    assert member_of(echoed) == "EchoMessage"
    for wrong in (
        {**resync, "payload": {"reason": "gone"}},  # a reason the schema does not have
        {**resync, "payload": {"reason": "history-gap", "stream": "direct"}},
        {**echoed, "offset": 1, "epoch": "e1"},  # echoes are in no stream
        {"msg_type": "msg", "target": "group", "msg": "hi"},  # a client's frame: no version
        {"version": "3", "msg_type": "msg", "target": "direct", "msg": "x", "sent_at": sent_at},
        {
            "version": "3",
            "msg_type": "error",
            "target": "echo",
            "msg": "x",
            "payload": {"code": "unknown-field", "field": "text"},
        },
        {
            "version": "3",
            "msg_type": "heartbeat",
            "target": "echo",
            "from_id": None,
            "group_id": "g1",
            "sent_at": sent_at,
        },
    ):
        assert not VALIDATOR.is_valid(wrong), wrong


async def test_every_frame_a_real_node_sends_validates_against_the_schema(
    start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis.log")
    await redis.start_async()
    try:
        await _scenario(start_node, redis)
    finally:
        redis.stop()


async def _scenario(start_node: Callable[..., NodeProcess], redis: RedisServer) -> None:
    node = start_node(
        "--redis-url",
        redis.url,
        env={
            "AETHER_CLIENT_BROADCAST": "false",  # for broadcast-forbidden
            "AETHER_RATE_LIMIT": "20",
            "AETHER_RATE_BURST": "60",  # the flood below gets rate-limited, no one else
            "AETHER_PROBE_INTERVAL": "1",
            "AETHER_REDIS_TIMEOUT": "1",
        },
    )
    alice = await Recorder.open(node.ws, "/v3/ws/group/team_a1/client/alice")
    bob = await Recorder.open(node.ws, "/v3/ws/group/team_a1/client/bob")
    carol = await Recorder.open(node.ws, "/v3/ws/group/team_b2/client/carol")
    sockets = [alice, bob, carol]
    await alice.wait_for(lambda f: f.get("payload", {}).get("client_id") == "bob")

    # Stream messages and echoes, from a socket.
    for text in (
        '{"msg_type":"msg","target":"group","msg":"hello","payload":{"k":[1,2]}}',
        '{"msg_type":"cmd","target":"direct","to_id":"carol","cmd":"PING"}',
        '{"msg_type":"msg","target":"echo","msg":"me"}',
        '{"msg_type":"cmd","target":"echo","cmd":"resync"}',  # an echo, not a notice
        '{"msg_type":"heartbeat","target":"echo"}',
        '{"msg_type":"presence","target":"echo"}',
    ):
        await alice.send(text)
    # ... and from the platform, without from_id (broadcasts only from here on this node).
    async with httpx.AsyncClient(base_url=node.http) as http:
        for body in (
            {"msg_type": "cmd", "target": "group", "group_id": "team_a1", "cmd": "RELOAD_UI"},
            {"msg_type": "msg", "target": "direct", "to_id": "carol", "msg": "from the backend"},
            {"msg_type": "msg", "target": "broadcast", "msg": "to all", "payload": {"n": 1}},
        ):
            assert (await http.post("/v3/messages", json=body)).status_code == 202
    # An error reply for every code.
    for text in BAD_FRAMES.values():
        await alice.send(text)
    flood = await Recorder.open(node.ws, "/v3/ws/group/team_a1/client/flood")
    sockets.append(flood)
    for _ in range(65):
        await flood.send('{"msg_type":"msg","target":"echo"}')
    await flood.wait_for(lambda f: code(f) == "rate-limited")
    # A stream that cannot be recovered: resync history-gap, naming it.
    dave = await Recorder.open(node.ws, "/v3/ws/group/team_a1/client/dave?recover=group:gone:3")
    sockets.append(dave)
    await dave.wait_for(lambda f: f.get("cmd") == "resync" and "from_id" not in f)
    await bob.close()  # a leave event
    await alice.wait_for(lambda f: f.get("payload", {}).get("event") == "leave")
    await alice.wait_for(lambda f: f.get("payload", {}).get("clients") is not None)
    await carol.wait_for(lambda f: f.get("msg") == "to all")

    # Redis down: a heartbeat is answered with publish-failed; back: resync without stream.
    redis.kill()
    await carol.send('{"msg_type":"heartbeat","target":"echo"}')
    await carol.wait_for(lambda f: code(f) == "publish-failed")
    await redis.start_async()
    await carol.wait_for(lambda f: f.get("payload", {}).get("reason") == "broker-restarted", 20)

    frames = [frame for socket in sockets for frame in socket.frames]
    for socket in sockets:
        if socket is not bob:
            await socket.close()
    shapes = {member_of(frame) for frame in frames}
    print(f"FIGURE {len(frames)} frames from a real node validated, shapes: {sorted(shapes)}")
    assert shapes == set(MEMBERS)
    codes = {code(frame) for frame in frames} - {None}
    assert codes == set(BAD_FRAMES) - {"offset-is-the-servers"} | {"rate-limited", "publish-failed"}
    resyncs = {(f["payload"]["reason"], f["payload"].get("stream")) for f in frames
               if f.get("cmd") == "resync" and "from_id" not in f}  # fmt: skip
    assert resyncs == {("history-gap", "group"), ("broker-restarted", None)}
    positioned = {f["target"] for f in frames if "offset" in f}
    assert positioned == {"group", "direct", "broadcast"}, positioned
