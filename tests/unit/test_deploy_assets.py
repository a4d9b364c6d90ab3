"""Checks for the monitoring assets in deploy/ (Prometheus config, rules, rule tests, Grafana).

- promtool: `check config`, `check rules`, `test rules`, and a parse check of every dashboard query.
  A missing promtool skips these tests locally but fails them when the CI environment variable is set.
- Every PromQL expression (recording rules, alerts, rule-test inputs, dashboard panels and template
  variables) may only use the metrics the service exports (EXPECTED_METRICS), the recording rules
  defined in deploy/prometheus/rules/recording.yml, and `up`.
- Structure: required recording rules and alerts exist, every alert is unit-tested both firing and not
  firing, dashboard panels have id/gridPos/targets and the provisioned datasource uid, template
  variables exist, and the "Routes" row repeats per route with panels that each show one route.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.tools import required_tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROM_DIR = DEPLOY / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
RULES_DIR = PROM_DIR / "rules"
RECORDING_RULES = RULES_DIR / "recording.yml"
ALERT_RULES = RULES_DIR / "alerts.yml"
RULE_TESTS_DIR = PROM_DIR / "tests"
GRAFANA_DIR = DEPLOY / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "loragate.json"
DATASOURCE_PROVISIONING = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVISIONING = GRAFANA_DIR / "provisioning" / "dashboards" / "loragate.yml"

# Metric names as PromQL sees them at GET /metrics: counters with their `_total` suffix, histograms by
# their base name (the _bucket/_sum/_count series are accepted for the names in HISTOGRAMS).
# prometheus-client names a counter family without `_total` (Counter("loragate_requests", ...)), so
# compare family names of the service registry after appending `_total` to counters.
EXPECTED_METRICS = {
    "loragate_requests_total",
    "loragate_request_duration_seconds",
    "loragate_time_to_first_token_seconds",
    "loragate_time_per_output_token_seconds",
    "loragate_queue_time_seconds",
    "loragate_prompt_tokens_total",
    "loragate_prompt_cached_tokens_total",
    "loragate_completion_tokens_total",
    "loragate_structured_output_total",
    "loragate_generation_retries_total",
    "loragate_discarded_completion_tokens_total",
    "loragate_requests_in_flight",
    "loragate_rejected_requests_total",
    "loragate_error_responses_total",
    "loragate_adapter_registrations_total",
    "loragate_adapter_loads_total",
    "loragate_adapter_load_duration_seconds",
    "loragate_adapters_registered",
    "loragate_adapters_resident",
    "loragate_adapter_loaded",
    "loragate_adapter_evictions_total",
    "loragate_route_assignments_total",
    "loragate_route_variant_weight",
    "loragate_route_rollbacks_total",
    "loragate_route_rollout_step",
    "loragate_route_rollout_transitions_total",
    "loragate_shadow_requests_total",
    "loragate_triage_needs_review_total",
    "loragate_triage_confidence_ratio",
    "loragate_engine_ready",
    "loragate_engine_requests_running",
    "loragate_engine_requests_waiting",
    "loragate_engine_requests_unfinished",
    "loragate_engine_kv_cache_usage_ratio",
}
HISTOGRAMS = {
    "loragate_request_duration_seconds",
    "loragate_time_to_first_token_seconds",
    "loragate_time_per_output_token_seconds",
    "loragate_queue_time_seconds",
    "loragate_adapter_load_duration_seconds",
    "loragate_triage_confidence_ratio",
}
PROMETHEUS_BUILTIN_METRICS = {"up"}

DATASOURCE_UID = "loragate-prometheus"
REQUIRED_TEMPLATE_VARIABLES = {"base_model": False, "model": True, "route": True}  # name -> multi
REQUIRED_ALERTS = {
    "LoragateAdapterLatencyAboveBase",
    "LoragateStructuredOutputInvalid",
    "LoragateHigh5xxErrorRate",
    "LoragateEngineNotReady",
    "LoragateRouteVariantRolledBack",
    "LoragateRouteRolloutStopped",
}
# For both aggregation levels: p50/p95 latency and TTFT, tokens/s, validity, error rate, request rate.
REQUIRED_RECORDING_SUFFIXES = (
    "request_duration_seconds:p50_5m",
    "request_duration_seconds:p95_5m",
    "time_to_first_token_seconds:p50_5m",
    "time_to_first_token_seconds:p95_5m",
    "completion_tokens:rate_5m",
    "structured_output_valid:ratio_5m",
    "requests_errors:ratio_5m",
    "requests:rate_5m",
)
RECORDING_LEVELS = {"loragate_model": ("base_model", "model"), "loragate_route": ("route", "variant")}
# Per (route, variant) over routed traffic only: what the dashboard's repeated "Routes" row shows.
ROUTE_VARIANT_RULES = (
    "loragate_route_variant:requests:rate_5m",
    "loragate_route_variant:requests_errors:ratio_5m",
    "loragate_route_variant:request_duration_seconds:p95_5m",
)
# What every repetition of the "Routes" row shows (a metric or recording rule name per panel).
ROUTES_ROW_NEEDS = (
    "route_assignments",
    "loragate_route_variant_weight",
    "loragate_route_variant:requests_errors:ratio_5m",
    "loragate_route_variant:request_duration_seconds:p95_5m",
    "structured_output_valid",
    "loragate_route_rollbacks_total",
    "loragate_route_rollout_step",
    "loragate_route_rollout_transitions_total",
)
ADAPTER_LATENCY_FACTOR_RULE = "loragate:config:adapter_latency_factor"
RECORD_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z0-9_]+$")  # level:metric:operations
GRAFANA_VARIABLE_VALUES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _load_yaml(path: Path):
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _rules(path: Path) -> list[dict]:
    return [rule for group in _load_yaml(path)["groups"] for rule in group["rules"]]


def _rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def _rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.yml"))


def _recorded_names() -> set[str]:
    return {rule["record"] for path in _rule_files() for rule in _rules(path) if "record" in rule}


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(dashboard: dict) -> list[dict]:
    """All panels, including those nested in collapsed rows."""
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _variable_query(variable: dict) -> str:
    query = variable.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else query


_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MODIFIER_CLAUSE_RE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.I)
_TOKEN_RE = re.compile(r"(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)|([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan", "atan2",
}
_LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(?P<selector>.*?)\s*,\s*(?P<label>[A-Za-z_]\w*)\s*\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (function and aggregation names are excluded)."""
    text = _STRING_RE.sub('""', expr)
    text = re.sub(r"#[^\n]*", " ", text)  # comments
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range vectors and subqueries
    text = _MODIFIER_CLAUSE_RE.sub(" ", text)  # label lists of by/on/group_left/...
    text = re.sub(r"\boffset\s+-?\w+", " ", text, flags=re.I)
    text = re.sub(r"\$\{?\w+(?::\w+)?\}?", " ", text)  # Grafana variables
    names = set()
    for match in _TOKEN_RE.finditer(text):
        number, name, call = match.groups()
        if number or call or name.lower() in _PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def _allowed_metric_names() -> set[str]:
    allowed = set(EXPECTED_METRICS) | PROMETHEUS_BUILTIN_METRICS | _recorded_names()
    for histogram in HISTOGRAMS:
        allowed |= {f"{histogram}_bucket", f"{histogram}_sum", f"{histogram}_count"}
    return allowed


