"""The SLO rules (config/prometheus/slo-rules.yml) and dashboard
(config/grafana/skillshare-slo.json): well-formed (promtool is not
available, so the structure is checked here), every series they query is
exported by a running node's /metrics or recorded by a rule, and every
alert names a runbook section that exists in docs/operations.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "config" / "prometheus" / "slo-rules.yml"
DASHBOARD = ROOT / "config" / "grafana" / "skillshare-slo.json"
OPERATIONS = ROOT / "docs" / "operations.md"

DURATION = re.compile(r"^\d+[smhdwy]$")
RECORD_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*(:[a-zA-Z0-9_]+)+$")  # level:metric:operations
ALERT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]+$")
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "by", "without", "on",
    "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "histogram_quantile", "le", "inf", "nan", "topk", "bottomk", "abs", "clamp_min", "clamp_max",
}
TARGETS = {"DeliveryLive": 0.001, "CallSuccess": 0.05}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects: identifiers left after
    removing strings, label matchers, range selectors, grouping clauses,
    function calls, keywords and numbers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name = match.group(0)
        after = text[match.end():].lstrip()
        if after.startswith("(") or name.lower() in PROMQL_WORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", name):
            continue
        names.add(name)
    return names


def test_metric_names_are_found_in_promql():
    expr = ('1 - sum by (outcome) (rate(skillshare_x_total{outcome=~"a|b"}[5m])) '
            '/ histogram_quantile(0.9, sum by (le) (rate(skillshare_y_bucket[1h]))) and slo:z:ratio_rate5m > (14.4 * 0.001)')
    assert metric_names(expr) == {"skillshare_x_total", "skillshare_y_bucket", "slo:z:ratio_rate5m"}


def _rules() -> dict:
    return yaml.safe_load(RULES.read_text())


def _anchors(markdown: str) -> set[str]:
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors


def test_rules_are_well_formed_with_burn_rate_alerts_and_runbooks():
    doc = _rules()
    assert set(doc) == {"groups"} and doc["groups"]
    recorded, alerts = set(), {}
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"] and group["rules"]
        if "interval" in group:
            assert DURATION.match(group["interval"])
        for rule in group["rules"]:
            assert isinstance(rule.get("expr"), str) and rule["expr"].strip()
            assert ("record" in rule) != ("alert" in rule), rule
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule
            if "record" in rule:
                assert set(rule) <= {"record", "expr", "labels"}
                assert RECORD_NAME.match(rule["record"]) and rule["record"] not in recorded
                recorded.add(rule["record"])
            else:
                assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
                assert ALERT_NAME.match(rule["alert"]) and rule["alert"] not in alerts
                assert DURATION.match(rule.get("for", "0m"))
                assert rule["labels"]["severity"] in ("page", "ticket")
                assert rule["annotations"]["summary"]
                alerts[rule["alert"]] = rule
    anchors = _anchors(OPERATIONS.read_text())
    for name, rule in alerts.items():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/operations.md#") and url.split("#", 1)[1] in anchors, (name, url)
    for prefix, budget in TARGETS.items():
        tiers = {n: r for n, r in alerts.items() if n.startswith(f"{prefix}BudgetBurn")}
        assert len(tiers) == 3, prefix
        for rule in tiers.values():
            # multi-window: a long and a short window, both above the same threshold
            windows = re.findall(r"ratio_rate(\w+) > \(([\d.]+) \* ([\d.]+)\)", rule["expr"])
            assert len(windows) == 2 and " and " in rule["expr"].replace("\n", " "), rule
            assert {float(b) for _, _, b in windows} == {budget}
            assert len({f for _, f, _ in windows}) == 1
    for rule in alerts.values():
        for name in metric_names(rule["expr"]):
            if name.startswith("slo:"):
                assert name in recorded, (rule["alert"], name)


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    exprs = []
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target
            exprs.append(target["expr"])
    return exprs


async def test_every_series_the_rules_and_dashboard_use_is_exported(client):
    resp = await client.get("/metrics")
    assert resp.status == 200
    exported = set()
    for family in text_string_to_metric_families(await resp.text()):
        exported.update(sample.name for sample in family.samples)
    recorded = {r["record"] for g in _rules()["groups"] for r in g["rules"] if "record" in r}
    used = set()
    for group in _rules()["groups"]:
        for rule in group["rules"]:
            used |= metric_names(rule["expr"])
    for expr in _dashboard_exprs():
        used |= metric_names(expr)
    missing = sorted(name for name in used if name not in exported and name not in recorded)
    assert missing == [], f"not exported by a node: {missing}"
    assert any(n.startswith("skillshare_delivery_") for n in used)
    assert any(n.startswith("skillshare_call_outcomes") for n in used)
