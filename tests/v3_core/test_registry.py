"""LocalRegistry reports exactly the first and last member transitions: pure."""

import pytest

from v3_core.registry import LocalRegistry


def test_first_member_of_each_channel_is_reported():
    registry: LocalRegistry[str] = LocalRegistry()
    assert registry.add("c1", ["g", "c", "b"]) == ["g", "c", "b"]
    assert registry.add("c2", ["g", "d", "b"]) == ["d"]
    assert registry.members("g") == {"c1", "c2"}


def test_last_member_of_each_channel_is_reported():
    registry: LocalRegistry[str] = LocalRegistry()
    registry.add("c1", ["g", "c", "b"])
    registry.add("c2", ["g", "d", "b"])
    assert registry.remove("c1") == ["c"]
    assert sorted(registry.remove("c2")) == ["b", "d", "g"]
    assert registry.channels == [] and len(registry) == 0


def test_unknown_channel_has_no_members():
    assert LocalRegistry[str]().members("nope") == set()


def test_removing_an_unknown_connection_is_harmless():
    assert LocalRegistry[str]().remove("ghost") == []


def test_adding_twice_is_an_error():
    registry: LocalRegistry[str] = LocalRegistry()
    registry.add("c1", ["g"])
    with pytest.raises(ValueError, match="already registered"):
        registry.add("c1", ["g"])


def test_duplicate_channels_count_once():
    registry: LocalRegistry[str] = LocalRegistry()
    assert registry.add("c1", ["g", "g"]) == ["g"]
    assert registry.remove("c1") == ["g"]
