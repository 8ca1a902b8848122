"""Stream positions and the rules of history and recovery (docs/design.md section 9). Pure: no I/O.

Each group, each client (its ``direct`` messages) and the platform (``broadcast``) has a
stream. The broker numbers every message of a stream as it appends it to history, so a
position (``epoch``, ``offset``) names one message; a node and a client compare positions to
find what they missed, and history either covers the gap or says it cannot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

StreamName = Literal["group", "client", "broadcast"]
STREAM_NAMES: tuple[StreamName, ...] = ("group", "client", "broadcast")

# An epoch is short and URL-safe, so it fits ``?recover=`` with no escaping.
_EPOCH = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_OFFSET = (1 << 63) - 1  # Redis counts in signed 64-bit integers


@dataclass(frozen=True, slots=True)
class Position:
    """The last message seen of a stream. ``epoch`` "" is a stream that had no history then:
    every message of whatever epoch it has now came after."""

    epoch: str
    offset: int


EMPTY = Position("", 0)


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """How much of each stream the broker keeps; ``size`` 0 turns history off."""

    size: int = 1000
    ttl: float = 300.0

    def __post_init__(self) -> None:
        if self.size < 0 or self.ttl <= 0:
            raise ValueError("history size must be >= 0 and its TTL > 0")

    @property
    def enabled(self) -> bool:
        return self.size > 0


def parse_recover(text: str) -> dict[StreamName, Position]:
    """``group:<epoch>:<offset>,client:...,broadcast:...`` (any subset, each once).

    Raises ValueError with a readable reason, which the socket's 1008 close carries.
    """
    positions: dict[StreamName, Position] = {}
    for item in text.split(","):
        name, epoch, offset = _three(item)
        if name not in STREAM_NAMES:
            raise ValueError(f"recover: unknown stream {name[:20]!r} (group, client, broadcast)")
        stream: StreamName = name
        if stream in positions:
            raise ValueError(f"recover: stream {stream!r} named twice")
        if not _EPOCH.match(epoch):
            raise ValueError(f"recover: {stream} epoch must be 1-64 of [A-Za-z0-9_-]")
        if not offset.isascii() or not offset.isdigit() or int(offset) > _MAX_OFFSET:
            raise ValueError(f"recover: {stream} offset must be a non-negative integer")
        positions[stream] = Position(epoch, int(offset))
    return positions


def _three(item: str) -> tuple[str, str, str]:
    parts = item.split(":")
    if len(parts) != 3:
        raise ValueError("recover: expected stream:epoch:offset items separated by commas")
    return parts[0], parts[1], parts[2]


def format_positions(positions: dict[StreamName, Position]) -> str:
    """The inverse of parse_recover (an empty epoch is kept as is, for stored positions)."""
    return ",".join(f"{name}:{p.epoch}:{p.offset}" for name, p in positions.items())


def parse_stored(text: str) -> dict[StreamName, Position]:
    """Positions a node stored for a legacy client; like parse_recover, empty epochs allowed."""
    positions: dict[StreamName, Position] = {}
    for item in filter(None, text.split(",")):
        name, epoch, offset = _three(item)
        if name in STREAM_NAMES and (not epoch or _EPOCH.match(epoch)) and offset.isdigit():
            positions[name] = Position(epoch, int(offset))
    return positions


def earliest(stored: Sequence[dict[StreamName, Position]]) -> dict[StreamName, Position]:
    """Per stream, the position that misses nothing for any of ``stored``.

    Positions of different epochs cannot be ordered: the stream then recovers from nowhere,
    which history can never cover, so it gets a resync rather than a silent gap.
    """
    merged: dict[StreamName, Position] = {}
    for positions in stored:
        for name, position in positions.items():
            held = merged.get(name)
            if held is None:
                merged[name] = position
            elif held.epoch != position.epoch:
                merged[name] = Position("-", 0)
            elif position.offset < held.offset:
                merged[name] = position
    return merged


# -- what history can cover ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamState:
    """What a broker read of one stream found: its epoch ("" if it has no history), its last
    offset, and the oldest offset among the entries it returned (0 if none)."""

    epoch: str
    last: int
    first: int = 0


def covers(state: StreamState, since: Position, size: int) -> bool:
    """Whether history holds every message of the stream after ``since``.

    ``state.first`` is the oldest offset read after ``since`` (read with a limit of ``size``).
    """
    if not state.epoch:  # no history now: covered only if there was none then either
        return since == EMPTY
    if since.epoch == "":  # the stream began after: history must start at its first message
        return since.offset == 0 and (state.last == 0 or state.first == 1)
    if since.epoch != state.epoch or since.offset > state.last:
        return False
    if since.offset == state.last:
        return True
    return state.last - since.offset <= size and state.first == since.offset + 1


# -- the position inside the message text --------------------------------------------------


def with_position(text: str, position: Position) -> str:
    """``text`` (an encoded V3 object) with ``offset`` and ``epoch`` added at its end.

    Done once per message per node: the text is spliced, never decoded. Epochs are
    ``[A-Za-z0-9_-]``, so they need no escaping.
    """
    return f'{text[:-1]},"offset":{position.offset},"epoch":"{position.epoch}"}}'


# -- a node's view of each stream it delivers ----------------------------------------------

Verdict = Literal["deliver", "duplicate", "gap"]


def judge(cursor: Position | None, position: Position) -> Verdict:
    """What a node does with a live message at ``position`` after delivering ``cursor``."""
    if cursor is None:
        return "deliver"
    if position.epoch != cursor.epoch:
        # A new epoch (history lost or expired): its first message needs nothing before it.
        return "deliver" if position.offset == 1 else "gap"
    if position.offset <= cursor.offset:
        return "duplicate"
    return "deliver" if position.offset == cursor.offset + 1 else "gap"
