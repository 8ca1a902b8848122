"""The inbound rate limit: the bucket on its own, then the policy through a real manager."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from translators import V2Dialect
from translators.v2_inbound import V2Frame, parse_v2_frame
from v3_core import Channels, CloseCode, ConnectionManager, ConnectionRejected
from v3_core.backends import open_backends
from v3_core.connection import V3Dialect
from v3_core.ratelimit import RateLimit, may_be_heartbeat

from ..helpers import eventually
from ..support.clock import FakeClock
from ..support.senders import RecordingSender


class Meter:
    """The three slots a Connection keeps for its bucket."""

    __slots__ = ("rate_beat_at", "rate_full_at", "rate_strikes")

    def __init__(self) -> None:
        self.rate_full_at = 0.0
        self.rate_beat_at = 0.0
        self.rate_strikes = 0


T0 = 1000.0  # a monotonic clock reading well after zero


def admitted(limit: RateLimit, meter: Meter, now: float, frames: int) -> int:
    return sum(limit.take(meter, now) for _ in range(frames))


# -- the bucket ------------------------------------------------------------------------------


def test_full_bucket_admits_the_burst_then_refuses():
    limit, meter = RateLimit(rate=10, burst=50), Meter()
    assert admitted(limit, meter, T0, 60) == 50
    assert not limit.take(meter, T0)


def test_bucket_refills_one_token_per_interval():
    limit, meter = RateLimit(rate=10, burst=5), Meter()
    assert admitted(limit, meter, T0, 5) == 5
    assert not limit.take(meter, T0 + 0.099)
    assert limit.take(meter, T0 + 0.1)
    assert not limit.take(meter, T0 + 0.1)
    assert admitted(limit, meter, T0 + 0.35, 10) == 2


def test_bucket_never_holds_more_than_the_burst():
    limit, meter = RateLimit(rate=10, burst=5), Meter()
    limit.take(meter, T0)
    assert admitted(limit, meter, T0 + 3600, 100) == 5


def test_the_sustained_rate_is_admitted_forever_and_no_more():
    limit = RateLimit(rate=100, burst=10)
    on_time, faster = Meter(), Meter()
    assert admitted_over(limit, on_time, rate=100, frames=10_000) == 10_000
    # 10 s at 110/s: the burst plus 100/s, give or take the frame that straddles the end.
    assert 1009 <= admitted_over(limit, faster, rate=110, frames=1100) <= 1011


def admitted_over(limit: RateLimit, meter: Meter, *, rate: float, frames: int) -> int:
    return sum(limit.take(meter, T0 + i / rate) for i in range(frames))


def test_retry_after_is_the_time_to_the_next_token():
    limit, meter = RateLimit(rate=4, burst=2), Meter()
    assert limit.retry_after(meter, T0) == 0.0
    admitted(limit, meter, T0, 2)
    assert limit.retry_after(meter, T0) == pytest.approx(0.25)
    assert limit.retry_after(meter, T0 + 0.2) == pytest.approx(0.05)


def test_rejection_says_rate_limited_and_when_to_retry():
    limit, meter = RateLimit(rate=4, burst=1), Meter()
    limit.take(meter, T0)
    rejected = limit.reject(meter, T0)
    assert rejected.code == "rate-limited"
    assert rejected.detail == (
        "rate limit exceeded (4 messages/s, burst 1); this message was not sent; retry in 0.250 s"
    )
    assert rejected.extra == {"retry_after": 0.25}  # the same, for a program to read


def test_one_heartbeat_a_second_is_free_and_gets_its_token_back():
    limit, meter = RateLimit(rate=0.001, burst=1), Meter()
    assert limit.take(meter, T0)  # a heartbeat takes the only token...
    assert limit.free_heartbeat(meter, T0, charged=True)  # ...and gets it back
    assert limit.take(meter, T0)  # so a message still passes
    assert not limit.heartbeat_due(meter, T0 + 0.999)
    assert not limit.free_heartbeat(meter, T0 + 0.999, charged=False)
    assert limit.heartbeat_due(meter, T0 + 1.0)
    assert limit.free_heartbeat(meter, T0 + 1.0, charged=False)


def test_close_after_that_many_rejections_in_a_row():
    limit, meter = RateLimit(rate=10, burst=1, close_after=3), Meter()
    limit.take(meter, T0)
    for _ in range(2):
        limit.reject(meter, T0)
    assert not limit.exhausted(meter)
    assert limit.take(meter, T0 + 0.1)  # an admitted frame starts the count again
    for _ in range(2):
        limit.reject(meter, T0 + 0.1)
    assert not limit.exhausted(meter)
    limit.reject(meter, T0 + 0.1)
    assert limit.exhausted(meter)


def test_close_after_zero_never_closes():
    limit, meter = RateLimit(rate=10, burst=1, close_after=0), Meter()
    for _ in range(1000):
        limit.reject(meter, T0)
    assert not limit.exhausted(meter)


def test_zero_rate_or_burst_means_no_limit():
    assert RateLimit.from_settings(0, 50, 10) is None
    assert RateLimit.from_settings(10, 0, 10) is None
    assert RateLimit.from_settings(10, 50, 10) == RateLimit(10, 50, 10)


@pytest.mark.parametrize(("rate", "burst", "close_after"), [(-1, 5, 1), (1, 0, 1), (1, 5, -1)])
def test_a_limit_that_cannot_work_is_refused(rate, burst, close_after):
    with pytest.raises(ValueError, match="rate limit needs"):
        RateLimit(rate, burst, close_after)


@pytest.mark.parametrize(
    "frame",
    [
        '{"msg_type": "heartbeat", "target": "echo"}',
        "ping",
        " ping\n",
        '{"type": "ping"}',
        '{"type": "heartbeat"}',
        '{"type": "ping", "extra": 1}',
    ],
)
def test_every_heartbeat_form_passes_the_precheck(frame):
    """The pre-check may let other frames through, never drop a heartbeat of either dialect."""
    if not frame.startswith('{"msg_type"'):
        parsed = parse_v2_frame(frame)
        assert isinstance(parsed, V2Frame) and parsed.msg_type == "heartbeat"
    else:
        assert may_be_heartbeat(frame, V3Dialect.heartbeat_hints)
    assert may_be_heartbeat(frame, V2Dialect.heartbeat_hints)


@pytest.mark.parametrize("hints", [V3Dialect.heartbeat_hints, V2Dialect.heartbeat_hints])
def test_ordinary_frames_skip_the_precheck(hints):
    assert not may_be_heartbeat('{"msg_type": "msg", "target": "group", "msg": "hi"}', hints)


def test_a_v3_frame_that_only_says_ping_is_not_read():
    """Only the legacy dialect has a ``ping``; the V3 dialect's hint is its msg_type."""
    assert not may_be_heartbeat('{"msg_type": "msg", "msg": "ping"}', V3Dialect.heartbeat_hints)


