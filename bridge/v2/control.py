"""One node's side of the V2 phase-out: admit or refuse legacy sockets, and count their use.

The policy is held in memory and refreshed from the store every ``refresh_interval`` seconds,
so admitting a socket costs no Redis call and a change reaches every node within that interval.
Usage is read from the node's own legacy connections (``messages_in``) every ``flush_interval``
seconds and at shutdown, and flushed to the store in one pipeline: no per-message Redis work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

from bridge.periodic import every
from translators.tags import client_legacy, group_legacy
from v3_core.connection import Connection
from v3_core.errors import BackendUnavailable, CloseCode, ConnectionRejected

from .policy import GLOBAL, Mode, V2Policy, closed_reason, deprecation_notice
from .store import V2Store
from .usage import ClientDelta, GroupUsage, UsageDelta, merge_into

log = logging.getLogger("aether.v2")


@dataclass(slots=True)
class V2Stats:
    """Plain counters for /metrics."""

    opened: int = 0
    refused: int = 0
    warned: int = 0
    messages_of_closed: int = 0  # frames from legacy connections that have ended


class V2Control:
    """Use as ``async with V2Control(store, ...) as v2``; it closes the store on exit."""

    def __init__(
        self,
        store: V2Store,
        *,
        refresh_interval: float = 1.0,
        flush_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.policy = V2Policy()
        self.stats = V2Stats()
        self._refresh_interval = refresh_interval
        self._flush_interval = flush_interval
        self._clock = clock
        self._open: dict[Connection, int] = {}  # legacy connection -> messages_in at last flush
        self._pending: UsageDelta = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._refresh_failing = False

    async def __aenter__(self) -> V2Control:
        await self.refresh()
        self._tasks = [
            asyncio.create_task(
                every(self._refresh_interval, self._stop, self.refresh, log, "V2 policy refresh"),
                name="v2-policy",
            ),
            asyncio.create_task(
                every(self._flush_interval, self._stop, self.flush, log, "V2 usage flush"),
                name="v2-usage",
            ),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Stopped, not cancelled: redis-py can turn a cancellation inside a call into an error,
        # which the loop would log and carry on from. Each round is bounded by the store timeout.
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self.flush()
        await self.store.aclose()

    # -- policy --------------------------------------------------------------------------

    def mode_for(self, group_id: str) -> Mode:
        return self.policy.mode_for(group_id)

    def admit(self, group_id: str, client_id: str) -> str | None:
        """The greeting for a legacy socket (``warn``: a deprecation notice; ``open``: None).

        Raises ConnectionRejected (1008, with the V3 path) when V2 is closed for the group.
        A notice is counted as sent by ``track``, once the socket got it: the connection may
        still be refused (a connection limit) after this.
        """
        mode = self.mode_for(group_id)
        if mode == "closed":
            self.stats.refused += 1
            raise ConnectionRejected(CloseCode.POLICY_VIOLATION, closed_reason(group_id, client_id))
        if mode == "warn":
            return deprecation_notice(group_id, client_id)
        return None

    async def set_mode(self, group_id: str | None, mode: Mode | None) -> V2Policy:
        """Change the mode in the store; this node applies it at once, others within the
        refresh interval. Raises BackendUnavailable."""
        await self.store.set_mode(group_id or GLOBAL, mode)
        await self.refresh(raise_errors=True)
        return self.policy

    async def refresh(self, *, raise_errors: bool = False) -> None:
        """Reload the policy; on failure keep the last one known (log once per outage)."""
        try:
            self.policy = await self.store.policy()
        except BackendUnavailable as exc:
            if raise_errors:
                raise
            if not self._refresh_failing:
                log.warning("V2 policy refresh failed, keeping the last one: %s", exc)
            self._refresh_failing = True
        else:
            self._refresh_failing = False

    # -- usage ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def track(self, conn: Connection, *, greeted: bool = False) -> Iterator[None]:
        """Count a legacy connection while it is open; a connect counts even with no frames.

        ``greeted``: the socket was sent the deprecation notice (``warn``).
        """
        self.stats.opened += 1
        if greeted:
            self.stats.warned += 1
        self._open[conn] = 0
        self._note(conn, messages=0, connects=1)
        try:
            yield
        finally:
            counted = self._open.pop(conn, 0)
            self._note(conn, messages=conn.messages_in - counted, connects=0)
            self.stats.messages_of_closed += conn.messages_in

    @property
    def connections(self) -> int:
        return len(self._open)

    def legacy_by_group(self) -> dict[str, tuple[int, str]]:
        """Open legacy connections per group, with the group's legacy integer (ops page)."""
        found: dict[str, tuple[int, str]] = {}
        for conn in self._open:
            n, legacy = found.get(conn.group_id, (0, ""))
            found[conn.group_id] = (n + 1, legacy or group_legacy(conn.tags))
        return found

    @property
    def messages_total(self) -> int:
        return self.stats.messages_of_closed + sum(c.messages_in for c in self._open)

    def collect(self) -> UsageDelta:
        """Take what was seen since the last call: open connections count as seen now."""
        for conn, counted in self._open.items():
            self._open[conn] = conn.messages_in
            self._note(conn, messages=conn.messages_in - counted, connects=0)
        delta, self._pending = self._pending, {}
        return delta

    async def flush(self) -> None:
        delta = self.collect()
        try:
            await self.store.record(delta)
        except BackendUnavailable as exc:
            log.warning("V2 usage flush failed; retrying later: %s", exc)
            merge_into(self._pending, delta)

    async def usage(self) -> list[GroupUsage]:
        """Usage from every node, with this node's latest counts flushed first."""
        await self.flush()
        return await self.store.usage()

    def _note(self, conn: Connection, *, messages: int, connects: int) -> None:
        key = (conn.group_id, conn.client_id)
        delta = ClientDelta(
            group_legacy(conn.tags), client_legacy(conn.tags), messages, connects, self._clock()
        )
        merge_into(self._pending, {key: delta})
