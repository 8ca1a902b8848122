"""Test doubles for the translators: a recording Sender and socket-less connections."""

from __future__ import annotations

from v3_core.connection import Connection, Outgoing, QueueLimits, V3Dialect
from v3_core.ids import new_conn_id
from v3_core.routing import NO_TAGS, Tags


class RecordingSender:
    """A Sender that keeps what it is given: an implementation, not a mock."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None

    def write_now(self, message: Outgoing) -> bool:
        self.sent.append(message.text)
        return True

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def abort(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def make_connection(
    *,
    group_id: str = "grpVision",
    client_id: str = "cliVision",
    tags: Tags = NO_TAGS,
) -> Connection:
    """A connection as the manager would build it, without a socket or a writer."""
    return Connection(
        conn_id=new_conn_id(),
        group_id=group_id,
        client_id=client_id,
        sender=RecordingSender(),
        dialect=V3Dialect(),
        limits=QueueLimits(),
        tags=tags,
    )
