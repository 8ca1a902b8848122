"""IdMapper: cache -> store -> upstream -> mint, single-flight, failures, several nodes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from translators import (
    IdMapper,
    IdStore,
    MemoryIdStore,
    Namespace,
    RedisIdStore,
    ResolvedId,
    UpstreamIdLookup,
    open_id_mapper,
)
from v3_core.errors import BackendUnavailable, CloseCode, ConnectionRejected
from v3_core.ids import VisionId, is_vision_id

from ..helpers import wait_until
from ..support.clock import FakeClock

BASE = "http://ids.test"
UNAVAILABLE = "legacy ID lookup unavailable; retry with backoff"


class CountingStore(MemoryIdStore):
    """A MemoryIdStore that counts forward reads, to see what the cache saves."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    async def get(self, namespace: Namespace, legacy: str) -> str | None:
        self.gets += 1
        return await super().get(namespace, legacy)


class DownIdStore:
    """An IdStore whose backend never answers."""

    async def get(self, namespace: Namespace, legacy: str) -> str | None:
        raise BackendUnavailable("store down")

    async def get_legacy(self, namespace: Namespace, vision_id: str) -> str | None:
        raise BackendUnavailable("store down")

    async def put_if_absent(self, namespace: Namespace, legacy: str, vision_id: str) -> str:
        raise BackendUnavailable("store down")

    async def aclose(self) -> None:
        return None


class ReadOnlyStore(MemoryIdStore):
    """An IdStore that answers reads but whose writes fail."""

    async def put_if_absent(self, namespace: Namespace, legacy: str, vision_id: str) -> str:
        raise BackendUnavailable("read-only replica")


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def upstream() -> AsyncIterator[UpstreamIdLookup]:
    lookup = UpstreamIdLookup(BASE, timeout=0.2)
    yield lookup
    await lookup.aclose()


def rejected_with(caught: pytest.ExceptionInfo[ConnectionRejected]) -> tuple[int, str]:
    return caught.value.close_code, caught.value.reason


# -- without an upstream: mint -----------------------------------------------------------


async def test_mapper_mints_a_vision_id_for_a_new_integer() -> None:
    assert is_vision_id(await IdMapper(MemoryIdStore()).to_vision("client", "42"))


async def test_mapper_stores_what_it_mints() -> None:
    store = MemoryIdStore()
    vision_id = await IdMapper(store).to_vision("client", "42")
    assert await store.get("client", "42") == vision_id


async def test_mapper_answers_the_same_twice() -> None:
    mapper = IdMapper(MemoryIdStore())
    assert await mapper.to_vision("group", "1") == await mapper.to_vision("group", "1")


async def test_mapper_leading_zeros_are_the_same_integer() -> None:
    mapper = IdMapper(MemoryIdStore())
    assert await mapper.to_vision("group", "007") == await mapper.to_vision("group", "7")


async def test_mapper_namespaces_are_separate() -> None:
    mapper = IdMapper(MemoryIdStore())
    assert await mapper.to_vision("group", "1") != await mapper.to_vision("client", "1")


async def test_mapper_cache_spares_the_store() -> None:
    store = CountingStore()
    mapper = IdMapper(store)
    for _ in range(5):
        await mapper.to_vision("client", "42")
    assert store.gets == 1


async def test_mapper_cache_is_bounded() -> None:
    mapper = IdMapper(MemoryIdStore(), cache_size=2)
    first = await mapper.to_vision("client", "1")
    await mapper.to_vision("client", "2")
    await mapper.to_vision("client", "3")
    assert mapper.cached_legacy("client", first) is None


# -- addressees: existing() never mints (issue 15 #3) ----------------------------------------


async def test_existing_refuses_an_unknown_integer_and_mints_nothing() -> None:
    store = MemoryIdStore()
    with pytest.raises(ConnectionRejected) as caught:
        await IdMapper(store).existing("client", "42")
    assert rejected_with(caught) == (
        CloseCode.POLICY_VIOLATION,
        "unknown legacy client ID 42: no client has connected with it",
    )
    assert await store.get("client", "42") is None


async def test_existing_finds_what_a_connect_minted() -> None:
    store = CountingStore()
    minted = await IdMapper(store).to_vision("client", "42")  # one node's connect
    other_node = IdMapper(store)
    assert await other_node.existing("client", "042") == minted
    assert other_node.cached_vision("client", "42") == minted  # cached: no store read next
    reads = store.gets
    assert await other_node.existing("client", "42") == minted
    assert store.gets == reads


async def test_an_unknown_addressee_does_not_spoil_a_connect_with_that_integer() -> None:
    """A refused addressee is not remembered as a failure: the integer may connect (and mint)."""
    mapper = IdMapper(MemoryIdStore())
    with pytest.raises(ConnectionRejected):
        await mapper.existing("client", "42")
    assert is_vision_id(await mapper.to_vision("client", "42"))


