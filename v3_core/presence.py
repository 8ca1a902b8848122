"""Server-made messages about presence and liveness. Pure builders, no I/O.

The timing policy lives here too: a node refreshes its members' entries three times per TTL,
so only a node that stopped (crashed, frozen) lets its entries expire.
"""

from __future__ import annotations

from typing import Literal

from .messages import utc_now
from .server_messages import (
    HeartbeatMessage,
    PresenceEventMessage,
    PresenceEventPayload,
    PresenceListMessage,
    PresenceListPayload,
    ResyncMessage,
    ResyncPayload,
)

PresenceEvent = Literal["join", "leave"]


def refresh_interval(ttl: float) -> float:
    """How often a node re-touches its own members: well inside one TTL."""
    return max(ttl / 3, 0.05)


def presence_event(group_id: str, client_id: str, event: PresenceEvent) -> str:
    """The ``presence`` message every member of ``group_id`` receives on a join or a leave."""
    return PresenceEventMessage.model_construct(
        version="3",
        msg_type="presence",
        target="group",
        group_id=group_id,
        payload=PresenceEventPayload.model_construct(event=event, client_id=client_id),
        sent_at=utc_now(),
    ).model_dump_json(exclude_none=True)


def members_reply(group_id: str, client_id: str, clients: list[str]) -> str:
    """The answer to a client's ``presence`` echo: who is online in its group."""
    return PresenceListMessage.model_construct(
        version="3",
        msg_type="presence",
        target="echo",
        from_id=client_id,
        group_id=group_id,
        payload=PresenceListPayload.model_construct(clients=clients),
        sent_at=utc_now(),
    ).model_dump_json()


def heartbeat_reply(group_id: str, client_id: str) -> str:
    return HeartbeatMessage.model_construct(
        version="3",
        msg_type="heartbeat",
        target="echo",
        from_id=client_id,
        group_id=group_id,
        sent_at=utc_now(),
    ).model_dump_json()


def resync_notice(reason: str, stream: str | None = None) -> str:
    """Told to clients that may have lost messages: refetch your state (of ``stream`` only,
    when it names the one stream that could not be recovered).

    ``reason`` is one of ``ResyncReason`` (the brokers' ``Discontinuity`` reasons and
    ``history-gap``), typed ``str`` as they are: the payload is validated (a notice is rare),
    so a reason outside the schema fails here rather than on the clients."""
    return ResyncMessage.model_construct(
        version="3",
        msg_type="cmd",
        target="echo",
        cmd="resync",
        payload=ResyncPayload.model_validate({"reason": reason, "stream": stream}),
        sent_at=utc_now(),
    ).model_dump_json(exclude_none=True)
