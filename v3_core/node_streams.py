"""NodeStreams: this node's position in every stream it delivers, and the gap fill.

Messages of a stream reach a node in offset order, so a node that knows the last position it
delivered sees a gap the moment it opens (a subscriber that reconnected, a failover) and
fills it from history before it delivers past it; only what history cannot cover becomes a
``resync`` for that stream's local members.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .backends.base import Broker, BrokerMessage
from .errors import BackendUnavailable
from .routing import Envelope
from .streams import EMPTY, Position, covers, judge

Decoded = tuple[BrokerMessage, Envelope]

log = logging.getLogger("aether.streams")


@dataclass(slots=True)
class GapFillStats:
    fills: int = 0  # gaps filled from history
    messages: int = 0  # messages those fills delivered
    failures: int = 0  # gaps history could not cover (a resync went out)


class NodeStreams:
    """Cursors of the channels this node holds members of, and the fills under way.

    ``decode`` reads a message's envelope (None: unreadable, dropped before it can move a
    cursor or open a gap); ``deliver`` hands it in order to the local members;
    ``announce_gap`` tells the members of a channel that history could not cover its gap.
    """

    def __init__(
        self,
        broker: Broker,
        decode: Callable[[BrokerMessage], Envelope | None],
        deliver: Callable[[BrokerMessage, Envelope], None],
        announce_gap: Callable[[str, str], None],
    ) -> None:
        self._broker = broker
        self._decode = decode
        self._deliver = deliver
        self._announce_gap = announce_gap
        self.cursors: dict[str, Position] = {}
        # Channels that carried messages without a position (a publisher with history off):
        # history cannot tell what they lost.
        self._unnumbered: set[str] = set()
        self._filling: dict[str, list[Decoded]] = {}  # channel -> live messages held
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = GapFillStats()

    def receive(self, message: BrokerMessage) -> None:
        """Deliver a live message, or hold it behind a gap being filled."""
        envelope = self._decode(message)
        if envelope is not None:
            self._receive((message, envelope))

    def _receive(self, decoded: Decoded) -> None:
        message = decoded[0]
        position = message.position
        if position is None:
            self._unnumbered.add(message.channel)
            self._deliver(*decoded)
            return
        channel = message.channel
        held = self._filling.get(channel)
        if held is not None:
            held.append(decoded)
            return
        verdict = judge(self.cursors.get(channel), position)
        if verdict == "deliver":
            self.cursors[channel] = position
            self._deliver(*decoded)
        elif verdict == "gap":
            self._fill(channel, [decoded], "history-gap")

    def learn(self, channel: str, position: Position) -> None:
        """The stream's position when this node subscribed: what a gap is measured from."""
        self.cursors.setdefault(channel, position)

    def forget(self, channels: Iterable[str]) -> None:
        """Channels this node no longer subscribes to."""
        for channel in channels:
            self.cursors.pop(channel, None)
            self._unnumbered.discard(channel)

    def reset(self) -> None:
        """History is gone (Redis restarted empty): every stream starts a new epoch."""
        self.cursors.clear()
        self._unnumbered.clear()

    def fill_all(self, channels: Iterable[str], reason: str) -> None:
        """The broker may have missed messages on every channel: fill each from history."""
        for channel in channels:
            if channel in self._filling:
                continue
            if channel in self.cursors and channel not in self._unnumbered:
                self._fill(channel, [], reason)
            else:
                # Never learned where it stood: nothing to measure a gap from.
                self.stats.failures += 1
                self._announce_gap(channel, reason)

    def _fill(self, channel: str, held: list[Decoded], reason: str) -> None:
        cursor = self.cursors.get(channel)
        first = held[0][0].position if held else None
        since = cursor or EMPTY
        if cursor is not None and first is not None and first.epoch != cursor.epoch:
            since = EMPTY  # a new epoch: every message of it is after what we delivered
        self._filling[channel] = held
        task = asyncio.create_task(self._run_fill(channel, since, reason), name="gap-fill")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_fill(self, channel: str, since: Position, reason: str) -> None:
        try:
            state, found = await self._broker.history_after(channel, since)
            covered = covers(state, since, self._broker.history.size)
        except BackendUnavailable as exc:
            log.warning("gap fill of %s failed: %s", channel, exc)
            covered, found = False, []
        except Exception:  # a bug must not leave the channel held forever
            log.exception("gap fill of %s failed", channel)
            covered, found = False, []
        held = self._filling.pop(channel, [])
        if covered:
            self.stats.fills += 1
            for message in found:
                cursor = self.cursors.get(channel)
                self.receive(message)
                if self.cursors.get(channel) is not cursor:
                    self.stats.messages += 1
        else:
            self.stats.failures += 1
            self.cursors.pop(channel, None)
            self._announce_gap(channel, reason)
        for decoded in held:
            self._after_fill(decoded, reason)

    def _after_fill(self, decoded: Decoded, reason: str) -> None:
        """A message held behind a fill: one still past a gap is not in history (another
        epoch), so its gap is announced rather than filled again and again."""
        channel, position = decoded[0].channel, decoded[0].position
        assert position is not None, "only positioned messages are held"
        if channel in self._filling or judge(self.cursors.get(channel), position) != "gap":
            self._receive(decoded)
            return
        self.stats.failures += 1
        self._announce_gap(channel, reason)
        self.cursors[channel] = position
        self._deliver(*decoded)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