def _all_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every expression in the rule files, rule tests and the dashboard."""
    exprs: list[tuple[str, str]] = []
    for path in _rule_files():
        for rule in _rules(path):
            exprs.append((f"{path.name}:{rule.get('record') or rule.get('alert')}", rule["expr"]))
    for path in _rule_test_files():
        for i, case in enumerate(_load_yaml(path)["tests"]):
            for series in case.get("input_series", []):
                exprs.append((f"{path.name}:test{i}:input", series["series"]))
            for check in case.get("promql_expr_test", []):
                exprs.append((f"{path.name}:test{i}:promql_expr_test", check["expr"]))
    dashboard = _dashboard()
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                exprs.append((f"panel {panel['id']} {panel.get('title')!r} {target.get('refId')}", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        query = _variable_query(variable)
        match = _LABEL_VALUES_RE.match(query)
        if match:
            exprs.append((f"variable {variable['name']}", match.group("selector")))
        elif query:
            exprs.append((f"variable {variable['name']}", query))
    return exprs


def _dashboard_expressions() -> list[tuple[str, str]]:
    return [(where, expr) for where, expr in _all_expressions() if where.startswith(("panel ", "variable "))]


def _substitute_grafana_variables(expr: str) -> str:
    for name, value in GRAFANA_VARIABLE_VALUES.items():
        expr = expr.replace(name, value)
    for name in REQUIRED_TEMPLATE_VARIABLES:
        expr = re.sub(r"\$\{" + name + r"(?::\w+)?\}|\$" + name + r"\b", ".*", expr)
    return expr


@pytest.fixture(scope="module")
def promtool() -> str:
    return required_tool("promtool", "Debian: apt-get install prometheus")


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


# --------------------------------------------------------------------------------------------
# promtool
# --------------------------------------------------------------------------------------------


def test_promtool_check_config(promtool):
    _run([promtool, "check", "config", str(PROM_CONFIG)])


def test_promtool_check_rules(promtool):
    _run([promtool, "check", "rules", *map(str, _rule_files())])


def test_promtool_test_rules(promtool):
    files = _rule_test_files()
    assert files, f"no promtool unit tests in {RULE_TESTS_DIR}"
    result = _run([promtool, "test", "rules", *map(str, files)])
    assert "FAILED" not in result.stdout + result.stderr


def test_dashboard_queries_parse(promtool, tmp_path):
    """Every dashboard query is valid PromQL once Grafana variables are substituted."""
    rules = [
        {"record": f"dashboard_check:query_{i}:parse", "expr": _substitute_grafana_variables(expr)}
        for i, (_, expr) in enumerate(_dashboard_expressions())
    ]
    rule_file = tmp_path / "dashboard_queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    _run([promtool, "check", "rules", str(rule_file)])


# --------------------------------------------------------------------------------------------
# metric names
# --------------------------------------------------------------------------------------------


def test_metric_name_extraction():
    """The name check below is only as good as metric_names(); make sure it sees what it must."""
    expr = (
        'sum by (base_model, model, le) (rate(loragate_request_duration_seconds_bucket{status=~"5..",'
        ' model=~"$model"}[$__rate_interval])) / on (base_model) group_left () foo:bar:baz offset 5m'
        ' > 0.95 and bogus_metric * 1e3 unless label_replace(up, "x", "$1", "y", "(.+)")'
    )
    assert metric_names(expr) == {"loragate_request_duration_seconds_bucket", "foo:bar:baz", "bogus_metric", "up"}
    assert metric_names("histogram_quantile(0.5, sum(rate(x_bucket[5m])) by (le))") == {"x_bucket"}
    assert metric_names('loragate_requests_total{base_model="qwen",status="200"}') == {"loragate_requests_total"}


def test_expressions_reference_only_known_metrics():
    allowed = _allowed_metric_names()
    expressions = _all_expressions()
    assert len(expressions) > 50
    unknown = {
        where: sorted(metric_names(expr) - allowed) for where, expr in expressions if metric_names(expr) - allowed
    }
    assert not unknown, f"unknown metric names: {unknown}"


def test_every_exported_metric_is_used():
    used = set().union(*(metric_names(expr) for _, expr in _all_expressions()))
    unused = sorted(
        name for name in EXPECTED_METRICS
        if name not in used and not ({f"{name}_bucket", f"{name}_sum", f"{name}_count"} & used)
    )
    assert not unused, f"metrics exported by the service but used by no rule or panel: {unused}"


# --------------------------------------------------------------------------------------------
# Prometheus config and rules
# --------------------------------------------------------------------------------------------


def test_prometheus_config():
    config = _load_yaml(PROM_CONFIG)
    assert config["global"]["scrape_interval"] == "15s"
    loaded = {(PROM_DIR / pattern).resolve() for pattern in config["rule_files"]}
    assert loaded == {path.resolve() for path in _rule_files()}, "prometheus.yml must load every rules/*.yml"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert "loragate" in jobs
    targets = [t for sc in jobs["loragate"]["static_configs"] for t in sc["targets"]]
    assert "localhost:8000" in targets
    assert jobs["loragate"].get("metrics_path", "/metrics") == "/metrics"
    assert "other hosts" in PROM_CONFIG.read_text(encoding="utf-8").lower()


def test_recording_rules_naming_and_coverage():
    rules = [rule for rule in _rules(RECORDING_RULES) if "record" in rule]
    names = [rule["record"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate recording rules"
    bad = [name for name in names if not RECORD_NAME_RE.match(name)]
    assert not bad, f"not level:metric:operations: {bad}"
    for level in RECORDING_LEVELS:
        missing = [f"{level}:{suffix}" for suffix in REQUIRED_RECORDING_SUFFIXES if f"{level}:{suffix}" not in names]
        assert not missing, f"missing recording rules: {missing}"
    by_name = {rule["record"]: rule["expr"] for rule in rules}
    for level, labels in RECORDING_LEVELS.items():
        for suffix in REQUIRED_RECORDING_SUFFIXES:
            expr = by_name[f"{level}:{suffix}"]
            for label in labels:
                assert label in expr, f"{level}:{suffix} does not aggregate by {label}"
            assert "[5m]" in expr, f"{level}:{suffix} is not over 5m"
    assert ADAPTER_LATENCY_FACTOR_RULE in names
    assert re.fullmatch(r"vector\(\s*[0-9.]+\s*\)", by_name[ADAPTER_LATENCY_FACTOR_RULE].strip())
    errors = by_name["loragate_model:requests_errors:ratio_5m"]
    assert re.search(r'status=~"(5\.\.\|4\.\.|4\.\.\|5\.\.)"', errors)


def test_route_variant_recording_rules():
    by_name = {rule["record"]: rule["expr"] for rule in _rules(RECORDING_RULES) if "record" in rule}
    tested = set()
    for path in _rule_test_files():
        for case in _load_yaml(path)["tests"]:
            for check in case.get("promql_expr_test", []):
                tested |= metric_names(check["expr"])
    for name in ROUTE_VARIANT_RULES:
        assert name in by_name, f"missing recording rule {name}"
        expr = by_name[name]
        assert re.search(r"by \((route, variant)(, le)?\)", expr), f"{name} must aggregate by (route, variant)"
        assert "base_model" not in expr, f"{name} should not split by base_model"
        assert 'route!="none"' in expr, f"{name} must leave out direct traffic (route=\"none\")"
        assert "[5m]" in expr, f"{name} is not over 5m"
        assert name in tested, f"{name} has no promtool test"


def test_alert_rules():
    alerts = {rule["alert"]: rule for rule in _rules(ALERT_RULES) if "alert" in rule}
    assert REQUIRED_ALERTS <= set(alerts), f"missing alerts: {REQUIRED_ALERTS - set(alerts)}"
    for name, rule in alerts.items():
        assert rule.get("for"), f"{name} has no `for`"
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, name
        assert {"summary", "description"} <= set(rule.get("annotations", {})), name
    latency = alerts["LoragateAdapterLatencyAboveBase"]["expr"]
    assert ADAPTER_LATENCY_FACTOR_RULE in latency
    assert re.search(r"on\s*\(\s*base_model\s*\)", latency), "adapter series must be joined on base_model"
    base_rule = {r["record"]: r["expr"] for r in _rules(RECORDING_RULES) if "record" in r}[
        "loragate_base:request_duration_seconds:p95_5m"
    ]
    assert "label_replace" in base_rule and '"model", "$1", "base_model"' in base_rule
    assert "0.01" in alerts["LoragateStructuredOutputInvalid"]["expr"]
    assert '5..' in {r["record"]: r["expr"] for r in _rules(RECORDING_RULES) if "record" in r}[
        "loragate_model:requests_5xx:ratio_5m"
    ]
    rollback = alerts["LoragateRouteVariantRolledBack"]
    assert re.search(r"increase\(\s*loragate_route_rollbacks_total\[10m\]\s*\)\)?\s*>\s*0", rollback["expr"])
    assert "offset 10m" in rollback["expr"], "a rollback counter series is born at 1: increase() alone misses it"
    assert rollback["labels"]["severity"] == "warning"
    for label in ("route", "variant", "reason"):
        assert f"$labels.{label}" in rollback["annotations"]["summary"], f"summary should name the {label}"
    stopped = alerts["LoragateRouteRolloutStopped"]
    assert "loragate_route_rollout_transitions_total" in stopped["expr"] and "offset 10m" in stopped["expr"]
    assert 'transition=~"rolled_back|aborted"' in stopped["expr"], "advances and completions must not fire it"
    engine = alerts["LoragateEngineNotReady"]
    assert engine["for"] == "1m"
    for part in ("loragate_engine_ready", "== 0", "absent(", "up{"):
        assert part in engine["expr"], f"LoragateEngineNotReady should cover {part!r}"


def test_every_alert_is_tested_firing_and_not_firing():
    alerts = {rule["alert"] for rule in _rules(ALERT_RULES) if "alert" in rule}
    firing: set[str] = set()
    silent: set[str] = set()
    for path in _rule_test_files():
        spec = _load_yaml(path)
        loaded = {(path.parent / f).resolve() for f in spec["rule_files"]}
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                if ALERT_RULES.resolve() not in loaded:
                    continue
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert alerts - firing == set(), f"alerts never tested firing: {alerts - firing}"
    assert alerts - silent == set(), f"alerts never tested not firing: {alerts - silent}"


def test_recording_rules_are_tested():
    tested = set()
    for path in _rule_test_files():
        for case in _load_yaml(path)["tests"]:
            for check in case.get("promql_expr_test", []):
                tested |= metric_names(check["expr"])
    recorded = _recorded_names()
    assert len(tested & recorded) >= 10, f"only {sorted(tested & recorded)} recording rules have promql tests"
    for level in RECORDING_LEVELS:
        assert f"{level}:request_duration_seconds:p95_5m" in tested or f"{level}:request_duration_seconds:p50_5m" in tested


# --------------------------------------------------------------------------------------------
# Grafana
# --------------------------------------------------------------------------------------------


def test_grafana_datasource_provisioning():
    provisioning = _load_yaml(DATASOURCE_PROVISIONING)
    assert provisioning["apiVersion"] == 1
    (datasource,) = provisioning["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["url"].startswith("http")


def test_grafana_dashboard_provisioning():
    provisioning = _load_yaml(DASHBOARD_PROVISIONING)
    assert provisioning["apiVersion"] == 1
    (provider,) = provisioning["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert provider["options"]["path"] in readme, "README must say where the dashboard JSON goes"


def _datasource_uids(obj) -> list[str]:
    """uid of every prometheus datasource reference anywhere in the dashboard."""
    found = []
    if isinstance(obj, dict):
        ds = obj.get("datasource")
        if isinstance(ds, dict) and ds.get("type") == "prometheus":
            found.append(ds.get("uid"))
        elif isinstance(ds, str):
            found.append(ds)
        for value in obj.values():
            found.extend(_datasource_uids(value))
    elif isinstance(obj, list):
        for value in obj:
            found.extend(_datasource_uids(value))
    return found


def test_dashboard_structure():
    dashboard = _dashboard()
    assert isinstance(dashboard.get("schemaVersion"), int) and dashboard["schemaVersion"] >= 36
    assert dashboard.get("uid") and dashboard.get("title")
    panels = _panels(dashboard)
    assert len(panels) >= 10
    ids = [panel.get("id") for panel in panels]
    assert all(isinstance(i, int) for i in ids), "every panel needs an integer id"
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: dict[tuple[int, int], int] = {}
    for panel in panels:
        where = f"panel {panel['id']} {panel.get('title')!r}"
        assert panel.get("type") and panel.get("title"), where
        grid = panel.get("gridPos")
        assert isinstance(grid, dict) and all(isinstance(grid.get(k), int) for k in "hwxy"), where
        assert grid["x"] >= 0 and grid["y"] >= 0 and grid["w"] > 0 and grid["h"] > 0, where
        assert grid["x"] + grid["w"] <= 24, f"{where} is wider than the 24-column grid"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in occupied, f"{where} overlaps panel {occupied[(x, y)]}"
                occupied[(x, y)] = panel["id"]
        if panel["type"] == "row":
            continue
        targets = panel.get("targets")
        assert isinstance(targets, list) and targets, f"{where} has no targets"
        ref_ids = [target.get("refId") for target in targets]
        assert all(ref_ids) and len(ref_ids) == len(set(ref_ids)), f"{where}: refIds missing or duplicated"
        for target in targets:
            assert target.get("expr", "").strip(), f"{where} target {target.get('refId')} has no expr"
        assert panel.get("datasource", {}).get("uid") == DATASOURCE_UID, where
    uids = set(_datasource_uids(dashboard))
    assert uids == {DATASOURCE_UID}, f"dashboard must use the provisioned datasource uid only, found {uids}"
    assert _load_yaml(DATASOURCE_PROVISIONING)["datasources"][0]["uid"] == DATASOURCE_UID


def test_dashboard_compares_base_and_adapters():
    exprs = " ".join(expr for _, expr in _dashboard_expressions())
    for needed in (
        "request_duration_seconds:p50_5m",
        "request_duration_seconds:p95_5m",
        "time_to_first_token_seconds:p95_5m",
        "completion_tokens:rate_5m",
        "structured_output_valid:ratio_5m",
        "requests_errors:ratio_5m",
        "route_assignments:share_5m",
        "loragate_model:kind:info",
        "loragate_adapters_registered",
        "loragate_adapters_resident",
        "loragate_engine_ready",
        "loragate_engine_requests_running",
        "loragate_engine_requests_waiting",
        "loragate_engine_kv_cache_usage_ratio",
        "loragate:prefix_cache_hit_ratio:rate5m",
    ):
        assert needed in exprs, f"no dashboard panel shows {needed}"


def test_dashboard_template_variables():
    dashboard = _dashboard()
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    for name, multi in REQUIRED_TEMPLATE_VARIABLES.items():
        assert name in variables, f"template variable {name} missing"
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"]["uid"] == DATASOURCE_UID
        match = _LABEL_VALUES_RE.match(_variable_query(variable))
        assert match and match.group("label") == name, f"{name} should come from label_values(..., {name})"
        if multi:
            assert variable.get("multi") is True, f"{name} must be multi-select"
    used = " ".join(expr for where, expr in _dashboard_expressions() if where.startswith("panel "))
    for name in REQUIRED_TEMPLATE_VARIABLES:
        assert f"${name}" in used, f"no panel filters by ${name}"


def _row_panels(dashboard: dict, row: dict) -> list[dict]:
    """A row's panels: nested when collapsed, else the top-level panels after it up to the next row."""
    if row.get("collapsed"):
        return row.get("panels", [])
    panels = dashboard["panels"]
    after = panels[panels.index(row) + 1:]
    return list(itertools.takewhile(lambda panel: panel.get("type") != "row", after))


