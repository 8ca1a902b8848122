"""Session: one connection's registration on its node, as an async context.

``async with manager.connect(...) as conn`` opens it (registered, subscribed, present) and
closes it on exit, whatever ends the socket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .connection import Connection

if TYPE_CHECKING:
    from .manager import ConnectionManager


class Session:
    """What ``ConnectionManager.connect`` returns: one connection's registration as a context.

    A class rather than an asynccontextmanager: it lives as long as the socket, and a suspended
    generator frame per idle connection costs memory a slotted object does not.
    """

    __slots__ = ("conn", "manager")

    def __init__(self, manager: ConnectionManager, conn: Connection) -> None:
        self.manager = manager
        self.conn = conn

    async def __aenter__(self) -> Connection:
        await self.manager.open(self.conn)
        return self.conn

    async def __aexit__(self, *exc_info: object) -> None:
        await self.manager.close(self.conn)
