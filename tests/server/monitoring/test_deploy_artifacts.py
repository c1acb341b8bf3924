"""The shipped Prometheus rules and Grafana dashboard: promtool checks and unit tests, dashboard structure,
and every metric they reference exists."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from sisguard.server.metrics import Metrics
from sisguard.server.signal.measures import measure_names
from sisguard.server.signal.verdict import PairSignal

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
PROM = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "sisguard.json"


def promtool(tools: dict[str, str], *args: str) -> str:
    done = subprocess.run([tools["promtool"], *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_promtool_check_rules(prometheus_tools) -> None:
    assert "SUCCESS: 9 rules found" in promtool(prometheus_tools, "check", "rules", str(PROM / "alerts.yml"))


def test_promtool_check_config(prometheus_tools) -> None:
    promtool(prometheus_tools, "check", "config", str(PROM / "prometheus.yml"))


def test_promtool_unit_tests_of_the_alert_rules(prometheus_tools) -> None:
    assert "SUCCESS" in promtool(prometheus_tools, "test", "rules", str(PROM / "tests" / "alerts_test.yml"))


def alert_rules() -> list[dict]:
    return [r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]]


def test_every_required_alert_is_tested() -> None:
    names = {r["alert"] for r in alert_rules()}
    assert {
        "SisguardPairDamaged",
        "SisguardVerdictStarved",
        "SisguardTop1DisagreementHigh",
        "SisguardModelNotReady",
        "SisguardPredictLatencyP99High",
        "SisguardQueueSaturated",
        "SisguardShadowDropping",
    } <= names
    tests = yaml.safe_load((PROM / "tests" / "alerts_test.yml").read_text())["tests"]
    fired = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert names == fired, f"alerts without a firing unit test: {names - fired}"
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_structure(dashboard: dict) -> None:
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert set(g) == {"x", "y", "w", "h"} and all(isinstance(v, int) for v in g.values()), p["title"]
        assert g["w"] >= 1 and g["h"] >= 1 and g["x"] >= 0 and g["y"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        covered = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not covered & cells, f"panel {p['title']!r} overlaps another"
        cells |= covered
        if p["type"] == "row":
            continue
        assert len(p.get("description", "")) > 40, f"panel {p['title']!r} needs a description of healthy values"
        assert "ealthy" in p["description"], p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
            assert t["expr"].strip()


def test_dashboard_variables(dashboard: dict) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    pair = variables["pair"]
    assert pair["datasource"]["uid"] == "${datasource}"
    assert "label_values(" in pair["definition"] and pair["includeAll"] and pair["multi"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    per_rpc = {"sisguard_requests_total", "sisguard_request_failures_total", "sisguard_requests_in_flight"}
    for e in exprs:  # every selector of a per-pair metric follows the pair selector
        for name, matchers in re.findall(r"\b(sisguard_[a-z0-9_]+)(\{[^}]*\})?", e):
            if name not in per_rpc and not name.startswith("sisguard_request_duration_seconds"):
                assert 'pair=~"$pair"' in matchers, f"{name} in {e!r} ignores $pair"
    types = {p["type"] for p in dashboard["panels"]}
    assert {"heatmap", "timeseries", "stat", "row"} <= types
    heatmaps = [t["expr"] for p in dashboard["panels"] if p["type"] == "heatmap" for t in p["targets"]]
    assert any("sisguard_agreement_iou_first_bucket" in e for e in heatmaps)


def exported_names() -> set[str]:
    reg = CollectorRegistry()
    m = Metrics(reg)
    m.set_rpcs()
    m.set_pair_info("p", prune_ratio=0.5, noise_levels=[0.1], shadow_queue_size=1)
    m.set_model_info("p", "dense", provider="CPUExecutionProvider", queue_capacity=1)
    m.call_finished("Predict", "INTERNAL", 0.1)  # failures have no zero series: queries use `or ... * 0`
    known = measure_names(["brightness-0.3"])
    m.verdict_updated(PairSignal("p", margins={"output_tv": 0.02}, known=known, has_control=True).report())
    m.shift_probe_observer.probed("p", "brightness-0.3", 1, {"dense": 0, "pruned": 1}, {"pruned": 1})
    m.shift_probe_observer.sampled_rows("p", 0)
    m.shift_probe_observer.dropped_rows("p", "queue_full", 0)
    m.shift_probe_observer.queue_changed("p", 0)
    m.has_control.labels("p").set(1)
    return {s.name for fam in reg.collect() for s in fam.samples}


def test_every_referenced_metric_is_exported(dashboard: dict) -> None:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [r["expr"] for r in alert_rules()]
    referenced = {n for e in exprs for n in re.findall(r"\bsisguard_[a-z0-9_]+", e)}
    missing = referenced - exported_names()
    assert not missing, f"dashboard/alerts use metrics sisguard does not export: {sorted(missing)}"


# Panel types whose options Grafana's schema (grafana-foundation-sdk) describes, by module.
_SDK_PANELS = {"timeseries": "timeseries", "stat": "stat", "state-timeline": "statetimeline", "heatmap": "heatmap",
               "table": "table"}


def _plain(obj: object) -> object:
    """The SDK's objects as plain JSON values (its ``to_json`` converts one level)."""
    import enum

    if hasattr(obj, "to_json"):
        return _plain(obj.to_json())
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj


def _same(a: object, b: object, where: str) -> None:
    """Every key of the dashboard's JSON survives a parse by the schema's types unchanged."""
    if isinstance(a, dict):
        assert isinstance(b, dict), where
        for k, v in a.items():
            assert k in b, f"{where}.{k} is not in Grafana's schema"
            _same(v, b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a is None and b is None), f"{where}: {a!r} became {b!r}"


def test_dashboard_matches_grafana_s_schema(dashboard: dict) -> None:
    """Parse the dashboard and each panel's options with Grafana's own schema types (foundation SDK)."""
    import importlib

    from grafana_foundation_sdk.models.dashboard import Dashboard

    parsed = _plain(Dashboard.from_json(dashboard))
    assert isinstance(parsed, dict)
    assert parsed["schemaVersion"] == dashboard["schemaVersion"] and len(parsed["panels"]) == len(dashboard["panels"])
    for panel in dashboard["panels"]:
        module = _SDK_PANELS.get(panel["type"])
        if module is None:
            assert panel["type"] == "row", f"panel type {panel['type']} has no schema check"
            continue
        models = importlib.import_module(f"grafana_foundation_sdk.models.{module}")
        options = _plain(models.Options.from_json(panel["options"]))
        _same(panel["options"], options, f"{panel['title']}.options")
        assert panel["gridPos"] and panel["targets"]