def test_dashboard_routes_row_repeats_per_route():
    dashboard = _dashboard()
    rows = [panel for panel in dashboard["panels"] if panel.get("type") == "row" and panel.get("title") == "Routes"]
    assert len(rows) == 1, "the dashboard needs one row titled Routes"
    (row,) = rows
    assert row.get("repeat") == "route", "the Routes row must repeat over the route variable"
    variable = {v["name"]: v for v in dashboard["templating"]["list"]}["route"]
    match = _LABEL_VALUES_RE.match(_variable_query(variable))
    assert match and match.group("selector") == "loragate_route_assignments_total" and match.group("label") == "route"
    assert variable.get("multi") is True and variable.get("includeAll") is True, "repeat needs multi + All"
    panels = _row_panels(dashboard, row)
    assert len(panels) >= len(ROUTES_ROW_NEEDS), "the Routes row has too few panels"
    row_y = row["gridPos"]["y"]
    exprs = []
    for panel in panels:
        where = f"panel {panel['id']} {panel.get('title')!r}"
        assert panel["gridPos"]["y"] > row_y, f"{where} sits above its row"
        for target in panel["targets"]:
            # one repetition shows one route: an exact match on the repeated value, never a regex
            assert 'route="$route"' in target["expr"], f"{where} does not select route=\"$route\""
            exprs.append(target["expr"])
    joined = " ".join(exprs)
    for needed in ROUTES_ROW_NEEDS:
        assert needed in joined, f"no panel of the Routes row shows {needed}"
