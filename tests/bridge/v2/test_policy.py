"""The V2 phase-out decisions, pure: which mode applies, what a refused or warned client is told."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.v2.policy import (
    GLOBAL,
    V2Policy,
    closed_reason,
    deprecation_notice,
    iso_z,
    v3_path,
)
from bridge.v2.usage import ClientDelta, ClientUsage, GroupUsage, merge_into, usage_json


def test_default_mode_is_open():
    assert V2Policy().mode_for("grp_a") == "open"


def test_global_mode_applies_to_every_group():
    assert V2Policy("warn").mode_for("grp_a") == "warn"


@pytest.mark.parametrize(("global_mode", "override"), [("closed", "open"), ("open", "closed")])
def test_group_override_wins_over_global(global_mode, override):
    policy = V2Policy(global_mode, {"grp_a": override})
    assert (policy.mode_for("grp_a"), policy.mode_for("grp_b")) == (override, global_mode)


def test_policy_from_store_fields_ignores_values_that_are_not_modes():
    policy = V2Policy.from_fields({GLOBAL: "warn", "grp_b": "closed", "grp_a": "bogus"})
    assert policy.as_json() == {"global": "warn", "groups": {"grp_b": "closed"}}


def test_policy_without_global_field_is_open():
    assert V2Policy.from_fields({"grp_a": "closed"}).global_mode == "open"


def test_closed_reason_gives_the_v3_path():
    assert closed_reason("grp_a", "dev_1") == "V2 closed; use /v3/ws/group/grp_a/client/dev_1"


def test_closed_reason_fits_a_control_frame_with_the_longest_ids():
    group, client = "g" * 64, "c" * 64
    reason = closed_reason(group, client)
    assert len(reason.encode()) <= 123
    assert reason == f"V2 closed; use /v3/ws/group/{group}/client/<client Vision ID>"


def test_deprecation_notice_is_a_v2_cmd_frame_with_the_v3_path():
    frame = json.loads(deprecation_notice("grp_a", "dev_1"))
    path = v3_path("grp_a", "dev_1")
    assert frame["type"] == "cmd"
    assert (frame["target"], frame["cmd"]) == ("echo", "deprecation")
    assert frame["data"] == {"v3_url": path, "mode": "warn", "guide": "docs/migration-guide.md"}
    assert path in frame["msg"]


def test_iso_z_is_utc_with_a_z():
    assert iso_z(0) == "1970-01-01T00:00:00.000Z"


def test_merge_adds_counts_and_keeps_the_latest_sighting():
    total = {("g", "c"): ClientDelta("3", "", 2, 1, 10.0)}
    merge_into(total, {("g", "c"): ClientDelta("", "17", 3, 0, 5.0)})
    assert total[("g", "c")] == ClientDelta("3", "17", 5, 1, 10.0)


def test_usage_report_orders_by_last_seen_and_sums_messages():
    old = GroupUsage("grp_old", "", [ClientUsage("a", "", 1, 1, 1.0)])
    new = GroupUsage(
        "grp_new", "3", [ClientUsage("b", "17", 2, 1, 5.0), ClientUsage("c", "", 4, 2, 9.0)]
    )
    report: dict[str, Any] = usage_json([old, new])
    assert [g["group_id"] for g in report["groups"]] == ["grp_new", "grp_old"]
    first = report["groups"][0]
    assert (first["group_legacy"], first["messages"], first["last_seen"]) == (
        "3",
        6,
        "1970-01-01T00:00:09.000Z",
    )
    assert [c["client_id"] for c in first["clients"]] == ["c", "b"]
    assert first["clients"][1]["client_legacy"] == "17"
    assert report["groups"][1]["group_legacy"] is None
