"""Samples carry the route version: the guard and the report judge the current version only, and
the guard's error rate counts server errors (5xx), never the client's (4xx)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from service.observability import Metrics, OutcomeSample, RequestSample, RequestStats
from service.observability.route_report import build_route_report
from service.routing import ModelRouter, RolloutGuard, RouteGuard, RouteRegistry, RouteSpec
from service.routing.rollout import breach
from tests.support.registry_harness import BASE_MODEL_NAME, make_registry

pytestmark = pytest.mark.anyio
VARIANTS = [{"target": BASE_MODEL_NAME, "weight": 50}, {"target": "one", "weight": 50}]



@pytest.fixture()
async def world(tmp_path: Path, tiny_model_dir: Path, adapter_root: Path) -> tuple[RouteRegistry, ModelRouter]:
    adapters, _ = make_registry(tmp_path / "store", tiny_model_dir, [adapter_root])
    await adapters.start()
    await adapters.register_path("one", str(adapter_root / "one"))
    registry = RouteRegistry(adapters.store, BASE_MODEL_NAME, Metrics(CollectorRegistry()))
    await registry.start()
    return registry, ModelRouter(BASE_MODEL_NAME, adapters=adapters, routes=registry)


@pytest.fixture()
def routes(world: tuple[RouteRegistry, ModelRouter]) -> RouteRegistry:
    return world[0]


def sample(variant: str, version: int, status: int = 200, shadow: bool = False) -> RequestSample:
    return RequestSample(finished_at=time.time(), base_model=BASE_MODEL_NAME, model=variant, route="ab",
                         variant=variant, endpoint="chat", status=status, duration_s=1.0, ttft_s=0.1,
                         prompt_tokens=10, completion_tokens=5, structured_output=None, shadow=shadow,
                         route_version=version)


async def test_targets_carry_the_version_that_routed_them(world: tuple[RouteRegistry, ModelRouter]) -> None:
    routes, router = world
    await routes.put("ab", RouteSpec.model_validate({"variants": VARIANTS}))
    assert router.resolve("ab", "key").route_version == 1
    await routes.patch("ab", {"variants": [{"target": "one", "weight": 1}],
                              "shadow": {"target": BASE_MODEL_NAME, "fraction": 1.0}})
    target = router.resolve("ab", "key")
    assert (target.variant, target.route_version) == ("one", 2)
    assert router.shadow(target, "key").route_version == 2
    assert router.resolve("one").route_version == 0  # direct: no route


async def test_a_variant_reenabled_after_a_rollback_is_judged_on_its_new_samples_only(routes: RouteRegistry) -> None:
    guard = {"max_error_rate": 0.1, "min_samples": 10}
    await routes.put("ab", RouteSpec.model_validate({"variants": VARIANTS, "guard": guard}))
    stats = RequestStats(window_s=600)
    rollout = RolloutGuard(routes, stats)
    for _ in range(10):
        stats.observe(sample("one", version=1, status=500))
    assert await rollout.check(routes.route("ab")) == ["one"]
    assert routes.route("ab").version == 2
    # the reason states the figure, its interval and what it was judged on
    assert routes.route("ab").rollbacks["one"] == ("error_rate 1.000 > 0.1 over 10 requests (95% interval "
                                                   "0.722-1.000); version 1, last 300 s")

    # fixed and re-enabled: the failures of version 1 are still in the window but no longer judged
    route = await routes.patch("ab", {"variants": VARIANTS})
    assert route.version == 3 and [v.weight for v in route.spec.variants] == [50, 50]
    for _ in range(10):
        stats.observe(sample("one", version=3))
    assert await rollout.check(routes.route("ab")) == []
    assert [v.weight for v in routes.route("ab").spec.variants] == [50, 50]
    # and the current version's own failures still roll it back
    for _ in range(10):
        stats.observe(sample("one", version=3, status=503))
    assert await rollout.check(routes.route("ab")) == ["one"]


def test_route_window_and_the_report_keep_one_version() -> None:
    stats = RequestStats(window_s=600)
    for version, status in ((1, 500), (2, 200)):
        for variant in (BASE_MODEL_NAME, "one"):
            stats.observe(sample(variant, version=version, status=status))
            stats.observe_outcome(OutcomeSample(time.time(), "ab", variant, False, (("category", "bug"),),
                                                route_version=version))
    samples, outcomes = stats.route_window("ab", version=2)
    assert {s.route_version for s in samples} == {2} and len(samples) == 2 and len(outcomes) == 2
    assert len(stats.route_window("ab")[0]) == 4  # without a version: all of them

    all_samples, all_outcomes = stats.route_window("ab")
    report = build_route_report("ab", all_samples, all_outcomes, 600, [BASE_MODEL_NAME, "one"], version=2,
                                source=stats.description)
    assert report.version == 2 and report.source == "in-process samples of this replica"
    assert [(v.variant, v.requests, v.errors, v.outcomes) for v in report.variants] == [
        (BASE_MODEL_NAME, 1, 0, 1), ("one", 1, 0, 1)]


def test_the_error_rate_counts_server_errors_not_client_errors() -> None:
    guard = RouteGuard(max_error_rate=0.1, min_samples=10)
    client_errors = [sample("one", 1, status=status) for status in (400, 404, 413, 422, 429) * 2]
    assert breach(guard, client_errors, []) is None  # the client's fault: never the variant's
    server_errors = [sample("one", 1, status=status) for status in (500, 502, 503, 504, 500)] + \
        [sample("one", 1)] * 5
    assert breach(guard, server_errors, []) == "error_rate 0.500 > 0.1 over 10 requests (95% interval 0.237-0.763)"
    # and the documentation says so (the API description and `loragate routes set --help`)
    described = RouteGuard.model_fields["max_error_rate"].description or ""
    assert ">= 500" in described and ">= 400" not in described
