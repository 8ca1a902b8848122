"""Channel names, route decisions and the inter-node envelope: pure."""

import pytest

from v3_core.messages import MessageV3
from v3_core.routing import ECHO, NO_TAGS, Channels, Envelope, UnreadableEnvelope

CHANNELS = Channels("p:")


def message(**fields) -> MessageV3:
    return MessageV3(msg_type="msg", group_id="g1", from_id="alice", **fields)


@pytest.mark.parametrize(
    ("fields", "channel"),
    [
        ({"target": "group"}, "p:g:g1"),
        ({"target": "direct", "to_id": "bob"}, "p:c:bob"),
        ({"target": "broadcast"}, "p:b"),
        ({"target": "echo"}, ECHO),
    ],
)
def test_route_picks_one_channel_per_target(fields, channel):
    assert CHANNELS.route(message(**fields)) == channel


def test_node_channel_is_separate_from_client_channels():
    assert CHANNELS.node("n1") == "p:n:n1" != CHANNELS.client("n1")


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope(origin="n1", text='{"version":"3","a":"b\\nc"}'),
        Envelope(
            origin="n1",
            text='{"version":"3",\n"msg":"x"}',
            skip_conn="c0ffee",
            tags={"f": "42", "g": "7"},
        ),
        Envelope(origin="n1", text='{"version":"3","msg":"héllo ✓"}'),
    ],
)
def test_envelope_round_trip(envelope):
    assert Envelope.unpack(envelope.pack()) == envelope


def test_a_newer_node_may_add_header_fields_an_older_one_carries_as_tags():
    """The core reads only ``o`` and ``s``; a dialect reads only the tags it knows."""
    data = b'aether/1 o=n2 x-trace=abc s=c1 zz\n{"version":"3","msg":"hi"}'
    envelope = Envelope.unpack(data)
    assert (envelope.origin, envelope.skip_conn, envelope.text) == (
        "n2",
        "c1",
        '{"version":"3","msg":"hi"}',
    )
    assert envelope.tags == {"x-trace": "abc", "zz": ""}


def test_an_envelope_without_tags_shares_the_empty_ones():
    assert Envelope.unpack(b'aether/1 o=n1\n{"version":"3"}').tags is NO_TAGS
    assert Envelope("n1", "{}").tags is NO_TAGS


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"no header here", "no header"),
        (b'n1 - - -\n{"version":"3"}', "envelope format"),  # before envelopes had a version
        (b'aether/2 o=n1\n{"version":"3"}', "envelope format"),  # a major this node lacks
        (b"aether/1 o=n1\nnot json", "not JSON"),
        (b"aether/1 o=n1\n\xff\xfe", "not JSON"),
        (b'aether/1 o=n1\n["version", "3"]', "not a V3"),
        (b'aether/1 o=n1\n{"version":"4","msg":"x"}', "not a V3"),
    ],
)
def test_what_a_node_cannot_read_is_refused(data, why):
    with pytest.raises(UnreadableEnvelope, match=why):
        Envelope.unpack(data)