def test_a_heartbeat_longer_than_the_limit_is_not_read():
    frame = '{"msg_type": "heartbeat", "pad": "' + "x" * 512 + '"}'
    assert not may_be_heartbeat(frame, V3Dialect.heartbeat_hints)


# -- the policy, through a real manager on the embedded backends -------------------------------


@contextlib.asynccontextmanager
async def open_manager(
    limit: RateLimit | None, clock: FakeClock
) -> AsyncIterator[ConnectionManager]:
    async with open_backends(None, prefix="t:", node_channel="t:n:1", presence_ttl=30) as backends:
        async with ConnectionManager(
            backends,
            node_id="n1",
            channels=Channels("t:"),
            presence_ttl=30,
            rate_limit=limit,
            clock=clock,
        ) as running:
            yield running


@pytest.fixture
async def manager(clock: FakeClock) -> AsyncIterator[ConnectionManager]:
    """Burst 3, one token back every 100 s (none during a test), close after 3 in a row."""
    async with open_manager(RateLimit(rate=0.01, burst=3, close_after=3), clock) as running:
        yield running


def replies(sender: RecordingSender) -> list[tuple[str, Any]]:
    """(msg_type, payload code or msg) of every non-presence frame a client received."""
    out = []
    for text in sender.sent:
        frame = json.loads(text)
        if frame["msg_type"] == "presence":
            continue
        detail = frame["payload"]["code"] if frame["msg_type"] == "error" else frame.get("msg")
        out.append((frame["msg_type"], detail))
    return out


