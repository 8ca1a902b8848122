"""The legacy design: every node subscribes one global Redis channel and filters in Python.

Each node receives every message of the cluster, decodes it, and walks its local connections
comparing group IDs, awaiting one ``send_text`` per match, as the V2 system did. It only differs
from granular routing when nodes hold different groups (the noisy-neighbour scenario).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import orjson
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from bench.baselines.common import parse_args, payload_of, stamp, uvicorn_options

CHANNEL = "v2global"
log = logging.getLogger("bench.v2global")

Conns = dict[int, tuple[str, WebSocket]]


async def relay(client: aioredis.Redis, conns: Conns) -> None:
    """Deliver each cluster message to the local connections of its group."""
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(CHANNEL)
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            envelope = orjson.loads(message["data"])
            group_id, text = envelope["group_id"], envelope["message"]
            for member_group, ws in list(conns.values()):
                if member_group == group_id and ws.client_state is WebSocketState.CONNECTED:
                    with contextlib.suppress(Exception):
                        await ws.send_text(text)


def create_app(redis_url: str) -> FastAPI:
    conns: Conns = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=64)
        client = aioredis.Redis(connection_pool=pool)
        app.state.redis = client
        reader = asyncio.create_task(relay(client, conns))
        yield
        reader.cancel()
        await client.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.websocket("/ws/group/{group_id}/client/{client_id}")
    @app.websocket("/v3/ws/group/{group_id}/client/{client_id}")
    async def socket(websocket: WebSocket, group_id: str, client_id: str) -> None:
        await websocket.accept()
        key = id(websocket)
        conns[key] = (group_id, websocket)
        client: aioredis.Redis = websocket.app.state.redis
        try:
            while True:
                text = await websocket.receive_text()
                message = stamp(payload_of(text), group_id, client_id).decode()
                envelope = orjson.dumps({"group_id": group_id, "message": message})
                await client.publish(CHANNEL, envelope)
        except (WebSocketDisconnect, RuntimeError):
            pass  # RuntimeError: the relay's send already found the socket gone
        finally:
            conns.pop(key, None)

    return app


if __name__ == "__main__":
    args = parse_args(__doc__ or "", redis=True)
    uvicorn.run(create_app(args.redis_url), **uvicorn_options(args.host, args.port))
