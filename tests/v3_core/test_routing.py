"""Channel names, route decisions and the inter-node envelope: pure."""

import pytest

from v3_core.messages import MessageV3
from v3_core.routing import ECHO, Channels, Envelope

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
        Envelope(origin="n1", text='{"a":"b\\nc"}'),
        Envelope(origin="n1", text="x\ny", skip_conn="c0ffee", from_legacy="42", group_legacy="7"),
        Envelope(origin="n1", text="héllo ✓"),
    ],
)
def test_envelope_round_trip(envelope):
    assert Envelope.unpack(envelope.pack()) == envelope


def test_envelope_rejects_garbage():
    with pytest.raises(ValueError, match="not enough values"):
        Envelope.unpack(b"no header here")