def msg(text: str, target: str = "echo") -> str:
    return json.dumps({"msg_type": "msg", "target": target, "msg": text})


HEARTBEAT = '{"msg_type": "heartbeat", "target": "echo"}'


async def test_a_frame_over_the_limit_is_answered_and_not_delivered(manager):
    alice_out, bob_out = RecordingSender(), RecordingSender()
    async with manager.connect("g", "alice", alice_out) as alice:
        async with manager.connect("g", "bob", bob_out) as bob:
            alice.start_writer()
            bob.start_writer()
            for i in range(4):
                await manager.receive(alice, msg(f"m{i}", "group"))
            await manager.receive(bob, msg("bob is fine", "group"))
            await eventually(lambda: ("msg", "bob is fine") in replies(bob_out))
    assert ("error", "rate-limited") in replies(alice_out)
    assert [r for r in replies(bob_out) if r[0] == "msg"] == [
        ("msg", "m0"),
        ("msg", "m1"),
        ("msg", "m2"),
        ("msg", "bob is fine"),
    ]
    assert (manager.stats.messages_rate_limited, manager.stats.messages_rejected) == (1, 1)


async def test_too_many_rejections_in_a_row_close_with_4529_after_the_reply(manager):
    out = RecordingSender()
    async with manager.connect("g", "alice", out) as alice:
        alice.start_writer()
        for i in range(5):
            await manager.receive(alice, msg(f"m{i}"))
        with pytest.raises(ConnectionRejected) as ended:
            await manager.receive(alice, msg("m5"))
    assert ended.value.close_code == CloseCode.RATE_LIMITED.value == 4529
    assert ended.value.reason == (
        "rate limit exceeded: 3 messages over the limit in a row; reconnect after a pause"
    )
    assert (
        replies(out)
        == [("msg", "m0"), ("msg", "m1"), ("msg", "m2")] + [("error", "rate-limited")] * 3
    )
    assert (manager.stats.messages_rate_limited, manager.stats.rate_limit_closes) == (3, 1)


async def test_heartbeats_once_a_second_neither_use_nor_need_the_budget(manager, clock):
    out = RecordingSender()
    async with manager.connect("g", "alice", out) as alice:
        alice.start_writer()
        await manager.receive(alice, HEARTBEAT)  # free: the burst stays whole
        for i in range(3):
            await manager.receive(alice, msg(f"m{i}"))
        clock.now += 0.5
        await manager.receive(alice, HEARTBEAT)  # a second one within 1 s counts: over
        clock.now += 0.5
        await manager.receive(alice, HEARTBEAT)  # over the limit, but a free one is due
        await manager.receive(alice, HEARTBEAT)  # not again in the same second
    assert [r[0] for r in replies(out)] == [
        "heartbeat",
        "msg",
        "msg",
        "msg",
        "error",
        "heartbeat",
        "error",
    ]


async def test_a_free_heartbeat_does_not_reset_the_rejections_in_a_row(manager, clock):
    out = RecordingSender()
    async with manager.connect("g", "alice", out) as alice:
        alice.start_writer()
        for i in range(5):
            await manager.receive(alice, msg(f"m{i}"))
        await manager.receive(alice, HEARTBEAT)
        with pytest.raises(ConnectionRejected):
            await manager.receive(alice, msg("m5"))
    assert [r[0] for r in replies(out)][-4:] == ["error", "error", "heartbeat", "error"]


async def test_invalid_frames_count_against_the_limit(manager):
    out = RecordingSender()
    async with manager.connect("g", "alice", out) as alice:
        alice.start_writer()
        for _ in range(3):
            await manager.receive(alice, "{not json")
        await manager.receive(alice, msg("valid, but over"))
    assert [r[1] for r in replies(out)] == ["invalid-json"] * 3 + ["rate-limited"]


async def test_without_a_limit_nothing_is_rate_limited(clock):
    """Settings with rate 0 build no limit: 200 frames at one instant all pass."""
    out = RecordingSender()
    async with open_manager(RateLimit.from_settings(0, 3, 3), clock) as running:
        async with running.connect("g", "alice", out) as alice:
            alice.start_writer()
            for i in range(200):
                await running.receive(alice, msg(f"m{i}"))
    assert running.stats.messages_rate_limited == 0
    assert len(replies(out)) == 200
