"""ThrottledLog: lines anonymous clients can cause, at most once per interval per key."""

from __future__ import annotations

import logging

import pytest

from v3_core.logthrottle import ThrottledLog, ThrottleRepeats

from ..support.clock import FakeClock


@pytest.fixture
def throttled(clock: FakeClock) -> ThrottledLog:
    return ThrottledLog(logging.getLogger("aether.test.throttle"), 10.0, clock=clock)


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "aether.test.throttle"]


def test_one_line_per_interval_then_the_count_suppressed(throttled, clock, caplog):
    caplog.set_level(logging.INFO, "aether.test.throttle")
    logged = [throttled.log("cap", logging.WARNING, "refusing %s", i) for i in range(50)]
    assert logged == [True] + [False] * 49
    clock.now += 9.9
    assert not throttled.log("cap", logging.WARNING, "refusing %s", 50)
    clock.now += 0.1
    assert throttled.log("cap", logging.WARNING, "refusing %s", 51)
    clock.now += 10
    assert throttled.log("cap", logging.WARNING, "refusing %s", 52)
    assert messages(caplog) == [
        "refusing 0",
        "refusing 51 (50 more like it suppressed since the last line)",
        "refusing 52",
    ]


def test_keys_are_throttled_apart(throttled, caplog):
    caplog.set_level(logging.INFO, "aether.test.throttle")
    assert throttled.log("cap", logging.WARNING, "a")
    assert throttled.log("utf8", logging.INFO, "b")
    assert not throttled.log("cap", logging.WARNING, "a")
    assert messages(caplog) == ["a", "b"]


def test_a_disabled_level_costs_nothing_and_counts_nothing(throttled, clock, caplog):
    caplog.set_level(logging.WARNING, "aether.test.throttle")
    assert not throttled.log("utf8", logging.INFO, "quiet")
    caplog.set_level(logging.INFO, "aether.test.throttle")
    assert throttled.log("utf8", logging.INFO, "now")
    assert messages(caplog) == ["now"]


def test_a_filter_passes_each_listed_line_once_per_interval_and_others_always(clock, caplog):
    log = logging.getLogger("aether.test.filtered")
    log.addFilter(ThrottleRepeats(("Invalid HTTP request received.",), 10.0, clock=clock))
    caplog.set_level(logging.INFO, "aether.test.filtered")
    for _ in range(30):
        log.warning("Invalid HTTP request received.")
        log.warning("something else %s", "entirely")
    clock.now += 10.0
    log.warning("Invalid HTTP request received.")
    lines = [r.getMessage() for r in caplog.records if r.name == "aether.test.filtered"]
    assert lines.count("something else entirely") == 30
    assert [line for line in lines if line.startswith("Invalid")] == [
        "Invalid HTTP request received.",
        "Invalid HTTP request received. (29 more like it suppressed since the last line)",
    ]
