"""The service's metric registry matches what deploy/ (rules, dashboard) expects, and follows
Prometheus naming conventions (https://prometheus.io/docs/practices/naming/)."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from service.observability.metrics import Metrics
from tests.unit.test_deploy_assets import EXPECTED_METRICS, HISTOGRAMS

NAME_RE = re.compile(r"^loragate_[a-z][a-z0-9_]*[a-z0-9]$")
LABEL_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# Base units only (seconds, not ms); ratios are 0-1; token counts are plain counters.
HISTOGRAM_UNITS = ("_seconds", "_ratio")


@pytest.fixture()
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def exposed_families(metrics: Metrics) -> dict[str, str]:
    """Metric name as PromQL sees it -> type; prometheus-client names counter families without `_total`."""
    return {
        f"{family.name}_total" if family.type == "counter" else family.name: family.type
        for family in metrics.registry.collect()
    }


def test_exports_exactly_the_expected_metrics(metrics: Metrics) -> None:
    families = exposed_families(metrics)
    assert set(families) == EXPECTED_METRICS, (
        f"missing from the service: {sorted(EXPECTED_METRICS - set(families))}; "
        f"not in test_deploy_assets.EXPECTED_METRICS: {sorted(set(families) - EXPECTED_METRICS)}"
    )
    assert {name for name, kind in families.items() if kind == "histogram"} == HISTOGRAMS


def test_naming_conventions(metrics: Metrics) -> None:
    for name, kind in exposed_families(metrics).items():
        assert NAME_RE.match(name), f"{name} must be snake_case and start with loragate_"
        if kind == "counter":
            assert name.endswith("_total"), name
        else:
            assert not name.endswith("_total"), f"only counters end in _total: {name}"
        if kind == "histogram":
            assert name.endswith(HISTOGRAM_UNITS), f"histogram {name} must be in seconds (or a 0-1 ratio)"
        assert not re.search(r"_(ms|milliseconds|bytes_total_bytes|percent)(_|$)", name), name


def test_label_names(metrics: Metrics) -> None:
    reserved = {"le", "quantile", "job", "instance"}  # set by histograms or by Prometheus itself
    seen: set[str] = set()
    for family in metrics.registry.collect():
        # prometheus-client keeps declared label names only on the (private) collector attribute.
        collector = metrics.registry._names_to_collectors[family.name]  # noqa: SLF001
        for label in collector._labelnames:  # noqa: SLF001
            assert LABEL_RE.match(label) and label not in reserved, f"{family.name}: bad label {label!r}"
            seen.add(label)
    assert {"base_model", "model", "route", "variant", "status"} <= seen


def test_counters_get_total_in_both_expositions(metrics: Metrics) -> None:
    metrics.requests.labels("b", "b", "none", "none", "none", "chat", "200").inc()
    metrics.rejected.labels("model_not_found").inc()
    text = generate_latest(metrics.registry).decode()
    samples = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert {"loragate_requests_total", "loragate_rejected_requests_total"} <= samples
    openmetrics = generate_openmetrics(metrics.registry).decode()
    assert "loragate_requests_total{" in openmetrics and openmetrics.endswith("# EOF\n")
    assert "# TYPE loragate_requests counter" in openmetrics
