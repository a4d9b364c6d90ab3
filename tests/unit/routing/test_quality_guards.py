"""Quality guards: the review rate (an absolute ceiling, the control's rate stated beside it) and a
shadow target's agreement with the control's decision on the same request, per label, each
decision with its figures and 95% interval; routes whose agreement could never be judged are
refused naming the field; a rollout step never advances on agreement it has not judged."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from service.errors import InvalidRequestError
from service.observability import Metrics, OutcomeSample, RequestSample, RequestStats
from service.observability.comparison import wilson_interval
from service.observability.route_report import build_route_report
from service.observability.stats import agreement, agreement_pairs
from service.routing import RolloutGuard, RouteGuard, RouteRegistry, RouteSpec
from service.routing.rollout import judge
from tests.support.registry_harness import BASE_MODEL_NAME, make_registry

CONTROL = BASE_MODEL_NAME


def request(variant: str, version: int = 1, route: str = "ab") -> RequestSample:
    return RequestSample(time.time(), CONTROL, variant, route, variant, "triage", 200, 0.5, 0.1, 10, 5, "valid",
                         route_version=version)


def shadow(category: str, control_category: str, *, priority: str = "low", control_priority: str = "low",
           variant: str = "one", answered_by: str = CONTROL, version: int = 1) -> OutcomeSample:
    """`variant`'s decision on a mirrored request whose client reply `answered_by` decided."""
    return OutcomeSample(time.time(), "ab", variant, True, (("category", category), ("priority", priority)),
                         route_version=version, paired_variant=answered_by,
                         paired_labels=(("category", control_category), ("priority", control_priority)))


def decision(variant: str, flagged: bool, version: int = 1) -> OutcomeSample:
    return OutcomeSample(time.time(), "ab", variant, False, (("category", "bug"),), needs_review=flagged,
                         route_version=version)


def test_agreement_counts_only_the_variants_shadow_decisions_on_the_controls_requests() -> None:
    pairs = [shadow("bug", "bug"), shadow("bug", "billing", priority="high"),
             shadow("bug", "bug", answered_by="one"),  # the candidate answered: not a comparison with the control
             shadow("bug", "bug", variant="two"),
             OutcomeSample(time.time(), "ab", "one", True, (("category", "bug"),), paired_variant=CONTROL),  # no pair
             OutcomeSample(time.time(), "ab", "one", False, (("category", "bug"),), paired_variant=CONTROL,
                           paired_labels=(("category", "bug"),))]  # primary traffic
    chosen = agreement_pairs(pairs, "one", CONTROL)
    assert chosen == pairs[:2]
    assert agreement(chosen) == {"category": (1, 2), "priority": (1, 2)}


def test_low_agreement_breaks_the_guard_with_its_figure_and_interval() -> None:
    guard = RouteGuard(min_shadow_agreement=0.8, min_samples=10)
    pairs = [shadow("bug", "bug")] * 6 + [shadow("billing", "bug", priority="high")] * 4
    reason, figures = judge(guard, [request("one")] * 10, [], pairs=pairs)
    low, high = wilson_interval(6, 10)
    assert reason == f"category_agreement 0.600 < 0.8 with the control over 10 shadow pairs (95% interval " \
                     f"{low:.3f}-{high:.3f})"
    assert figures[1].startswith("priority_agreement 0.600 < 0.8 with the control over 10 shadow pairs")
    held, figures = judge(guard, [request("one")] * 10, [], pairs=[shadow("bug", "bug")] * 10)
    assert held is None and figures[0].startswith("category_agreement 1.000 >= 0.8 with the control over 10")
    assert judge(guard, [request("one")] * 10, [], pairs=pairs[:9]) == (None, [])  # too few pairs: not judged


def test_the_review_rate_is_an_absolute_ceiling_stated_beside_the_controls_rate() -> None:
    guard = RouteGuard(max_needs_review_rate=0.3, min_samples=4)
    mine = [decision("one", True)] + [decision("one", False)] * 3
    control = [decision(CONTROL, False)] * 7 + [decision(CONTROL, True)]
    reason, figures = judge(guard, [request("one")] * 4, [], mine, control_decisions=control)
    assert reason is None  # 0.25 <= 0.3, though twice the control's 0.125
    assert figures == ["needs_review_rate 0.250 <= 0.3 over 4 decisions (95% interval 0.046-0.699); "
                       "the control's 0.125 over 8"]


