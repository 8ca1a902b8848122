"""ClientRecovery: what a reconnecting client missed, replayed before anything live.

V3 clients name their positions (``?recover=``); legacy clients cannot, so their node stores
the positions a legacy connection reached when it ends, and the next connect of the same
group and client replays from there, on any node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .backends.base import Broker, BrokerMessage, CursorStore
from .connection import Connection, Outgoing, V3Dialect
from .errors import BackendUnavailable
from .node_streams import NodeStreams
from .presence import resync_notice
from .routing import Channels, Envelope
from .streams import (
    Position,
    StreamName,
    covers,
    earliest,
    format_positions,
    parse_stored,
    with_position,
)

log = logging.getLogger("aether.recovery")

# A legacy connection that resumed from stored positions counts as having received its replay
# once it has sent a frame or stayed this long; one that ends sooner, silent, is taken never to
# have been read, and gives the positions back (a duplicate is allowed to legacy clients; a
# silent loss is not).
PROVEN_AFTER = 5.0


def _unproven(conn: Connection) -> bool:
    return conn.messages_in == 0 and time.monotonic() - conn.opened_at < PROVEN_AFTER


@dataclass(slots=True)
class RecoveryStats:
    """Plain counters for /metrics."""

    asked: int = 0  # streams named by recover= (V3) or stored positions (legacy)
    recovered: int = 0
    gaps: int = 0  # streams history could not cover (a resync went out)
    unavailable: int = 0  # streams whose history could not be read
    replayed: int = 0  # messages and notices sent to recovering clients
    legacy_positions_saved: int = 0


class ClientRecovery:
    """The manager's recovery half: it reads history and the stored legacy positions."""

    def __init__(
        self,
        broker: Broker,
        cursors: CursorStore,
        *,
        channels: Channels,
        streams: NodeStreams,
        v3: V3Dialect,
        node_id: str,
        decode: Callable[[BrokerMessage], Envelope | None],
    ) -> None:
        self._broker = broker
        self._cursors = cursors
        self._channels = channels
        self._streams = streams
        self._v3 = v3
        self._node_id = node_id
        self.stats = RecoveryStats()
        self._decode = decode

    async def recover(self, conn: Connection) -> None:
        """Send ``conn`` what it missed of the streams it named, then its held live messages.

        A stream history cannot cover gets a ``resync`` (``history-gap``) in its place.
        """
        since = conn.recovering_since
        if since is None:
            return
        channels = list(since)
        self.stats.asked += len(channels)
        reads = await asyncio.gather(
            *(self._broker.history_after(channel, since[channel]) for channel in channels),
            return_exceptions=True,
        )
        replay: list[Outgoing | None] = []
        replayed: dict[str, Position] = {}
        for channel, read in zip(channels, reads, strict=True):
            position = since[channel]
            if isinstance(read, BaseException):
                if isinstance(read, BackendUnavailable):
                    log.warning("history read for %r failed: %s", conn, read)
                else:
                    log.error("history read for %r failed", conn, exc_info=read)
                self.stats.unavailable += 1
            elif covers(read[0], position, self._broker.history.size):
                self.stats.recovered += 1
                found = [m for m in read[1] if m.position and m.position.offset > position.offset]
                replay.extend(self._replayed(conn, m) for m in found)
                last = found[-1].position if found else None
                replayed[channel] = last or position
                continue
            else:
                self.stats.gaps += 1
            stream = self._channels.stream_name(channel)
            notice = resync_notice("history-gap", stream)
            replay.append(Outgoing(conn.dialect.render(Envelope(self._node_id, notice))))
        sendable = [message for message in replay if message is not None]
        self.stats.replayed += len(sendable)
        await conn.replay(sendable, replayed)

    def _replayed(self, conn: Connection, message: BrokerMessage) -> Outgoing | None:
        """One history message as ``conn``'s dialect shows it: rendered for this connection."""
        envelope = self._decode(message)
        if envelope is None:  # unreadable: counted by the decoder
            return None
        position = message.position
        assert position is not None, "history messages have positions"
        if conn.dialect is self._v3:
            text = with_position(envelope.text, position)
        else:
            text = conn.dialect.render(envelope)
        return Outgoing(text, message.channel, position)

    async def take_positions(self, conn: Connection) -> None:
        """A legacy connection resumes where its client's last connection stopped, if one
        left its positions: replay from the earliest, and use up the newest entry."""
        try:
            entries = await self._cursors.entries(conn.group_id, conn.client_id)
            if not entries:
                return
            parsed = {key: parse_stored(text) for key, text in entries.items()}
            newest = max(parsed, key=lambda key: sum(p.offset for p in parsed[key].values()))
            await self._cursors.discard(conn.group_id, conn.client_id, newest)
        except BackendUnavailable as exc:
            log.warning("no stored positions for %r (%s): it starts live", conn, exc)
            return
        positions = earliest(list(parsed.values()))
        if positions:
            since = self._channels.by_channel(conn.group_id, conn.client_id, positions)
            conn.hold_for_recovery(since)
            conn.resumed_from = since

    async def leave_positions(self, conn: Connection) -> None:
        """Store where a legacy connection stopped, for its client's next connect.

        What it was sent is what this node delivered of each stream, less what still waited
        in its queue (or behind its recovery). V3 clients keep their own positions.
        """
        if conn.dialect is self._v3 or not self._broker.history.enabled or conn.left_positions:
            return
        conn.left_positions = True
        recovering = conn.recovering_since or {}
        if conn.resumed_from is not None and _unproven(conn):
            # It took stored positions, yet never showed it was there: a handshake the client
            # gave up on, whose replay went nowhere. Its successor starts from them again.
            recovering = conn.resumed_from
        waiting: dict[str, Position] = {}  # channel -> oldest position not sent
        for message in conn.undelivered():
            if message.position is not None:
                waiting.setdefault(message.channel, message.position)
        positions: dict[StreamName, Position] = {}
        for name, channel in self._channels.streams(conn.group_id, conn.client_id).items():
            if channel in recovering:  # its replay was never sent
                positions[name] = recovering[channel]
            elif (first := waiting.get(channel)) is not None:
                positions[name] = Position(first.epoch, first.offset - 1)
            elif (cursor := self._streams.cursors.get(channel)) is not None:
                positions[name] = cursor
        if not positions:
            return
        try:
            await self._cursors.save(
                conn.group_id, conn.client_id, conn.conn_id, format_positions(positions)
            )
        except BackendUnavailable as exc:
            log.warning("could not store the positions of %r: %s", conn, exc)
        else:
            self.stats.legacy_positions_saved += 1
