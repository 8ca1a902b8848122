"""Vision IDs and legacy integers (docs/v3-frontend-guide.md section 2)."""

import pytest

from v3_core.ids import is_legacy_int, is_vision_id, new_vision_id, parse_vision_id


@pytest.mark.parametrize(
    "value", ["a", "group_abc123", "A-b_9", "x" * 64, "0a", "-1a", "1-2", "--5", "-"]
)
def test_vision_id_accepts(value):
    assert is_vision_id(value)


@pytest.mark.parametrize(
    "value", ["", "123", "0", "x" * 65, "a b", "a*b", "a:b", "a/b", "é", "ａ", "a\x00", "team\n"]
)
def test_vision_id_rejects(value):
    assert not is_vision_id(value)


@pytest.mark.parametrize("value", ["-1", "-5", "-007", "-0"])
def test_a_negative_number_is_not_a_vision_id(value):
    """Issue 15 #11: ``-5`` is a negative integer, which no database row has, not an ID."""
    assert not is_vision_id(value)
    assert not is_legacy_int(value)


def test_parse_vision_id_names_the_bad_value():
    with pytest.raises(ValueError, match="'12' is not a Vision ID"):
        parse_vision_id("12")


@pytest.mark.parametrize(
    ("value", "expected"), [("42", True), ("007", True), ("4a", False), ("", False), ("١٢", False)]
)
def test_legacy_int(value, expected):
    assert is_legacy_int(value) is expected


def test_new_vision_ids_are_valid_and_distinct():
    ids = {new_vision_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_vision_id(i) for i in ids)
