"""Socket-less connections for the translators' tests."""

from __future__ import annotations

from v3_core.connection import Connection, QueueLimits, V3Dialect
from v3_core.ids import new_conn_id
from v3_core.routing import NO_TAGS, Tags

from ..support.senders import RecordingSender


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
