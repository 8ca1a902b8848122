"""The recorder as the manager's RefusalSink: a slow consumer's lost message is sampled, and a
flood is counted in full but sampled within bounds (no store call per refusal)."""

from __future__ import annotations

from bridge.dead_letter_store import MemoryDeadLetterStore
from bridge.dead_letters import PER_FLUSH, DeadLetters
from translators import legacy_tags
from v3_core import MessageRejected, QueueLimits
from v3_core.messages import parse_server_message

from ..helpers import embedded_manager, wait_until
from ..support.senders import RecordingSender


class CountingStore(MemoryDeadLetterStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def record(self, letters, counts) -> None:
        self.calls += 1
        await super().record(letters, counts)


async def test_a_slow_consumers_lost_message_is_a_dead_letter():
    store = CountingStore()
    async with DeadLetters(store, node_id="n1", flush_interval=60) as recorder:
        manager = embedded_manager(refusals=recorder, limits=QueueLimits(max_bytes=1024))
        async with manager:
            sender = RecordingSender()
            async with manager.connect("grp_a", "alice", sender) as conn:
                conn.start_writer()
                sender.writable = False
                sender.release.clear()
                for n in range(20):
                    body = f'{{"msg_type":"msg","target":"group","group_id":"grp_a","msg":"m{n}"}}'
                    await manager.publish(parse_server_message(body))
                await wait_until(lambda: sender.closed is not None)
                assert sender.closed == (4008, "slow consumer")
        letters, counts = await recorder.recent(10)
    assert counts == {"slow-consumer": 1}
    [letter] = letters
    assert (letter.source, letter.group_id, letter.client_id) == ("broker", "grp_a", "alice")
    assert '"group_id":"grp_a"' in letter.sample  # the oldest message it was not given


async def test_a_flood_costs_one_store_call_per_flush_and_bounded_samples():
    store = CountingStore()
    recorder = DeadLetters(store, node_id="n1")
    manager = embedded_manager()

    class Conn:  # what the recorder reads of a connection
        group_id, client_id, tags = "grp_a", "alice", legacy_tags(group="42", client="7")

    for _ in range(1000):
        recorder.frame_refused(Conn(), "[[[", MessageRejected("untranslatable", "deep"))  # type: ignore[arg-type]
    assert recorder.counts == {"untranslatable": 1000} and store.calls == 0
    await recorder.flush()
    assert store.calls == 1
    assert len(await store.recent(100)) == PER_FLUSH
    assert await store.counts() == {"untranslatable": 1000}
    assert len(manager) == 0
