"""Socket-less connections for the translators' tests."""

from __future__ import annotations

from v3_core.connection import Connection, QueueLimits, V3Dialect
from v3_core.ids import new_conn_id

from ..support.senders import RecordingSender


def make_connection(
    *,
    group_id: str = "grpVision",
    client_id: str = "cliVision",
    group_legacy: str = "",
    client_legacy: str = "",
) -> Connection:
    """A connection as the manager would build it, without a socket or a writer."""
    return Connection(
        conn_id=new_conn_id(),
        group_id=group_id,
        client_id=client_id,
        sender=RecordingSender(),
        dialect=V3Dialect(),
        limits=QueueLimits(),
        group_legacy=group_legacy,
        client_legacy=client_legacy,
    )
