"""service/observability/route_report.py: per-variant figures and comparisons, hand-checked."""

from __future__ import annotations

import re

import pytest

from service.observability.comparison import proportion_difference
from service.observability.route_report import RouteReport, build_route_report
from service.observability.stats import OutcomeSample, RequestSample

ROUTE = "ticket-triage"
NOW = 2_000_000.0


def req(variant: str, *, status: int = 200, duration: float = 1.0, ttft: float | None = 0.1, prompt: int = 10,
        completion: int = 10, structured: str | None = None, shadow: bool = False, route: str = ROUTE,
        ) -> RequestSample:
    return RequestSample(
        finished_at=NOW - 5, base_model="qwen", model=variant, route=route, variant=variant, endpoint="triage",
        status=status, duration_s=duration, ttft_s=ttft, prompt_tokens=prompt, completion_tokens=completion,
        structured_output=structured, shadow=shadow,
    )


def outcome(variant: str, category: str, priority: str | None = None, *, shadow: bool = False,
            route: str = ROUTE) -> OutcomeSample:
    labels = (("category", category),) + ((("priority", priority),) if priority else ())
    return OutcomeSample(finished_at=NOW - 5, route=route, variant=variant, shadow=shadow, labels=labels)


def control_samples() -> list[RequestSample]:
    """v1: 8 successes (durations 1..8 s, TTFT 0.1..0.8 s, completion 10..80) and 2 errors."""
    structured = ["valid"] * 6 + ["invalid", "truncated"]
    ok = [req("v1", duration=float(i), ttft=i / 10, prompt=10, completion=10 * i, structured=structured[i - 1])
          for i in range(1, 9)]
    errors = [req("v1", status=500, duration=100.0, ttft=None, prompt=0, completion=0),
              req("v1", status=404, duration=50.0, ttft=None, prompt=0, completion=0)]
    return ok + errors


def scenario() -> tuple[list[RequestSample], list[OutcomeSample]]:
    samples = [
        *[req("v2", duration=2.0, ttft=0.2, prompt=20, completion=30, structured="valid") for _ in range(4)],
        *control_samples(),
        req("old", duration=3.0),  # no longer configured, still in the window
        # shadow traffic: its own target, and one mirrored request whose target is also v1
        *[req("v3", duration=9.0, ttft=0.9, shadow=True, structured="invalid") for _ in range(3)],
        req("v1", status=503, duration=9.0, shadow=True),
        # another route
        *[req("v1", status=500, route="other-route") for _ in range(5)],
    ]
    outcomes = [
        outcome("v1", "billing", "high"), outcome("v1", "billing", "high"), outcome("v1", "billing", "low"),
        outcome("v1", "bug", "low"),
        outcome("v2", "bug"),
        outcome("v3", "billing", "high", shadow=True),
        outcome("v1", "account", "high", route="other-route"),
    ]
    return samples, outcomes


def report(order: list[str] | None = None, **kwargs) -> RouteReport:  # noqa: ANN003
    samples, outcomes = scenario()
    return build_route_report(ROUTE, samples, outcomes, 600.0, order or ["v1", "v2", "v4"], generated_at=NOW,
                              **kwargs)


def test_variant_figures_hand_checked() -> None:
    result = report(rollbacks={"v2": "error_rate 0.2 > 0.1 over 40 requests"})
    assert result.route == ROUTE and result.window_seconds == 600.0 and result.generated_at == NOW
    assert result.control == "v1"
    assert [v.variant for v in result.variants] == ["v1", "v2", "v4", "old"]
    v1, v2, v4, old = result.variants
    assert v1.control and not v2.control and not v1.shadow
    assert (v1.requests, v1.errors, v1.error_rate) == (10, 2, 0.2)
    # successful durations 1..8: p50 = 4.5, p95 at rank 7 * 0.95 = 6.65 -> 7 + 0.65 = 7.65
    assert v1.latency_p50_s == pytest.approx(4.5)
    assert v1.latency_p95_s == pytest.approx(7.65)
    assert v1.ttft_p50_s == pytest.approx(0.45)
    assert v1.ttft_p95_s == pytest.approx(0.765)
    assert v1.mean_prompt_tokens == pytest.approx(10.0)  # the errors' 0 tokens are not averaged in
    assert v1.mean_completion_tokens == pytest.approx(45.0)
    assert (v1.structured_requests, v1.structured_valid, v1.structured_valid_rate) == (8, 6, 0.75)
    assert (v2.requests, v2.errors, v2.error_rate) == (4, 0, 0.0)
    assert (v2.latency_p95_s, v2.mean_completion_tokens) == (2.0, 30.0)
    assert v2.structured_valid_rate == 1.0
    assert v2.rolled_back == "error_rate 0.2 > 0.1 over 40 requests" and v1.rolled_back is None
    assert result.rollbacks == {"v2": "error_rate 0.2 > 0.1 over 40 requests"}
    # a configured variant without traffic is listed with empty figures
    assert (v4.requests, v4.error_rate, v4.latency_p50_s, v4.structured_valid_rate) == (0, None, None, None)
    assert old.requests == 1 and not old.control


def test_outcome_distributions() -> None:
    v1, v2, *_ = report().variants
    assert v1.outcomes == 4
    category, priority = v1.labels["category"], v1.labels["priority"]
    assert category.total == 4
    assert list(category.counts.items()) == [("billing", 3), ("bug", 1)]  # most frequent first
    assert category.shares == {"billing": 0.75, "bug": 0.25}
    assert priority.counts == {"high": 2, "low": 2} and priority.shares == {"high": 0.5, "low": 0.5}
    # v2's only outcome had no priority label: the key is absent, not zero
    assert v2.outcomes == 1 and set(v2.labels) == {"category"} and v2.labels["category"].shares == {"bug": 1.0}


