"""Routes: validation, persistence shared by replicas, the 409 on adapters in use, rollbacks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from service.errors import ConflictError, InvalidRequestError, NotFoundError
from service.observability import Metrics, OutcomeSample, RequestSample, RequestStats
from service.routing import MAX_VARIANTS, RolloutGuard, RouteGuard, RouteRegistry, RouteSpec
from tests.support.registry_harness import BASE_MODEL_NAME, adapters_and_routes

pytestmark = pytest.mark.anyio



def spec(*variants: tuple[str, float], **extra: object) -> RouteSpec:
    return RouteSpec.model_validate({"variants": [{"target": t, "weight": w} for t, w in variants], **extra})


@pytest.fixture()
async def world(tmp_path: Path, tiny_model_dir: Path, adapter_root: Path):
    return await adapters_and_routes(tmp_path / "store", tiny_model_dir, adapter_root)


@pytest.mark.parametrize("body, message", [
    ({"variants": []}, "at least 1"),
    ({"variants": [{"target": "a", "weight": -1}]}, "greater than or equal to 0"),
    ({"variants": [{"target": "a", "weight": 0}]}, "positive sum"),
    ({"variants": [{"target": "a", "weight": 1}, {"target": "a", "weight": 1}]}, "only one variant"),
    ({"variants": [{"target": f"t{i}", "weight": 1} for i in range(MAX_VARIANTS + 1)]}, f"at most {MAX_VARIANTS}"),
    ({"variants": [{"target": "a", "weight": 1}], "shadow": {"target": "b", "fraction": 1.5}}, "less than or equal to 1"),
    ({"variants": [{"target": "a", "weight": 1}], "colour": "red"}, "Extra inputs"),
])
def test_spec_validation(body: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RouteSpec.model_validate(body)


async def test_put_validates_names_and_targets(world) -> None:
    _, routes = world
    cases = [
        ("Bad Name", spec((BASE_MODEL_NAME, 1)), "name", "invalid_route_name"),
        (BASE_MODEL_NAME.lower(), spec((BASE_MODEL_NAME, 1)), "name", "invalid_route_name"),
        ("r", spec((BASE_MODEL_NAME, 1), ("missing", 1)), "variants.1.target", "invalid_route_target"),
        ("r", spec((BASE_MODEL_NAME, 1), shadow={"target": "missing", "fraction": 0.5}), "shadow.target",
         "invalid_route_target"),
    ]
    for name, body, param, code in cases:
        with pytest.raises(InvalidRequestError) as caught:
            await routes.put(name, body)
        assert (caught.value.param, caught.value.code) == (param, code), name
    with pytest.raises(ConflictError) as conflict:  # an adapter's name: a 409, as for an adapter taking a route's
        await routes.put("one", spec((BASE_MODEL_NAME, 1)))
    assert (conflict.value.status, conflict.value.param, conflict.value.code) == (409, "name", "name_taken")
    await routes.put("r", spec((BASE_MODEL_NAME, 1)))
    with pytest.raises(InvalidRequestError, match="is a route"):
        await routes.put("r2", spec(("r", 1)))


async def test_routes_persist_audit_and_reach_other_replicas(world, tmp_path: Path) -> None:
    adapters, routes = world
    route = await routes.put("triage", spec((BASE_MODEL_NAME, 90), ("one", 10)))
    assert route.version == 1 and (await routes.put("triage", spec((BASE_MODEL_NAME, 80), ("one", 20)))).version == 2
    stored = json.loads((tmp_path / "store" / "routes.json").read_text())
    assert stored["routes"]["triage"]["spec"]["variants"][1] == {"target": "one", "weight": 20.0}
    audit = [json.loads(line) for line in (tmp_path / "store" / "audit.log").read_text().splitlines()]
    assert [(e["action"], e.get("route")) for e in audit if e["action"].startswith("route")] == [
        ("route_set", "triage"), ("route_set", "triage")]

    other = RouteRegistry(adapters.store, BASE_MODEL_NAME, Metrics(CollectorRegistry()))
    await other.start()
    assert other.route("triage").spec.variants[1].weight == 20
    await routes.delete("triage")
    time.sleep(0.01)
    await other.refresh()
    assert other.get("triage") is None
    with pytest.raises(NotFoundError):
        await routes.delete("triage")


async def test_an_adapter_a_route_uses_cannot_be_removed(world) -> None:
    adapters, routes = world
    await routes.put("ab", spec((BASE_MODEL_NAME, 1), ("one", 1)))
    with pytest.raises(ConflictError, match="route\\(s\\) ab"):
        await adapters.remove("one")
    assert adapters.handle("one") is not None
    await routes.delete("ab")
    await adapters.remove("one")
    assert adapters.handle("one") is None


async def test_rollback_zeroes_a_variant_never_the_control(world) -> None:
    _, routes = world
    await routes.put("ab", spec((BASE_MODEL_NAME, 50), ("one", 50)))
    assert not await routes.rollback("ab", BASE_MODEL_NAME, "error_rate 1 > 0.1")
    assert await routes.rollback("ab", "one", "error_rate 0.5 > 0.1 over 20 requests")
    route = routes.route("ab")
    assert [v.weight for v in route.spec.variants] == [50, 0] and route.version == 2
    assert route.rollbacks == {"one": "error_rate 0.5 > 0.1 over 20 requests"}
    assert not await routes.rollback("ab", "one", "again")  # nothing left to do
    samples = routes.metrics.registry.get_sample_value(
        "loragate_route_rollbacks_total", {"route": "ab", "variant": "one", "reason": "error_rate"})
    assert samples == 1.0


async def test_rollback_of_the_only_live_variant_falls_back_to_the_control(world) -> None:
    _, routes = world
    await routes.put("ab", spec((BASE_MODEL_NAME, 0), ("one", 1)))
    assert await routes.rollback("ab", "one", "error_rate 1 > 0.1")
    assert [v.weight for v in routes.route("ab").spec.variants] == [1, 0]


def sample(variant: str, status: int = 200, duration: float = 1.0, structured: str | None = None,
           shadow: bool = False, version: int = 1) -> RequestSample:
    return RequestSample(finished_at=time.time(), base_model=BASE_MODEL_NAME, model=variant, route="ab",
                         variant=variant, endpoint="chat", status=status, duration_s=duration, ttft_s=0.1,
                         prompt_tokens=10, completion_tokens=5, structured_output=structured, shadow=shadow,
                         route_version=version)


async def test_guard_rolls_back_a_failing_variant_from_primary_traffic_only(world) -> None:
    _, routes = world
    guard = {"max_error_rate": 0.2, "max_invalid_rate": 0.2, "max_p95_latency_ratio": 3, "min_samples": 10}
    await routes.put("ab", spec((BASE_MODEL_NAME, 50), ("one", 50), shadow={"target": "one", "fraction": 1.0},
                                guard=guard))
    stats = RequestStats(window_s=600)
    rollout = RolloutGuard(routes, stats)
    for _ in range(10):
        stats.observe(sample(BASE_MODEL_NAME))
        stats.observe(sample("one", status=502, shadow=True))  # shadows never count
        stats.observe(sample("one", status=200 if _ < 9 else 502))
    assert await rollout.check(routes.route("ab")) == []  # 10% errors: within the guard
    for _ in range(5):
        stats.observe(sample("one", status=502))
    assert await rollout.check(routes.route("ab")) == ["one"]
    assert routes.route("ab").rollbacks["one"].startswith("error_rate 0.400 > 0.2")


@pytest.mark.parametrize("variant_samples, reason", [
    ([{"structured": "valid"}] * 7 + [{"structured": "truncated"}] * 3, "invalid_rate"),
    ([{"duration": 9.0}] * 10, "p95_latency_ratio"),
])
async def test_guard_judges_validity_and_latency(world, variant_samples: list[dict], reason: str) -> None:
    _, routes = world
    await routes.put("ab", spec((BASE_MODEL_NAME, 50), ("one", 50), guard=RouteGuard(
        max_invalid_rate=0.2, max_p95_latency_ratio=3, min_samples=10)))
    stats = RequestStats(window_s=600)
    for options in variant_samples:
        stats.observe(sample(BASE_MODEL_NAME, structured="valid"))
        stats.observe(sample("one", **options))
    assert await RolloutGuard(routes, stats).check(routes.route("ab")) == ["one"]
    assert routes.route("ab").rollbacks["one"].startswith(reason)


async def test_guard_judges_the_share_of_triage_decisions_flagged_for_review(world) -> None:
    _, routes = world
    await routes.put("ab", spec((BASE_MODEL_NAME, 50), ("one", 50), guard=RouteGuard(
        max_needs_review_rate=0.3, min_samples=10)))
    stats = RequestStats(window_s=600)
    rollout = RolloutGuard(routes, stats)

    def decision(variant: str, flagged: bool, shadow: bool = False) -> OutcomeSample:
        return OutcomeSample(finished_at=time.time(), route="ab", variant=variant, shadow=shadow,
                             labels=(("category", "billing"), ("priority", "low")), needs_review=flagged,
                             confidence=(("category", 0.5 if flagged else 0.95),), route_version=1)

    for i in range(10):
        stats.observe(sample("one"))
        stats.observe_outcome(decision("one", flagged=i < 3))  # 30%: within the guard
        stats.observe_outcome(decision("one", flagged=True, shadow=True))  # shadows never count
    assert await rollout.check(routes.route("ab")) == []
    for _ in range(3):
        stats.observe_outcome(decision("one", flagged=True))
    assert await rollout.check(routes.route("ab")) == ["one"]
    assert routes.route("ab").rollbacks["one"].startswith("needs_review_rate 0.462 > 0.3 over 13 decisions")
    figures = stats.report().variants
    assert figures == [] or figures[0].decisions is not None
