"""python-socketio ``AsyncServer`` with ``AsyncRedisManager``: rooms are groups.

Clients pass ``{"group": ..., "client": ...}`` as Socket.IO auth; the ``connect`` handler puts
them in the room, and ``msg`` events are re-emitted to the room (sender included), which the
Redis manager propagates to every node, as a python-socketio deployment would do.
``--server aiohttp`` (default; it cost a little less CPU per delivery than uvicorn when tried) or
``uvicorn`` (ASGI).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import socketio

from bench.baselines.common import uvicorn_options


def create_server(redis_url: str, async_mode: str) -> socketio.AsyncServer:
    sio = socketio.AsyncServer(
        async_mode=async_mode,
        client_manager=socketio.AsyncRedisManager(redis_url),
        cors_allowed_origins="*",
        logger=False,
        engineio_logger=False,
    )
    members: dict[str, tuple[str, str]] = {}

    async def connect(sid: str, environ: dict[str, Any], auth: dict[str, str] | None) -> bool:
        if not auth or "group" not in auth:
            return False
        members[sid] = (auth["group"], auth.get("client", sid))
        await sio.enter_room(sid, auth["group"])
        return True

    async def disconnect(sid: str, *args: Any) -> None:
        members.pop(sid, None)

    async def msg(sid: str, payload: Any) -> None:
        group_id, client_id = members[sid]
        await sio.emit(
            "msg",
            {
                "version": "3",
                "msg_type": "msg",
                "target": "group",
                "from_id": client_id,
                "group_id": group_id,
                "payload": payload,
                "sent_at": datetime.now(UTC).isoformat(),
            },
            room=group_id,
        )

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    sio.on("msg", msg)
    return sio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--server", choices=("aiohttp", "uvicorn"), default="aiohttp")
    args = parser.parse_args()
    if args.server == "uvicorn":
        import uvicorn

        sio = create_server(args.redis_url, "asgi")
        uvicorn.run(socketio.ASGIApp(sio), **uvicorn_options(args.host, args.port))
        return
    import uvloop
    from aiohttp import web

    app = web.Application()
    create_server(args.redis_url, "aiohttp").attach(app)
    uvloop.install()
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None, backlog=2048)


if __name__ == "__main__":
    main()
