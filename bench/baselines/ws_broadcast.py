"""The CPython ceiling: one ``websockets`` process, groups in a dict, ``broadcast()``, no Redis.

``broadcast()`` writes the same frame to every member without awaiting or buffering per client,
so this is the least work CPython can do per delivery over a real WebSocket. A V3 heartbeat is
answered to its sender alone, as the gateway does (without presence): ``bench.capacity
--system ws-ceiling`` measures the least an idle, heartbeating connection costs.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from bench.baselines.common import parse_args, payload_of, stamp

PREFIX = "/v3/ws/group/"
HEARTBEAT = b'"msg_type":"heartbeat"'


async def handler(ws: ServerConnection, groups: dict[str, set[ServerConnection]]) -> None:
    """Join the group named in the path, relay each frame to it, leave on close."""
    parts = ws.request.path.removeprefix(PREFIX).split("/") if ws.request else []
    if len(parts) != 3 or parts[1] != "client":
        await ws.close(1008, "expected /v3/ws/group/{group_id}/client/{client_id}")
        return
    group_id, client_id = parts[0], parts[2]
    members = groups.setdefault(group_id, set())
    members.add(ws)
    try:
        while True:
            frame = await ws.recv(decode=False)
            if HEARTBEAT in frame:
                await ws.send(heartbeat_echo(group_id, client_id), text=True)
                continue
            broadcast(members, stamp(payload_of(frame), group_id, client_id), text=True)
    except ConnectionClosed:
        pass
    finally:
        members.discard(ws)
        if not members:
            groups.pop(group_id, None)


def heartbeat_echo(group_id: str, client_id: str) -> bytes:
    return orjson.dumps(
        {
            "version": "3",
            "msg_type": "heartbeat",
            "target": "echo",
            "from_id": client_id,
            "group_id": group_id,
            "sent_at": datetime.now(UTC).isoformat(),
        }
    )


async def main(host: str, port: int) -> None:
    groups: dict[str, set[ServerConnection]] = {}
    async with serve(
        lambda ws: handler(ws, groups), host, port, compression=None, backlog=2048, max_size=65536
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    args = parse_args(__doc__ or "", redis=False)
    uvloop.run(main(args.host, args.port))
