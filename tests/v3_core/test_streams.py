"""Stream positions, the recover= grammar, and what history covers: pure rules."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from v3_core.streams import (
    EMPTY,
    Position,
    StreamName,
    StreamState,
    covers,
    earliest,
    format_positions,
    judge,
    parse_recover,
    parse_stored,
    with_position,
)


def test_recover_names_any_subset_of_the_three_streams():
    assert parse_recover("group:e1:5,broadcast:e-2:0") == {
        "group": Position("e1", 5),
        "broadcast": Position("e-2", 0),
    }


@pytest.mark.parametrize(
    "text",
    [
        "",
        "group",
        "group:e1",
        "group:e1:5:6",
        "room:e1:5",
        "group:e1:-1",
        "group:e1:five",
        "group::5",
        "group:e 1:5",
        "group:e1:5,group:e1:6",
        "group:e1:99999999999999999999",
        "group:e1:٣",
    ],
)
def test_a_malformed_recover_is_refused_with_a_reason(text):
    with pytest.raises(ValueError, match="recover"):
        parse_recover(text)


def test_stored_positions_round_trip_and_keep_an_empty_epoch():
    positions: dict[StreamName, Position] = {"group": Position("ab", 3), "client": EMPTY}
    assert parse_stored(format_positions(positions)) == positions


def test_earliest_takes_the_lowest_offset_and_gives_up_across_epochs():
    merged = earliest(
        [
            {"group": Position("e", 10), "client": Position("c", 4)},
            {"group": Position("e", 7), "client": Position("other", 9)},
        ]
    )
    assert merged["group"] == Position("e", 7)
    assert not covers(StreamState("c", 9, 5), merged["client"], 1000)


@pytest.mark.parametrize(
    ("state", "since", "covered"),
    [
        (StreamState("e", 10, 6), Position("e", 5), True),
        (StreamState("e", 10, 0), Position("e", 10), True),  # nothing missed
        (StreamState("f", 10, 6), Position("e", 5), False),  # another epoch
        (StreamState("e", 10, 0), Position("e", 11), False),  # ahead of the stream
        (StreamState("e", 10, 8), Position("e", 5), False),  # trimmed past it
        (StreamState("e", 2000, 6), Position("e", 5), False),  # older than the newest 1000
        (StreamState("", 0), Position("e", 5), False),  # history gone
        (StreamState("", 0), EMPTY, True),  # was empty, is empty
        (StreamState("e", 4, 1), EMPTY, True),  # began after: all of it, from 1
        (StreamState("e", 4, 2), EMPTY, False),
    ],
)
def test_what_history_covers(state, since, covered):
    assert covers(state, since, 1000) is covered


def test_a_position_is_spliced_into_the_encoded_text():
    text = with_position('{"version":"3","msg":"hi"}', Position("ab_1", 42))
    assert json.loads(text) == {"version": "3", "msg": "hi", "offset": 42, "epoch": "ab_1"}


@pytest.mark.parametrize(
    ("cursor", "position", "verdict"),
    [
        (None, Position("e", 9), "deliver"),
        (Position("e", 3), Position("e", 4), "deliver"),
        (Position("e", 3), Position("e", 3), "duplicate"),
        (Position("e", 3), Position("e", 6), "gap"),
        (Position("e", 3), Position("f", 1), "deliver"),  # a new epoch starts clean
        (Position("e", 3), Position("f", 2), "gap"),
        (EMPTY, Position("f", 1), "deliver"),
    ],
)
def test_a_node_judges_each_live_message_against_its_cursor(cursor, position, verdict):
    assert judge(cursor, position) == verdict


@given(st.lists(st.integers(min_value=1, max_value=30), max_size=60))
def test_judging_any_arrival_order_delivers_each_offset_once_in_order(arrivals):
    """A node that fills every gap from history delivers 1..n once each, in order."""
    cursor: Position | None = Position("e", 0)
    delivered: list[int] = []
    for offset in arrivals:
        verdict = judge(cursor, Position("e", offset))
        if verdict == "gap":  # history fills what lies before it
            assert cursor is not None
            delivered.extend(range(cursor.offset + 1, offset + 1))
            cursor = Position("e", offset)
        elif verdict == "deliver":
            delivered.append(offset)
            cursor = Position("e", offset)
    assert delivered == list(range(1, len(delivered) + 1))