async def test_existing_while_the_store_is_down_is_try_again_later() -> None:
    with pytest.raises(ConnectionRejected) as caught:
        await IdMapper(DownIdStore()).existing("client", "42")
    assert rejected_with(caught) == (CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)


async def test_existing_asks_the_upstream_when_one_is_set(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    api.get("/clients/42").respond(200, json={"vision_id": "cli_upstream"})
    assert await IdMapper(MemoryIdStore(), upstream=upstream).existing("client", "42") == (
        "cli_upstream"
    )


async def test_mapper_without_store_and_upstream_refuses_to_mint() -> None:
    """Minting without the store would give each node its own ID for one integer."""
    with pytest.raises(ConnectionRejected) as caught:
        await IdMapper(DownIdStore()).to_vision("client", "42")
    assert rejected_with(caught) == (CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)


async def test_mapper_refuses_to_mint_when_the_store_cannot_keep_it() -> None:
    with pytest.raises(ConnectionRejected) as caught:
        await IdMapper(ReadOnlyStore()).to_vision("client", "42")
    assert rejected_with(caught) == (CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)


async def test_two_nodes_minting_at_once_agree(store_url: str | None, prefix: str) -> None:
    """Two IdMappers (two nodes) on one store race to mint the same integers."""
    shared = MemoryIdStore()
    stores: list[IdStore] = [
        shared if store_url is None else RedisIdStore(store_url, prefix=prefix) for _ in range(2)
    ]
    node_a, node_b = IdMapper(stores[0]), IdMapper(stores[1])
    try:
        for legacy in map(str, range(20)):
            a, b = await asyncio.gather(
                node_a.to_vision("client", legacy), node_b.to_vision("client", legacy)
            )
            assert a == b
    finally:
        await node_a.aclose()
        await node_b.aclose()


# -- with an upstream --------------------------------------------------------------------


async def test_mapper_asks_the_upstream(api: respx.MockRouter, upstream: UpstreamIdLookup) -> None:
    api.get("/clients/42").respond(200, json={"vision_id": "dev_x1"})
    assert await IdMapper(MemoryIdStore(), upstream=upstream).to_vision("client", "42") == "dev_x1"


async def test_mapper_stores_the_upstream_answer(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    api.get("/clients/42").respond(200, json={"vision_id": "dev_x1"})
    store = MemoryIdStore()
    await IdMapper(store, upstream=upstream).to_vision("client", "42")
    assert await store.get_legacy("client", "dev_x1") == "42"


async def test_mapper_prefers_the_store_to_the_upstream(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    route = api.get("/clients/42").respond(200, json={"vision_id": "dev_other"})
    store = MemoryIdStore()
    await store.put_if_absent("client", "42", "dev_x1")
    assert await IdMapper(store, upstream=upstream).to_vision("client", "42") == "dev_x1"
    assert route.call_count == 0


async def test_mapper_refuses_an_integer_the_upstream_does_not_know(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    api.get("/clients/42").respond(404)
    with pytest.raises(ConnectionRejected) as caught:
        await IdMapper(MemoryIdStore(), upstream=upstream).to_vision("client", "42")
    assert rejected_with(caught) == (
        CloseCode.POLICY_VIOLATION,
        "unknown legacy client ID 42; see docs/migration-guide.md",
    )


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(500), httpx.Response(503), httpx.ReadTimeout("slow")],
    ids=["500", "503", "timeout"],
)
async def test_mapper_upstream_failure_is_try_again_later(
    api: respx.MockRouter, upstream: UpstreamIdLookup, failure: httpx.Response | Exception
) -> None:
    api.get("/clients/42").mock(side_effect=[failure])
    with pytest.raises(ConnectionRejected) as caught:
        await IdMapper(MemoryIdStore(), upstream=upstream).to_vision("client", "42")
    assert rejected_with(caught) == (CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)


async def test_mapper_upstream_failure_mints_nothing(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    api.get("/clients/42").respond(500)
    store = MemoryIdStore()
    with pytest.raises(ConnectionRejected):
        await IdMapper(store, upstream=upstream).to_vision("client", "42")
    assert await store.get("client", "42") is None


async def test_mapper_slow_upstream_fails_within_its_timeout(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200, json={"vision_id": "dev_x1"})

    api.get("/clients/42").mock(side_effect=slow)
    mapper = IdMapper(MemoryIdStore(), upstream=upstream)
    with pytest.raises(ConnectionRejected) as caught:
        await asyncio.wait_for(mapper.to_vision("client", "42"), 1.0)
    assert caught.value.close_code == CloseCode.TRY_AGAIN_LATER


async def test_mapper_serves_a_cached_id_while_the_upstream_is_down(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    route = api.get("/clients/42").mock(
        side_effect=[httpx.Response(200, json={"vision_id": "dev_x1"}), httpx.Response(500)]
    )
    mapper = IdMapper(MemoryIdStore(), upstream=upstream)
    await mapper.to_vision("client", "42")
    assert await mapper.to_vision("client", "42") == "dev_x1"
    assert route.call_count == 1


async def test_mapper_serves_a_stored_id_while_the_upstream_is_down(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    """Another node (or this one before a restart) asked; the store remembers."""
    api.get("/clients/42").mock(
        side_effect=[httpx.Response(200, json={"vision_id": "dev_x1"}), httpx.Response(500)]
    )
    store = MemoryIdStore()
    await IdMapper(store, upstream=upstream).to_vision("client", "42")
    assert await IdMapper(store, upstream=upstream).to_vision("client", "42") == "dev_x1"


async def test_mapper_uses_the_upstream_when_the_store_is_down(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    """The upstream is the authority: its answer is right without the store too."""
    api.get("/clients/42").respond(200, json={"vision_id": "dev_x1"})
    assert await IdMapper(DownIdStore(), upstream=upstream).to_vision("client", "42") == "dev_x1"


async def test_mapper_concurrent_lookups_share_one_upstream_call(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    """Scenario F8 (docs/reliability.md): at most one upstream call per distinct ID."""
    release = asyncio.Event()
    calls: list[str] = []

    async def gated(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        await release.wait()
        return httpx.Response(200, json={"vision_id": "dev_x1"})

    api.get("/clients/42").mock(side_effect=gated)
    mapper = IdMapper(MemoryIdStore(), upstream=upstream)
    lookups = [asyncio.create_task(mapper.to_vision("client", "42")) for _ in range(50)]
    await wait_until(lambda: bool(calls))  # the upstream is asked, and holds its answer
    release.set()
    assert set(await asyncio.gather(*lookups)) == {"dev_x1"}
    assert calls == ["/clients/42"]


async def test_mapper_concurrent_failures_share_one_upstream_call(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    route = api.get("/clients/42").respond(500)
    mapper = IdMapper(MemoryIdStore(), upstream=upstream)
    results = await asyncio.gather(
        *(mapper.to_vision("client", "42") for _ in range(20)), return_exceptions=True
    )
    assert {type(result) for result in results} == {ConnectionRejected}
    assert route.call_count == 1


async def test_mapper_remembers_a_failure_briefly(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    """A reconnect storm against a failing upstream does not multiply its load."""
    route = api.get("/clients/42").respond(500)
    clock = FakeClock()
    mapper = IdMapper(MemoryIdStore(), upstream=upstream, failure_ttl=2.0, clock=clock)
    for _ in range(3):
        with pytest.raises(ConnectionRejected):
            await mapper.to_vision("client", "42")
    assert route.call_count == 1


async def test_mapper_asks_again_once_a_failure_is_forgotten(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    api.get("/clients/42").mock(
        side_effect=[httpx.Response(500), httpx.Response(200, json={"vision_id": "dev_x1"})]
    )
    clock = FakeClock()
    mapper = IdMapper(MemoryIdStore(), upstream=upstream, failure_ttl=2.0, clock=clock)
    with pytest.raises(ConnectionRejected):
        await mapper.to_vision("client", "42")
    clock.now += 2.0
    assert await mapper.to_vision("client", "42") == "dev_x1"


async def test_mapper_a_waiter_giving_up_does_not_cancel_the_lookup(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    asked, release = asyncio.Event(), asyncio.Event()

    async def gated(request: httpx.Request) -> httpx.Response:
        asked.set()
        await release.wait()
        return httpx.Response(200, json={"vision_id": "dev_x1"})

    api.get("/clients/42").mock(side_effect=gated)
    mapper = IdMapper(MemoryIdStore(), upstream=upstream)
    impatient = asyncio.create_task(mapper.to_vision("client", "42"))
    patient = asyncio.create_task(mapper.to_vision("client", "42"))
    await asked.wait()
    impatient.cancel()
    release.set()
    assert await patient == "dev_x1"


# -- resolve and reverse lookups ---------------------------------------------------------


async def test_resolve_an_integer() -> None:
    store = MemoryIdStore()
    await store.put_if_absent("group", "3", "grp_x1")
    assert await IdMapper(store).resolve("group", "003") == ResolvedId(VisionId("grp_x1"), "3")


async def test_resolve_a_vision_id_with_an_integer() -> None:
    store = MemoryIdStore()
    await store.put_if_absent("group", "3", "grp_x1")
    assert await IdMapper(store).resolve("group", "grp_x1") == ResolvedId(VisionId("grp_x1"), "3")


async def test_resolve_a_vision_id_without_an_integer() -> None:
    assert await IdMapper(MemoryIdStore()).resolve("client", "dev_x1") == ResolvedId(
        VisionId("dev_x1"), ""
    )


async def test_resolve_a_vision_id_while_the_store_is_down() -> None:
    with pytest.raises(ConnectionRejected) as caught:
        await IdMapper(DownIdStore()).resolve("client", "dev_x1")
    assert rejected_with(caught) == (CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)


@pytest.mark.parametrize("raw", ["not valid!", "", "a/b", "12345678901234567890", "x" * 65])
async def test_resolve_refuses_a_malformed_id(raw: str) -> None:
    with pytest.raises(ConnectionRejected) as caught:
        await IdMapper(MemoryIdStore()).resolve("client", raw)
    assert caught.value.close_code == CloseCode.POLICY_VIOLATION
    assert caught.value.reason.startswith(f"client ID {raw[:32]!r} is neither")


async def test_resolve_reason_fits_a_close_frame() -> None:
    with pytest.raises(ConnectionRejected) as caught:
        await IdMapper(MemoryIdStore()).resolve("client", "é" * 64)
    assert len(caught.value.reason.encode()) <= 123


async def test_cached_legacy_knows_what_this_node_resolved() -> None:
    mapper = IdMapper(MemoryIdStore())
    vision_id = await mapper.to_vision("client", "42")
    assert mapper.cached_legacy("client", vision_id) == "42"


async def test_legacy_of_reads_the_store() -> None:
    store = MemoryIdStore()
    await store.put_if_absent("client", "42", "dev_x1")
    assert await IdMapper(store).legacy_of("client", "dev_x1") == "42"


async def test_legacy_of_is_served_from_the_cache() -> None:
    mapper = IdMapper(MemoryIdStore())
    vision_id = await mapper.to_vision("client", "42")
    mapper.store = DownIdStore()
    assert await mapper.legacy_of("client", vision_id) == "42"


async def test_mapper_aclose_cancels_lookups_in_flight(
    api: respx.MockRouter, upstream: UpstreamIdLookup
) -> None:
    asked = asyncio.Event()

    async def never(request: httpx.Request) -> httpx.Response:
        asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    api.get("/clients/42").mock(side_effect=never)
    mapper = IdMapper(MemoryIdStore(), upstream=upstream)
    waiting = asyncio.create_task(mapper.to_vision("client", "42"))
    await asked.wait()
    await mapper.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_legacy_of_unknown_is_none() -> None:
    assert await IdMapper(MemoryIdStore()).legacy_of("client", "dev_x1") is None


async def test_legacy_of_remembers_an_absent_mapping_for_a_while() -> None:
    """A V3 client with no integer costs one store read per absent_ttl, not one per connect."""
    clock = FakeClock(0.0)
    mapper = IdMapper(MemoryIdStore(), absent_ttl=60, clock=clock)
    assert await mapper.legacy_of("client", "dev_x1") is None
    await mapper.store.put_if_absent("client", "42", "dev_x1")  # another node maps it meanwhile
    mapper_store = mapper.store
    mapper.store = DownIdStore()
    assert await mapper.legacy_of("client", "dev_x1") is None  # served without the store
    mapper.store = mapper_store
    clock.now = 61.0
    assert await mapper.legacy_of("client", "dev_x1") == "42"


async def test_a_mapping_learnt_here_replaces_a_remembered_absence() -> None:
    mapper = IdMapper(MemoryIdStore(), mint=lambda: VisionId("dev_x1"))
    assert await mapper.legacy_of("client", "dev_x1") is None
    assert await mapper.to_vision("client", "42") == "dev_x1"
    assert await mapper.legacy_of("client", "dev_x1") == "42"


# -- wiring ------------------------------------------------------------------------------


async def test_open_id_mapper_in_memory() -> None:
    async with open_id_mapper(None) as mapper:
        assert (type(mapper.store), mapper.upstream) == (MemoryIdStore, None)


async def test_open_id_mapper_on_redis(store_url: str | None, prefix: str) -> None:
    async with open_id_mapper(store_url, prefix=prefix, lookup_url=BASE) as mapper:
        expected = MemoryIdStore if store_url is None else RedisIdStore
        assert (type(mapper.store), type(mapper.upstream)) == (expected, UpstreamIdLookup)


async def test_open_id_mapper_refuses_other_urls() -> None:
    with pytest.raises(ValueError, match="redis://"):
        async with open_id_mapper("memcached://a:1"):
            pass


async def test_open_id_mapper_uses_a_store_it_is_given() -> None:
    """In-process nodes sharing a memory hub share their mapping too."""
    shared = MemoryIdStore()
    async with (
        open_id_mapper(None, store=shared) as node_a,
        open_id_mapper(None, store=shared) as node_b,
    ):
        assert await node_a.to_vision("client", "1") == await node_b.to_vision("client", "1")
