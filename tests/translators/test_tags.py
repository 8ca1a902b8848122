"""The legacy integers as core tags: what the envelope carries between nodes."""

from __future__ import annotations

from translators import legacy_tags
from translators.tags import client_legacy, group_legacy
from v3_core.routing import NO_TAGS, Envelope


def test_the_legacy_tags_are_the_header_keys_of_earlier_releases() -> None:
    """Nodes of the previous release wrote and read ``f``/``g`` before they were tags."""
    previous = b'aether/1 o=n1 s=c1 f=42 g=7\n{"version":"3"}'
    envelope = Envelope.unpack(previous)
    assert (client_legacy(envelope.tags), group_legacy(envelope.tags)) == ("42", "7")
    assert Envelope("n1", '{"version":"3"}', "c1", legacy_tags(group="7", client="42")).pack() == (
        previous
    )


def test_a_connection_without_integers_shares_the_empty_tags() -> None:
    assert legacy_tags() is NO_TAGS
    assert legacy_tags(group="", client="") is NO_TAGS
    assert (client_legacy(NO_TAGS), group_legacy(NO_TAGS)) == ("", "")


def test_only_the_integers_a_connection_has_are_tagged() -> None:
    assert legacy_tags(group="3") == {"g": "3"}
    assert legacy_tags(client="17") == {"f": "17"}
