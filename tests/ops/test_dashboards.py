"""docs/grafana-dashboard.json and docs/prometheus-alerts.yml against what /metrics exposes.

Every metric a dashboard query or an alert names must be on a real node's /metrics (read after
traffic that fills every labelled family). The alert file is checked with ``promtool check
rules`` and its cases run with ``promtool test rules`` where promtool is installed (Debian:
apt-get install prometheus); its structure is checked with PyYAML everywhere.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import ROOT
from ..helpers import connect, recv_msg, send_json, v3

DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
ALERTS = ROOT / "docs" / "prometheus-alerts.yml"
ALERT_CASES = Path(__file__).with_name("prometheus-alerts.test.yml")
NOT_METRICS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
NOT_METRICS |= {"unless", "bool", "offset", "le", "inf", "nan"}
SCRAPE_METRICS = {"up"}  # Prometheus' own, per target


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, groupings, ranges,
    strings and function names left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr))
    return {n for n in names - NOT_METRICS if not re.fullmatch(r"\d+[a-z]*", n)}


def test_metric_names_are_found_in_promql():
    expr = (
        'histogram_quantile(0.99, sum by (le, node) (rate(aether_publish_seconds_bucket{node=~"$n"}'
        '[5m]))) > 0.05 and on() max(aether_v2_mode{mode="closed"}) == 1'
    )
    assert metric_names(expr) == {"aether_publish_seconds_bucket", "aether_v2_mode"}


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
            assert found, variable
            queries.append(found[1])
    assert len(queries) > 10
    return queries


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


async def exposed_samples(server) -> set[str]:
    """/metrics of a node that saw V3 and legacy traffic, an error reply and a dead letter."""
    async with (
        await v3(server.ws, "grp_a", "dev_1") as modern,
        await connect(server.ws, "/ws/group/42/client/7") as legacy,
    ):
        await send_json(modern, {"msg_type": "msg", "target": "group", "msg": "hi"})
        await recv_msg(modern)
        await legacy.send("[" * 10_000 + "]" * 10_000)
        while (await recv_msg(legacy)).get("type") != "error":
            pass
        async with httpx.AsyncClient(base_url=server.http) as http:
            await http.get("/v2/dead-letters")  # flushed, so the families are filled
            text = (await http.get("/metrics")).text
    assert isinstance(legacy, websockets.ClientConnection)
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


@pytest.mark.parametrize("backend_url", ["redis"], indirect=True)
async def test_every_dashboard_and_alert_query_names_an_exposed_metric(server):
    exposed = await exposed_samples(server)
    missing = {
        (name, query)
        for query in dashboard_queries()
        for name in metric_names(query)
        if name not in exposed
    }
    assert not missing, sorted(missing)
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exposed | SCRAPE_METRICS, (rule["alert"], names - exposed)


def test_alert_rules_have_the_structure_prometheus_loads():
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    names = set()
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"Aether[A-Za-z0-9]+", rule["alert"]), rule
            assert rule["alert"] not in names
            names.add(rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert re.fullmatch(r"\d+[smhd]", rule.get("for", "0m")), rule
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    wanted = {"AetherRedisDown", "AetherSlowConsumers", "AetherV2TrafficLeft"}
    assert wanted | {"AetherUnreadableBrokerMessages"} <= names


def test_promtool_checks_and_tests_the_alert_rules():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    print("promtool check rules:", checked.stdout.strip().splitlines()[-1])
    tested = subprocess.run(
        [promtool, "test", "rules", ALERT_CASES.name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ALERT_CASES.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
