"""V2Dialect: the legacy V2 dialect plugged into the core's `Dialect` slot.

Inbound it reads a frame by the table (v2_inbound), maps a database-integer ``to_id``, then
validates and stamps like any V3 frame. Outbound it renders without I/O (v2_outbound).
"""

from __future__ import annotations

from v3_core.connection import Connection
from v3_core.errors import CloseCode, ConnectionRejected, MessageRejected
from v3_core.messages import MessageV3, parse_client_message
from v3_core.routing import Envelope

from .id_mapping import IdMapper
from .tags import client_legacy, group_legacy
from .v2_inbound import V2Frame, V3Frame, parse_v2_frame, v3_json
from .v2_outbound import render_v2, render_v2_error


class V2Dialect:
    """How legacy clients speak. One per node: it holds no per-connection state."""

    name = "v2"
    # V3-shaped frames' "heartbeat"; V2's text "ping" and {"type": "ping" or "heartbeat"}
    heartbeat_hints: tuple[str, ...] = ("heartbeat", "ping")

    def __init__(
        self, mapper: IdMapper, *, allow_broadcast: bool = True, new_ids_per_connection: int = 0
    ) -> None:
        self.mapper = mapper
        self.allow_broadcast = allow_broadcast
        # Integers a connection may look up that the node has not cached; 0: no budget.
        self.new_ids_per_connection = new_ids_per_connection

    async def parse(self, text: str, conn: Connection) -> MessageV3:
        """A stamped, valid MessageV3 from a legacy frame, or MessageRejected."""
        frame = parse_v2_frame(text)
        legacy_to = frame.legacy_to_id
        to_id = await self._client_vision_id(legacy_to, conn) if legacy_to is not None else None
        return self._validate(frame, to_id, conn)

    def heartbeat(self, text: str, conn: Connection) -> MessageV3 | None:
        try:
            frame = parse_v2_frame(text)
            if isinstance(frame, V3Frame):
                if frame.fields.get("msg_type") != "heartbeat":
                    return None
            elif frame.msg_type != "heartbeat":
                return None
            return self._validate(frame, None, conn)  # a heartbeat has no address to map
        except MessageRejected:
            return None

    def _validate(self, frame: V2Frame | V3Frame, to_id: str | None, conn: Connection) -> MessageV3:
        fields = frame.mapped(
            to_id,
            client=(conn.client_id, client_legacy(conn.tags)),
            group=(conn.group_id, group_legacy(conn.tags)),
        )
        return parse_client_message(
            v3_json(fields),
            group_id=conn.group_id,
            client_id=conn.client_id,
            allow_broadcast=self.allow_broadcast,
        )

    def render(self, envelope: Envelope) -> str:
        return render_v2(envelope.text, envelope.tags, legacy_of=self.mapper.cached_legacy)

    def render_error(self, rejected: MessageRejected) -> str:
        return render_v2_error(rejected.code, rejected.detail, **rejected.extra)

    async def _client_vision_id(self, legacy: str, conn: Connection) -> str:
        # A failed lookup rejects this one message; the socket stays open.
        if self.mapper.cached_vision("client", legacy) is None:
            budget = self.new_ids_per_connection
            if budget and conn.new_ids >= budget:
                raise MessageRejected(
                    "invalid-id",
                    f"to_id: this connection has addressed {budget} legacy IDs this node did "
                    "not know, its limit (AETHER_NEW_IDS_PER_CONNECTION); reconnect to reset it",
                )
            conn.new_ids += 1
        try:
            return await self.mapper.existing("client", legacy)
        except ConnectionRejected as exc:
            if exc.close_code == CloseCode.POLICY_VIOLATION:
                raise MessageRejected("invalid-id", f"to_id: {exc.reason}") from exc
            raise MessageRejected("publish-failed", f"to_id: {exc.reason}") from exc