def test_shadow_traffic_kept_apart() -> None:
    result = report()
    assert [s.variant for s in result.shadows] == ["v1", "v3"]
    shadow_v1, shadow_v3 = result.shadows
    assert all(s.shadow and not s.control for s in result.shadows)
    assert (shadow_v1.requests, shadow_v1.errors) == (1, 1)
    assert (shadow_v3.requests, shadow_v3.latency_p50_s, shadow_v3.structured_valid_rate) == (3, 9.0, 0.0)
    assert shadow_v3.labels["category"].counts == {"billing": 1}
    # the primary v1 figures do not include its mirrored request, nor the other route's
    assert result.variants[0].requests == 10
    assert "v3" not in {v.variant for v in result.variants}


def test_comparisons_against_the_control() -> None:
    result = report()
    by_variant = {(c.variant, c.shadow): c for c in result.comparisons}
    assert set(by_variant) == {("v2", False), ("v4", False), ("old", False), ("v1", True), ("v3", True)}
    assert all(c.control == "v1" for c in result.comparisons)
    v2 = {m.metric: m for m in by_variant[("v2", False)].metrics}
    assert list(v2) == ["error_rate", "structured_valid_rate", "latency_p50_s", "latency_p95_s", "ttft_p50_s",
                        "ttft_p95_s", "mean_completion_tokens"]
    error = v2["error_rate"]
    assert error.method == "newcombe" and (error.control_value, error.variant_value) == (0.2, 0.0)
    assert error.difference == proportion_difference(2, 10, 0, 4)
    assert error.difference.estimate == pytest.approx(-0.2)
    validity = v2["structured_valid_rate"]
    assert validity.difference == proportion_difference(6, 8, 4, 4)
    latency = v2["latency_p50_s"]
    assert latency.method == "bootstrap" and latency.difference.estimate == pytest.approx(2.0 - 4.5)
    assert v2["latency_p95_s"].difference.estimate == pytest.approx(2.0 - 7.65)
    assert v2["mean_completion_tokens"].difference.estimate == pytest.approx(30.0 - 45.0)
    # no traffic: nothing to compare
    v4 = by_variant[("v4", False)]
    assert all(m.difference is None and not m.significant for m in v4.metrics)
    assert v4.verdict == "not enough data"
    assert v4.metrics[0].verdict == "v4 error rate: not enough data"


def test_control_follows_variant_order() -> None:
    result = report(order=["v2", "v1"])
    assert result.control == "v2"
    assert [v.variant for v in result.variants][:2] == ["v2", "v1"]
    assert result.variants[0].control and not result.variants[1].control
    first = next(c for c in result.comparisons if c.variant == "v1" and not c.shadow)
    assert first.control == "v2"
    assert first.metrics[0].difference.estimate == pytest.approx(0.2)  # v1 - v2 error rate


def test_verdicts_in_plain_words() -> None:
    # Newcombe's example as error counts: control 48/80, variant 56/70 -> +20.0 points (5.2 to 33.4)
    samples = [req("v1", status=500 if i < 48 else 200) for i in range(80)]
    samples += [req("v2", status=500 if i < 56 else 200) for i in range(70)]
    result = build_route_report(ROUTE, samples, [], 300, ["v1", "v2"], generated_at=NOW)
    (comparison,) = result.comparisons
    error = comparison.metrics[0]
    assert error.significant
    assert error.verdict == "v2 error rate 20.0 points higher (95% CI 5.2 to 33.4)"
    assert comparison.verdict.startswith("v2 error rate 20.0 points higher (95% CI 5.2 to 33.4)")


def test_verdict_latency_and_no_difference() -> None:
    samples = [req("v1", duration=0.100 + i / 10_000, ttft=0.05) for i in range(200)]
    samples += [req("v2", duration=0.300 + i / 10_000, ttft=0.05) for i in range(200)]
    samples += [req("v3", duration=0.100 + i / 10_000, ttft=0.05) for i in range(200)]
    result = build_route_report(ROUTE, samples, [], 300, ["v1", "v2", "v3"], generated_at=NOW)
    v2, v3 = result.comparisons
    p50 = {m.metric: m for m in v2.metrics}["latency_p50_s"]
    assert p50.significant
    assert re.fullmatch(r"v2 p50 latency 200 ms higher \(95% CI \d+ to \d+ ms\)", p50.verdict), p50.verdict
    assert "v2 p50 latency 200 ms higher" in v2.verdict and "error rate" not in v2.verdict
    assert v3.verdict == "no significant difference"
    assert {m.metric: m for m in v3.metrics}["error_rate"].verdict == (
        "v3 error rate: no significant difference (95% CI -1.9 to 1.9)")
    # a lower figure says so, with the signed interval
    reverse = build_route_report(ROUTE, samples, [], 300, ["v2", "v1"], generated_at=NOW)
    lower = {m.metric: m for m in reverse.comparisons[0].metrics}["latency_p95_s"]
    assert re.fullmatch(r"v1 p95 latency 200 ms lower \(95% CI -\d+ to -\d+ ms\)", lower.verdict), lower.verdict


def test_report_is_deterministic_and_serialisable() -> None:
    first, again = report(), report()
    assert first == again
    assert RouteReport.model_validate_json(first.model_dump_json()) == first


def test_empty_window() -> None:
    result = build_route_report(ROUTE, [], [], 300, ["v1", "v2"], generated_at=NOW)
    assert [v.requests for v in result.variants] == [0, 0]
    assert result.shadows == []
    assert [c.verdict for c in result.comparisons] == ["not enough data"]
    assert build_route_report(ROUTE, [], [], 300, [], generated_at=NOW).comparisons == []
