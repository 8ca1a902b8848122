"""Server-made messages about presence and liveness. Pure builders, no I/O.

The timing policy lives here too: a node refreshes its members' entries three times per TTL,
so only a node that stopped (crashed, frozen) lets its entries expire.
"""

from __future__ import annotations

from typing import Literal

from .messages import MessageV3, encode, utc_now

PresenceEvent = Literal["join", "leave"]


def refresh_interval(ttl: float) -> float:
    """How often a node re-touches its own members: well inside one TTL."""
    return max(ttl / 3, 0.05)


def presence_event(group_id: str, client_id: str, event: PresenceEvent) -> str:
    """The ``presence`` message every member of ``group_id`` receives on a join or a leave."""
    return encode(
        MessageV3.model_construct(
            msg_type="presence",
            target="group",
            group_id=group_id,
            payload={"event": event, "client_id": client_id},
            sent_at=utc_now(),
        )
    )


def members_reply(group_id: str, client_id: str, clients: list[str]) -> str:
    """The answer to a client's ``presence`` echo: who is online in its group."""
    return encode(
        MessageV3.model_construct(
            msg_type="presence",
            target="echo",
            from_id=client_id,
            group_id=group_id,
            payload={"clients": clients},
            sent_at=utc_now(),
        )
    )


def heartbeat_reply(group_id: str, client_id: str) -> str:
    return encode(
        MessageV3.model_construct(
            msg_type="heartbeat",
            target="echo",
            from_id=client_id,
            group_id=group_id,
            sent_at=utc_now(),
        )
    )


def resync_notice(reason: str, stream: str | None = None) -> str:
    """Told to clients that may have lost messages: refetch your state (of ``stream`` only,
    when it names the one stream that could not be recovered)."""
    payload = {"reason": reason} if stream is None else {"reason": reason, "stream": stream}
    return encode(
        MessageV3.model_construct(
            msg_type="cmd", target="echo", cmd="resync", payload=payload, sent_at=utc_now()
        )
    )
