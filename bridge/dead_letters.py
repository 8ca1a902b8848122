"""Dead letters: samples of what the bridge refused to pass on, for ops to act on.

Recorded for every legacy frame the bridge refuses (untranslatable, unknown ID, too big, ...)
and every broker message no client could be given (unreadable, or lost to a slow consumer).
Recording happens only on a refusal and costs a dict lookup; at most ``per_flush`` samples per
group and code wait in memory until the next flush to the store (one pipeline a second), so a
flood of bad frames costs neither Redis calls nor memory. Tokens are redacted and payloads cut
before a sample is kept, so nothing is ever stored or logged in full.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from translators.tags import client_legacy, group_legacy
from v3_core.backends.base import BrokerMessage
from v3_core.connection import Connection
from v3_core.errors import BackendUnavailable, MessageRejected

from .dead_letter_store import DeadLetter, DeadLetterStore
from .periodic import every

log = logging.getLogger("aether.dead_letters")

SAMPLE_BYTES = 512  # of a refused frame or message kept in a sample
DETAIL_CHARS = 200
PER_FLUSH = 3  # samples per group and code kept between two flushes
MAX_PENDING_KEYS = 200  # groups x codes waiting for a flush; beyond, only counted

_SECRET_FIELD = re.compile(
    r'("[^"]*(?:token|secret|password|passwd|authorization|api[_-]?key|credential)[^"]*"\s*:\s*)'
    r'"[^"]*"?',
    re.IGNORECASE,
)
_SECRET_PARAM = re.compile(
    r"((?:^|[?&\s])[\w.-]*(?:token|secret|password|api[_-]?key)[\w.-]*=)[^&\s\"']*",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.?[A-Za-z0-9_-]*")


def redact(text: str) -> str:
    """``text`` with what looks like a credential replaced by ``[redacted]``."""
    text = _SECRET_FIELD.sub(r'\1"[redacted]"', text)
    text = _SECRET_PARAM.sub(r"\1[redacted]", text)
    text = _BEARER.sub(r"\1[redacted]", text)
    return _JWT.sub("[redacted]", text)


def cut(text: str, limit: int = SAMPLE_BYTES) -> str:
    """Redacted and at most ``limit`` bytes of UTF-8, saying how much was left out."""
    head = redact(text[: limit * 2])  # redact before cutting: a cut token would not match
    raw = head.encode()
    if len(raw) <= limit and len(text) <= limit * 2:
        return head
    kept = raw[:limit].decode(errors="ignore")
    return f"{kept}…[{len(text.encode()) - len(kept.encode())} more bytes]"


class DeadLetters:
    """The node's recorder (a RefusalSink for the manager); ``async with`` flushes it."""

    def __init__(
        self,
        store: DeadLetterStore,
        *,
        node_id: str,
        max_frame_bytes: int = 65536,
        flush_interval: float = 1.0,
        sample_bytes: int = SAMPLE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.counts: dict[str, int] = {}  # code -> dead letters (all of them, sampled or not)
        self._max_frame = max_frame_bytes
        self._interval = flush_interval
        self._sample_bytes = sample_bytes
        self._clock = clock
        self._pending: dict[tuple[str, str], list[DeadLetter]] = {}
        self._unflushed: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- RefusalSink -------------------------------------------------------------------

    def frame_refused(self, conn: Connection, text: str, rejected: MessageRejected) -> None:
        if self._count(conn.group_id, rejected.code):
            self._keep("legacy-frame", rejected.code, conn.group_id, rejected.detail, text, conn)

    def frame_too_big(self, conn: Connection) -> None:
        if self._count(conn.group_id, "too-big"):
            detail = f"a frame over {self._max_frame} bytes; the socket was closed with 1009"
            self._keep("legacy-frame", "too-big", conn.group_id, detail, None, conn)

    def broker_unreadable(self, message: BrokerMessage, reason: str) -> None:
        if self._count(message.channel, "broker-unreadable"):
            text = message.data[: self._sample_bytes * 2].decode(errors="replace")
            code, channel = "broker-unreadable", message.channel
            self._keep("broker", code, channel, reason, text, size=len(message.data))

    def no_recipient(self, channel: str, text: str, origin: Connection | None) -> None:
        group_id = origin.group_id if origin is not None else channel
        if self._count(group_id, "no-recipient"):
            detail = f"a direct message on {channel} reached no node: its client is not connected"
            self._keep("broker", "no-recipient", group_id, detail, text, origin)

    def slow_consumer(self, conn: Connection, undelivered: str | None) -> None:
        if self._count(conn.group_id, "slow-consumer"):
            detail = "closed with 4008 (it did not read fast enough); the sample is the first "
            detail += "message it was not given" if undelivered else "message it lost (none)"
            self._keep("broker", "slow-consumer", conn.group_id, detail, undelivered, conn)

    # -- recording ---------------------------------------------------------------------

    def _count(self, group_id: str, code: str) -> bool:
        """Count one; True when a sample of it should be kept until the next flush."""
        self.counts[code] = self.counts.get(code, 0) + 1
        self._unflushed[code] = self._unflushed.get(code, 0) + 1
        pending = self._pending.get((group_id, code))
        if pending is None:
            return len(self._pending) < MAX_PENDING_KEYS
        return len(pending) < PER_FLUSH

    def _keep(
        self,
        source: str,
        code: str,
        group_id: str,
        detail: str,
        text: str | None,
        conn: Connection | None = None,
        size: int | None = None,
    ) -> None:
        letter = DeadLetter(
            at=self._clock(),
            node=self.node_id,
            source=source,
            code=code,
            group_id=group_id,
            detail=cut(detail, DETAIL_CHARS),
            sample=cut(text, self._sample_bytes) if text else "",
            size=size if size is not None else len(text.encode()) if text else 0,
            client_id=conn.client_id if conn is not None else "",
            group_legacy=group_legacy(conn.tags) if conn is not None else "",
            client_legacy=client_legacy(conn.tags) if conn is not None else "",
        )
        self._pending.setdefault((group_id, code), []).append(letter)

    # -- flushing ----------------------------------------------------------------------

    async def flush(self) -> None:
        """Hand the samples and counts kept since the last flush to the store."""
        if not self._pending and not self._unflushed:
            return
        pending, self._pending = self._pending, {}
        counts, self._unflushed = self._unflushed, {}
        letters = [letter for group in pending.values() for letter in group]
        try:
            await self.store.record(letters, counts)
        except BackendUnavailable as exc:
            # Samples are best effort: dropped, not retried (the counts stay in /metrics).
            log.warning("dead letters not stored (%d samples dropped): %s", len(letters), exc)

    async def recent(self, limit: int = 100) -> tuple[list[DeadLetter], dict[str, int]]:
        """The newest samples of every node, and the cluster's counts per code."""
        await self.flush()
        return await self.store.recent(limit), await self.store.counts()

    async def __aenter__(self) -> DeadLetters:
        self._task = asyncio.create_task(
            every(self._interval, self._stop, self.flush, log, "dead letter flush"),
            name="dead-letters",
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self.flush()
        await self.store.aclose()


def dead_letters_json(letters: list[DeadLetter], counts: dict[str, int]) -> dict[str, Any]:
    """``GET /v2/dead-letters``: newest first, and the counts per code (every node)."""
    ordered = sorted(letters, key=lambda d: -d.at)
    return {"counts": dict(sorted(counts.items())), "dead_letters": [d.as_json() for d in ordered]}
