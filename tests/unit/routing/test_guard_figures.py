"""Every guard decision states its figures: each rate with its limit, sample size and 95% Wilson
interval, the latency ratio with both p95s and sample sizes, and what it was judged on."""

from __future__ import annotations

import time

from service.observability import OutcomeSample, RequestSample
from service.observability.comparison import wilson_interval
from service.routing import RouteGuard
from service.routing.rollout import breach, judge


def sample(status: int = 200, duration: float = 1.0, structured: str | None = None) -> RequestSample:
    return RequestSample(time.time(), "base", "one", "ab", "one", "chat", status, duration, 0.1, 10, 5, structured,
                         route_version=1)


def decision(flagged: bool) -> OutcomeSample:
    return OutcomeSample(time.time(), "ab", "one", False, (("category", "bug"),), needs_review=flagged, route_version=1)


def test_every_threshold_is_stated_with_its_interval() -> None:
    guard = RouteGuard(max_error_rate=0.2, max_invalid_rate=0.5, max_p95_latency_ratio=3, max_needs_review_rate=0.5,
                       min_samples=4)
    variant = [sample(500)] + [sample(200, 2.0, "valid")] * 3 + [sample(200, 2.0, "invalid")]
    control = [sample(200, 1.0)] * 4
    reason, figures = judge(guard, variant, control, [decision(True), *[decision(False)] * 3])
    assert reason is None
    low, high = wilson_interval(1, 5)
    assert figures == [
        f"error_rate 0.200 <= 0.2 over 5 requests (95% interval {low:.3f}-{high:.3f})",
        "invalid_rate 0.250 <= 0.5 over 4 structured replies (95% interval 0.046-0.699)",
        "p95_latency_ratio 2.00 <= 3 vs the control (p95 2.000 s over 4 requests, the control's 1.000 s over 4)",
        "needs_review_rate 0.250 <= 0.5 over 4 decisions (95% interval 0.046-0.699)",
    ]


def test_the_first_breach_is_the_reason_and_too_few_samples_judge_nothing() -> None:
    guard = RouteGuard(max_error_rate=0.1, max_p95_latency_ratio=1.5, min_samples=4)
    slow_and_failing = [sample(500, 5.0)] + [sample(200, 5.0)] * 4
    reason, figures = judge(guard, slow_and_failing, [sample(200, 1.0)] * 4)
    assert reason == figures[0] and reason.startswith("error_rate 0.200 > 0.1 over 5 requests (95% interval")
    assert figures[1].startswith("p95_latency_ratio 5.00 > 1.5 vs the control (p95 5.000 s over 4 requests")
    assert judge(guard, slow_and_failing[:3], []) == (None, [])
    assert breach(guard, slow_and_failing, []) == reason  # latency needs the control's samples too