def test_the_report_states_each_shadow_targets_agreement_with_its_interval() -> None:
    outcomes = [shadow("bug", "bug")] * 3 + [shadow("billing", "bug")]
    report = build_route_report("ab", [request(CONTROL)] * 4, outcomes, 300, [CONTROL], version=1)
    category = report.shadows[0].agreement["category"]
    assert (category.pairs, category.agreed, category.rate) == (4, 3, 0.75)
    assert (category.low, category.high) == pytest.approx(wilson_interval(3, 4))
    assert report.shadows[0].agreement["priority"].rate == 1.0


@pytest.fixture()
async def routes(tmp_path: Path, tiny_model_dir: Path, adapter_root: Path) -> RouteRegistry:
    adapters, _ = make_registry(tmp_path / "store", tiny_model_dir, [adapter_root])
    await adapters.start()
    for name in ("one", "two"):
        await adapters.register_path(name, str(adapter_root / name))
    registry = RouteRegistry(adapters.store, BASE_MODEL_NAME, Metrics(CollectorRegistry()))
    adapters.used_by = registry.routes_using
    await registry.start()
    return registry


def spec(**extra: object) -> RouteSpec:
    return RouteSpec.model_validate({"variants": [{"target": CONTROL, "weight": 1}], **extra})


AGREEMENT = {"min_shadow_agreement": 0.8, "min_samples": 5}
ROLLOUT = {"candidate": "one", "steps": [5, 50, 100], "min_samples": 5, "min_interval_s": 0}


@pytest.mark.anyio
async def test_agreement_needs_a_shadow_on_the_variant_judged(routes: RouteRegistry) -> None:
    two_variants = [{"target": CONTROL, "weight": 9}, {"target": "one", "weight": 1}]
    refused = [
        spec(variants=two_variants, guard=AGREEMENT),  # no shadow
        spec(variants=two_variants, guard=AGREEMENT, shadow={"target": "two", "fraction": 0.5}),  # not a variant
        spec(guard=AGREEMENT, rollout=ROLLOUT, shadow={"target": "two", "fraction": 0.5}),  # not the candidate
    ]
    for body in refused:
        with pytest.raises(InvalidRequestError) as caught:
            await routes.put("r", body)
        assert caught.value.param == "guard.min_shadow_agreement", body
    await routes.put("r", spec(variants=two_variants, guard=AGREEMENT, shadow={"target": "one", "fraction": 0.5}))
    await routes.put("s", spec(guard=AGREEMENT, rollout=ROLLOUT, shadow={"target": "one", "fraction": 1.0}))


@pytest.mark.anyio
async def test_a_step_waits_for_judged_agreement_then_a_disagreeing_candidate_is_rolled_back(
        routes: RouteRegistry) -> None:
    route = await routes.put("ab", spec(guard=AGREEMENT, rollout=ROLLOUT, shadow={"target": "one", "fraction": 1.0}))
    stats = RequestStats(window_s=600)
    guard = RolloutGuard(routes, stats)
    for _ in range(10):
        stats.observe(request("one", route.version))
    await guard.check(routes.route("ab"))
    assert routes.route("ab").rollout.step == 5  # enough requests, but no agreement judged yet
    for _ in range(5):
        stats.observe_outcome(shadow("bug", "bug", version=route.version))
    await guard.check(routes.route("ab"))
    advanced = routes.route("ab")
    assert advanced.rollout.step == 50
    assert "category_agreement 1.000 >= 0.8" in advanced.rollout.history[-1].reason
    for _ in range(10):
        stats.observe(request("one", advanced.version))
    for _ in range(5):
        stats.observe_outcome(shadow("billing", "bug", version=advanced.version))
    assert await guard.check(routes.route("ab")) == ["one"]
    stopped = routes.route("ab")
    assert stopped.rollout.status == "rolled_back"
    assert stopped.rollout.reason.startswith("category_agreement 0.000 < 0.8 with the control over 5 shadow pairs")
    assert "5 shadow pairs" in stopped.rollout.reason.split(";")[-1]
