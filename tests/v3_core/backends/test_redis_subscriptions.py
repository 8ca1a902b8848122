"""The subscriber's liveness decision, without I/O: when is a probe lost?"""

from __future__ import annotations

from v3_core.backends.redis_subscriptions import Probes


def sent_probe(timeout: float = 2.0) -> tuple[Probes, bytes]:
    probes = Probes(interval=10.0, timeout=timeout, now=0.0)
    probe = probes.due(0.0)
    assert probe is not None
    return probes, probe


def test_a_probe_unanswered_past_the_timeout_with_nothing_heard_is_lost():
    probes, _ = sent_probe()
    assert not probes.overdue(2.0)
    assert probes.overdue(2.01)


def test_an_echo_answers_the_probe():
    probes, probe = sent_probe()
    probes.echo(probe, 1.0)
    assert not probes.overdue(5.0)


def test_messages_read_while_the_echo_waits_behind_them_keep_the_connection():
    """A reader behind on a burst reads messages for seconds before it reaches the echo:
    the connection is delivering, so it is alive."""
    probes, probe = sent_probe()
    for t in (1.0, 2.5, 4.0):
        probes.heard(t)
        assert not probes.overdue(t + 1.9)
    assert probes.next_deadline() == 6.0  # the reader looks again 2 s after the last read
    assert probes.overdue(6.01)  # then nothing for the timeout: lost
    probes.echo(probe, 6.02)
    assert not probes.overdue(7.0)
