"""A Sender that records what a connection writes: an implementation, not a mock."""

from __future__ import annotations

import asyncio

from v3_core.connection import Outgoing


class RecordingSender:
    """Keeps every frame; its socket can be made to push back, as a full kernel buffer does.

    ``writable = False`` refuses straight writes (the connection then queues them for its
    writer task); clearing ``release`` holds the writer's sends until it is set again.
    """

    def __init__(self) -> None:
        self.writable = True
        self.sent: list[str] = []  # every frame, in the order the socket took it
        self.direct: list[str] = []  # those written straight, without the writer task
        self.closed: tuple[int, str] | None = None
        self.release = asyncio.Event()
        self.release.set()

    def write_now(self, message: Outgoing) -> bool:
        if not self.writable:
            return False
        self.direct.append(message.text)
        self.sent.append(message.text)
        return True

    async def send_text(self, text: str) -> None:
        await self.release.wait()
        self.sent.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def abort(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
