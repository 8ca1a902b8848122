"""IdMapper: legacy database integers <-> Vision IDs, the same answer on every node.

Lookup order: in-process LRU cache, then the IdStore, then the upstream API when one is
configured (it is the authority: an integer it does not know is refused), else a freshly
minted Vision ID stored with put_if_absent, so nodes minting at once agree on the winner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from v3_core.errors import BackendUnavailable, CloseCode, ConnectionRejected
from v3_core.ids import VisionId, is_legacy_int, is_vision_id, new_vision_id

from .id_stores import IdStore, MemoryIdStore, Namespace, RedisIdStore
from .upstream import IdLookup

__all__ = ["IdMapper", "IdStore", "MemoryIdStore", "Namespace", "RedisIdStore", "ResolvedId"]

log = logging.getLogger("aether.id_mapping")

K = TypeVar("K")
V = TypeVar("V")
_Key = tuple[str, str]  # (namespace, legacy integer or Vision ID)

MIGRATION_HINT = "see docs/migration-guide.md"


@dataclass(frozen=True, slots=True)
class ResolvedId:
    """A path ID as the core uses it: the Vision ID, and its database integer or ""."""

    vision_id: VisionId
    legacy: str


class _Lru(Generic[K, V]):
    """A bounded dict that forgets the least recently used entry first."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self._maxsize:
            self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        self._data.pop(key, None)


def canonical_legacy(legacy: str) -> str:
    """``"007"`` and ``"7"`` are one database row: map the number, not its spelling."""
    return str(int(legacy))


