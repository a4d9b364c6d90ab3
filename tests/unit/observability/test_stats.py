"""service/stats.py (rolling-window figures) and GET /v1/stats, with hand-computed figures."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api.auth import Auth
from service.api.errors import install_error_handlers
from service.api import observability as stats_route
from service.observability.stats import GroupStats, RequestSample, RequestStats, mean, percentile

NOW = 1_000_000.0
BASE, ADAPTER = "base-model", "tuned"


def sample(
    model: str = BASE, *, at: float = NOW - 10, status: int = 200, duration: float = 1.0,
    ttft: float | None = 0.1, prompt: int = 10, completion: int = 10, structured: str | None = None,
    route: str = "none", variant: str = "none", base: str = BASE,
) -> RequestSample:
    return RequestSample(
        finished_at=at, base_model=base, model=model, route=route, variant=variant, endpoint="chat",
        status=status, duration_s=duration, ttft_s=ttft, prompt_tokens=prompt, completion_tokens=completion,
        structured_output=structured,
    )


def by_model(stats: RequestStats, **kwargs) -> dict[str, GroupStats]:  # noqa: ANN003
    return {g.model: g for g in stats.report(now=NOW, **kwargs).models}


def test_percentile_interpolates_between_ranks() -> None:
    """The project's one convention (stats, route reports, the rollout guard, evaluation reports and
    loadtests): q in 0-100, linear interpolation between closest ranks, None for no values."""
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)  # 4 + 0.8 * (5 - 4)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    values = [40.0, 10.0, 30.0, 20.0]  # any order: sorted 10 20 30 40
    assert percentile(values, 50) == 25.0  # rank 1.5 -> halfway between 20 and 30
    assert percentile(values, 95) == pytest.approx(38.5)  # rank 2.85 -> 30 + 0.85 * 10
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_mean_is_none_without_values() -> None:
    assert mean([1.0, 2.0, 6.0]) == 3.0
    assert mean([1, 2]) == 1.5
    assert mean([]) is None


@pytest.fixture()
def stats() -> RequestStats:
    stats = RequestStats(window_s=900)
    for i, duration in enumerate([1.0, 2.0, 3.0, 4.0, 5.0], start=1):
        stats.observe(sample(duration=duration, ttft=i / 10, prompt=10 * i, completion=10))
    stats.observe(sample(status=500, duration=100.0, ttft=None, prompt=999, completion=0))  # an error
    for duration, structured in zip([2.0, 4.0, 6.0, 8.0, 10.0], ["valid", "valid", "invalid", "truncated", None]):
        stats.observe(sample(ADAPTER, duration=duration, ttft=duration / 10, prompt=20, completion=40,
                             structured=structured))
    return stats


def test_base_model_figures(stats: RequestStats) -> None:
    base = by_model(stats)[BASE]
    assert (base.base_model, base.kind, base.route, base.variant) == (BASE, "base", None, None)
    assert (base.requests, base.errors) == (6, 1)
    assert base.error_rate == pytest.approx(1 / 6)
    # Percentiles, tokens/s and means ignore the 500 (duration 100 s, 999 prompt tokens).
    assert base.latency_p50_s == pytest.approx(3.0)
    assert base.latency_p95_s == pytest.approx(4.8)
    assert base.ttft_p50_s == pytest.approx(0.3)
    assert base.ttft_p95_s == pytest.approx(0.48)
    assert base.tokens_per_second == pytest.approx((10 / 1 + 10 / 2 + 10 / 3 + 10 / 4 + 10 / 5) / 5)
    assert base.mean_prompt_tokens == pytest.approx(30.0)
    assert base.mean_completion_tokens == pytest.approx(10.0)
    assert base.structured_requests == 0 and base.structured_valid_rate is None
    assert base.latency_p95_ratio_vs_base is None


def test_adapter_figures_and_ratio_vs_base(stats: RequestStats) -> None:
    adapter = by_model(stats)[ADAPTER]
    assert (adapter.base_model, adapter.kind) == (BASE, "adapter")
    assert (adapter.requests, adapter.errors, adapter.error_rate) == (5, 0, 0.0)
    assert adapter.latency_p50_s == pytest.approx(6.0)
    assert adapter.latency_p95_s == pytest.approx(9.6)  # 8 + 0.8 * (10 - 8)
    assert adapter.ttft_p95_s == pytest.approx(0.96)
    assert adapter.latency_p95_ratio_vs_base == pytest.approx(9.6 / 4.8)
    assert adapter.tokens_per_second == pytest.approx((40 / 2 + 40 / 4 + 40 / 6 + 40 / 8 + 40 / 10) / 5)
    assert (adapter.mean_prompt_tokens, adapter.mean_completion_tokens) == (20.0, 40.0)
    # 4 structured replies (the None one was not structured): 2 valid, 1 invalid, 1 truncated.
    assert adapter.structured_requests == 4
    assert adapter.structured_valid_rate == pytest.approx(0.5)


def test_report_order_and_shape(stats: RequestStats) -> None:
    report = stats.report(now=NOW)
    assert [g.model for g in report.models] == [BASE, ADAPTER]  # base first within its base model
    assert report.variants == []  # direct requests only
    assert report.window_seconds == 900 and report.generated_at == NOW
    assert report.model_dump()["models"][0]["kind"] == "base"


def test_ratio_is_none_without_a_successful_base() -> None:
    stats = RequestStats()
    stats.observe(sample(ADAPTER, duration=2.0))
    assert by_model(stats)[ADAPTER].latency_p95_ratio_vs_base is None  # no base traffic
    stats.observe(sample(BASE, status=503, duration=1.0))
    models = by_model(stats)
    assert models[BASE].latency_p95_s is None  # only an error
    assert models[ADAPTER].latency_p95_ratio_vs_base is None


def test_only_errors_gives_none_figures() -> None:
    stats = RequestStats()
    stats.observe(sample(status=499, duration=3.0, completion=0, structured="truncated"))
    base = by_model(stats)[BASE]
    assert (base.requests, base.errors, base.error_rate) == (1, 1, 1.0)
    assert base.latency_p50_s is None and base.ttft_p95_s is None and base.tokens_per_second is None
    assert base.mean_prompt_tokens is None and base.mean_completion_tokens is None
    assert (base.structured_requests, base.structured_valid_rate) == (1, 0.0)


def test_tokens_per_second_skips_requests_without_tokens() -> None:
    stats = RequestStats()
    stats.observe(sample(duration=2.0, completion=8))
    stats.observe(sample(duration=1.0, completion=0, ttft=None))
    base = by_model(stats)[BASE]
    assert base.tokens_per_second == pytest.approx(4.0)
    assert base.mean_completion_tokens == pytest.approx(4.0)  # the 0-token reply still counts here
    assert base.ttft_p50_s == pytest.approx(0.1)  # only requests with a first token


def test_window_expiry() -> None:
    stats = RequestStats(window_s=900)
    stats.observe(sample(at=NOW - 1001, duration=50.0))
    assert len(stats) == 1
    stats.observe(sample(at=NOW - 100, duration=1.0))
    assert len(stats) == 1  # the first sample fell out of the window when the second arrived
    stats.observe(sample(at=NOW - 30, duration=2.0))
    assert by_model(stats)[BASE].requests == 2
    assert by_model(stats, window_s=60)[BASE].requests == 1  # a shorter window filters, keeps
    assert len(stats) == 2
    assert stats.report(window_s=5000, now=NOW).window_seconds == 900  # capped at the configured window
    assert stats.report(now=NOW + 850).models[0].requests == 1  # NOW - 100 expired by then
    assert len(stats) == 1  # report() evicts too
    assert stats.report(now=NOW + 1000).models == []


def test_bounded_memory() -> None:
    stats = RequestStats(window_s=900, max_samples=3)
    for i in range(5):
        stats.observe(sample(at=NOW - 10 + i, duration=float(i + 1)))
    assert len(stats) == 3
    base = by_model(stats)[BASE]
    assert base.requests == 3
    assert base.latency_p50_s == pytest.approx(4.0)  # durations 3, 4, 5 survive


def test_invalid_construction() -> None:
    with pytest.raises(ValueError):
        RequestStats(window_s=0)
    with pytest.raises(ValueError):
        RequestStats(max_samples=0)


def test_variants_grouping() -> None:
    stats = RequestStats()
    stats.observe(sample(ADAPTER, route="checkout", variant="a", duration=1.0))
    stats.observe(sample(ADAPTER, route="checkout", variant="a", duration=3.0, status=500))
    stats.observe(sample(BASE, route="checkout", variant="b", duration=2.0))
    stats.observe(sample("other", route="checkout", variant="b", duration=4.0))
    stats.observe(sample(BASE, duration=9.0))  # direct: in models, not in variants
    report = stats.report(now=NOW)
    variants = {(g.route, g.variant): g for g in report.variants}
    assert list(variants) == [("checkout", "a"), ("checkout", "b")]
    a, b = variants["checkout", "a"], variants["checkout", "b"]
    assert (a.requests, a.errors, a.error_rate, a.latency_p50_s) == (2, 1, 0.5, 1.0)
    assert (a.base_model, a.model, a.kind) == (BASE, ADAPTER, None)
    assert (b.requests, b.latency_p50_s) == (2, pytest.approx(3.0))
    assert b.model is None  # served by two models
    assert a.latency_p95_ratio_vs_base is None
    models = {g.model: g.requests for g in report.models}
    assert models == {BASE: 2, ADAPTER: 2, "other": 1}


def test_models_keyed_by_base_model_too() -> None:
    stats = RequestStats()
    stats.observe(sample("b1", base="b1", duration=1.0))
    stats.observe(sample("tuned", base="b1", duration=3.0))
    stats.observe(sample("b2", base="b2", duration=2.0))
    stats.observe(sample("tuned", base="b2", duration=2.0))
    report = stats.report(now=NOW)
    assert [(g.base_model, g.model, g.kind) for g in report.models] == [
        ("b1", "b1", "base"), ("b1", "tuned", "adapter"), ("b2", "b2", "base"), ("b2", "tuned", "adapter"),
    ]
    assert [g.latency_p95_ratio_vs_base for g in report.models] == [None, 3.0, None, 1.0]


# ------------------------------------------------------------------------------ GET /v1/stats
@pytest.fixture()
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(stats_route.router)
    request_stats = RequestStats(window_s=600)
    request_stats.observe(sample(at=time.time() - 5, duration=2.0))
    app.state.services = SimpleNamespace(stats=request_stats)
    app.state.auth = Auth(None)  # keys off: the router's key requirement lets everything through
    return TestClient(app)


def test_stats_endpoint(client: TestClient) -> None:
    body = client.get("/v1/stats", params={"window_seconds": 300}).json()
    assert body["window_seconds"] == 300
    assert [(m["model"], m["kind"], m["requests"]) for m in body["models"]] == [(BASE, "base", 1)]
    assert client.get("/v1/stats").json()["window_seconds"] == 600


@pytest.mark.parametrize("window", ["0", "0.5", "601", "abc", "-3"])
def test_stats_endpoint_rejects_bad_windows(client: TestClient, window: str) -> None:
    response = client.get("/v1/stats", params={"window_seconds": window})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_value"
    assert "window_seconds" in error["param"]