class IdMapper:
    """Maps legacy integers to Vision IDs and back; one per node, shared by its connections.

    Concurrent lookups of one uncached integer share one in-flight call (at most one upstream
    call per distinct ID). A failed lookup is remembered for ``failure_ttl`` seconds, so a
    reconnect storm against a failing upstream does not multiply its load.
    """

    def __init__(
        self,
        store: IdStore,
        *,
        upstream: IdLookup | None = None,
        cache_size: int = 100_000,
        failure_ttl: float = 2.0,
        absent_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        mint: Callable[[], VisionId] = new_vision_id,
    ) -> None:
        self.store = store
        self.upstream = upstream
        self._forward: _Lru[_Key, VisionId] = _Lru(cache_size)
        self._reverse: _Lru[_Key, str] = _Lru(cache_size)
        self._failures: _Lru[_Key, tuple[float, ConnectionRejected]] = _Lru(1024)
        # Most V3 clients have no legacy integer: remember that for a while, so their connects
        # do not each cost a store round trip.
        self._absent: _Lru[_Key, float] = _Lru(cache_size)
        self._absent_ttl = absent_ttl
        self._inflight: dict[_Key, asyncio.Task[VisionId]] = {}
        self._failure_ttl = failure_ttl
        self._clock = clock
        self._mint = mint

    async def resolve(self, namespace: Namespace, raw: str) -> ResolvedId:
        """A legacy path ID (a database integer or a Vision ID) as the core uses it.

        Raises ConnectionRejected: 1008 for a malformed or (per the upstream) unknown ID,
        1013 when the store or upstream cannot answer and the ID is not cached.
        """
        if is_legacy_int(raw):
            legacy = canonical_legacy(raw)
            return ResolvedId(await self.to_vision(namespace, legacy), legacy)
        if is_vision_id(raw):
            try:
                legacy_or_none = await self.legacy_of(namespace, raw)
            except BackendUnavailable as exc:
                raise _try_later(exc) from exc
            return ResolvedId(VisionId(raw), legacy_or_none or "")
        raise ConnectionRejected(
            CloseCode.POLICY_VIOLATION,
            f"{namespace} ID {raw[:32]!r} is neither a database integer nor a Vision ID; "
            + MIGRATION_HINT,
        )

    async def to_vision(self, namespace: Namespace, legacy: str) -> VisionId:
        """The Vision ID of a database integer. Raises ConnectionRejected as resolve() does."""
        legacy = canonical_legacy(legacy)
        key: _Key = (namespace, legacy)
        if (cached := self._forward.get(key)) is not None:
            return cached
        if (failed := self._failures.get(key)) is not None:
            until, rejected = failed
            if self._clock() < until:
                raise ConnectionRejected(rejected.close_code, rejected.reason)
            self._failures.pop(key)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(
                self._fetch(namespace, legacy), name=f"id-lookup-{namespace}-{legacy}"
            )
            self._inflight[key] = task
            task.add_done_callback(partial(self._settle, key))
        # shield: a waiter that gives up does not cancel the lookup the others wait for.
        return await asyncio.shield(task)

    def cached_vision(self, namespace: Namespace, legacy: str) -> VisionId | None:
        """The Vision ID of a database integer if this node has it cached: no I/O."""
        return self._forward.get((namespace, canonical_legacy(legacy)))

    async def existing(self, namespace: Namespace, legacy: str) -> VisionId:
        """The Vision ID of an integer that exists already; never mints one (addressees).

        Without an upstream, an integer no client has connected with is unknown: nobody can
        receive what is sent to it, and minting for it would let any client fill the store.
        Raises ConnectionRejected as resolve() does (1008 when unknown).
        """
        if self.upstream is not None:  # the authority: its answer is stored, unknown refused
            return await self.to_vision(namespace, legacy)
        legacy = canonical_legacy(legacy)
        if (cached := self._forward.get((namespace, legacy))) is not None:
            return cached
        try:
            stored = await self.store.get(namespace, legacy)
        except BackendUnavailable as exc:
            raise _try_later(exc) from exc
        if stored is None:
            raise ConnectionRejected(
                CloseCode.POLICY_VIOLATION,
                f"unknown legacy {namespace} ID {legacy}: no client has connected with it",
            )
        vision_id = VisionId(stored)
        self._remember(namespace, legacy, vision_id)
        return vision_id

    async def legacy_of(self, namespace: Namespace, vision_id: str) -> str | None:
        """The database integer of a Vision ID, from the cache or the store (never upstream).

        Raises BackendUnavailable when the store does not answer.
        """
        if (cached := self.cached_legacy(namespace, vision_id)) is not None:
            return cached
        key: _Key = (namespace, vision_id)
        if (until := self._absent.get(key)) is not None and self._clock() < until:
            return None
        legacy = await self.store.get_legacy(namespace, vision_id)
        if legacy is not None:
            self._remember(namespace, legacy, VisionId(vision_id))
        elif self._absent_ttl > 0:
            self._absent.put(key, self._clock() + self._absent_ttl)
        return legacy

    def cached_legacy(self, namespace: str, vision_id: str) -> str | None:
        """The database integer of a Vision ID if this node has seen it: no I/O (rendering)."""
        return self._reverse.get((namespace, vision_id))

    async def aclose(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await self.store.aclose()
        if self.upstream is not None:
            await self.upstream.aclose()

    def _remember(self, namespace: Namespace, legacy: str, vision_id: VisionId) -> None:
        self._forward.put((namespace, legacy), vision_id)
        self._reverse.put((namespace, vision_id), legacy)
        self._absent.pop((namespace, vision_id))

    def _settle(self, key: _Key, task: asyncio.Task[VisionId]) -> None:
        del self._inflight[key]
        if task.cancelled():
            return
        error = task.exception()  # also marks it retrieved when nobody waited
        if isinstance(error, ConnectionRejected) and self._failure_ttl > 0:
            self._failures.put(key, (self._clock() + self._failure_ttl, error))

    async def _fetch(self, namespace: Namespace, legacy: str) -> VisionId:
        try:
            stored = await self.store.get(namespace, legacy)
        except BackendUnavailable as exc:
            if self.upstream is None:  # minting without the store would split the nodes
                raise _try_later(exc) from exc
            stored = None
        if stored is not None:
            vision_id = VisionId(stored)
        else:
            vision_id = await self._create(namespace, legacy)
        self._remember(namespace, legacy, vision_id)
        return vision_id

    async def _create(self, namespace: Namespace, legacy: str) -> VisionId:
        if self.upstream is None:
            candidate, authoritative = self._mint(), False
        else:
            candidate, authoritative = await self._ask_upstream(namespace, legacy), True
        try:
            return VisionId(await self.store.put_if_absent(namespace, legacy, candidate))
        except BackendUnavailable as exc:
            if authoritative:  # the upstream's answer is right without the store too
                # ... but other nodes will ask the upstream again: worth a line in the log.
                log.warning("could not store %s %s from the upstream: %s", namespace, legacy, exc)
                return candidate
            raise _try_later(exc) from exc

    async def _ask_upstream(self, namespace: Namespace, legacy: str) -> VisionId:
        assert self.upstream is not None
        try:
            found = await self.upstream.lookup(namespace, legacy)
        except BackendUnavailable as exc:
            raise _try_later(exc) from exc
        if found is None:
            raise ConnectionRejected(
                CloseCode.POLICY_VIOLATION,
                f"unknown legacy {namespace} ID {legacy}; {MIGRATION_HINT}",
            )
        return VisionId(found)


def _try_later(cause: BackendUnavailable) -> ConnectionRejected:
    log.warning("legacy ID lookup failed: %s", cause)
    return ConnectionRejected(
        CloseCode.TRY_AGAIN_LATER, "legacy ID lookup unavailable; retry with backoff"
    )
