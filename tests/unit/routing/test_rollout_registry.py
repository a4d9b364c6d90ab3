"""Rollouts in the route registry and the guard loop: validation naming the field, stored state
that survives a restart, steps advanced and rolled back by the guard, pause/resume/abort, one
replica acting per step, audit and metrics."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from service.errors import ConflictError, InvalidRequestError, NotFoundError
from service.observability import Metrics, RequestSample, RequestStats
from service.routing import RolloutGuard, RouteRegistry, RouteSpec
from service.routing import progression
from service.routing.progression import RolloutSpec
from tests.support.registry_harness import BASE_MODEL_NAME, adapters_and_routes

pytestmark = pytest.mark.anyio
GUARD = {"max_error_rate": 0.1, "min_samples": 5}
ROLLOUT = {"candidate": "one", "steps": [5, 25, 50, 100], "min_samples": 10, "min_interval_s": 0}



@pytest.fixture()
async def world(tmp_path: Path, tiny_model_dir: Path, adapter_root: Path):
    return await adapters_and_routes(tmp_path / "store", tiny_model_dir, adapter_root, ("one", "two"))


@pytest.fixture()
def routes(world) -> RouteRegistry:
    return world[1]


def spec(variants: list[tuple[str, float]], **extra: object) -> RouteSpec:
    return RouteSpec.model_validate({"variants": [{"target": t, "weight": w} for t, w in variants], **extra})


def rollout_spec(**changes: object) -> RouteSpec:
    return spec([(BASE_MODEL_NAME, 1)], guard=GUARD, rollout=ROLLOUT | changes)


def observe(stats: RequestStats, route: str, variant: str, version: int, n: int, status: int = 200) -> None:
    for _ in range(n):
        stats.observe(RequestSample(time.time(), BASE_MODEL_NAME, variant, route, variant, "chat", status, 0.5, 0.1,
                                    10, 5, None, route_version=version))


def weights(routes: RouteRegistry, name: str) -> list[tuple[str, float]]:
    return [(v.target, v.weight) for v in routes.route(name).spec.variants]


def metric(routes: RouteRegistry, name: str, labels: dict[str, str]) -> float | None:
    return routes.metrics.registry.get_sample_value(name, labels)


async def test_bad_rollouts_are_refused_naming_the_field(routes: RouteRegistry) -> None:
    cases = [
        (rollout_spec(candidate="missing"), "rollout.candidate", "invalid_route_target"),
        (rollout_spec(candidate=BASE_MODEL_NAME), "rollout.candidate", "invalid_rollout"),  # the control
        (spec([(BASE_MODEL_NAME, 1), ("two", 1)], guard=GUARD, rollout=ROLLOUT), "variants", "invalid_rollout"),
        (spec([(BASE_MODEL_NAME, 1), ("one", 1), ("two", 0)], guard=GUARD, rollout=ROLLOUT), "variants",
         "invalid_rollout"),
        (spec([(BASE_MODEL_NAME, 1)], rollout=ROLLOUT), "guard", "invalid_rollout"),  # nothing could hold it
    ]
    for body, param, code in cases:
        with pytest.raises(InvalidRequestError) as caught:
            await routes.put("r", body)
        assert (caught.value.param, caught.value.code) == (param, code), body
    await routes.put("r", rollout_spec())
    with pytest.raises(InvalidRequestError) as caught:  # the guard cannot be removed while it rolls out
        await routes.patch("r", {"guard": None})
    assert caught.value.param == "guard"
    with pytest.raises(InvalidRequestError) as caught:
        await routes.patch("r", {"rollout": {"steps": [50, 25, 100]}})
    assert caught.value.param == "rollout.steps"


async def test_a_rollout_sets_the_weights_and_is_stored(world, tmp_path: Path) -> None:
    adapters, routes = world
    route = await routes.put("r", rollout_spec(), caller="ops")
    assert weights(routes, "r") == [(BASE_MODEL_NAME, 95.0), ("one", 5.0)] and route.version == 1
    assert route.rollout is not None and (route.rollout.status, route.rollout.step) == ("progressing", 5)
    # the candidate may be named as the second variant too: its weight is the rollout's anyway
    again = await routes.put("r", spec([(BASE_MODEL_NAME, 1), ("one", 99)], guard=GUARD, rollout=ROLLOUT))
    assert weights(routes, "r")[1] == ("one", 5.0) and again.version == 1
    # a change elsewhere keeps the state; the stored file has it, and a new process reads it
    await routes.patch("r", {"guard": {"min_samples": 6}})
    assert routes.route("r").rollout == route.rollout
    stored = json.loads((tmp_path / "store" / "routes.json").read_text())
    assert stored["routes"]["r"]["rollout"]["status"] == "progressing"
    restarted = RouteRegistry(adapters.store, BASE_MODEL_NAME, Metrics(CollectorRegistry()))
    await restarted.start()
    assert restarted.route("r").rollout == route.rollout
    assert metric(routes, "loragate_route_rollout_step", {"route": "r"}) == 5
    assert metric(routes, "loragate_route_rollout_transitions_total", {"route": "r", "transition": "started"}) == 1
    # removing the rollout freezes the weights where they are
    frozen = await routes.patch("r", {"rollout": None})
    assert frozen.rollout is None and weights(routes, "r")[1] == ("one", 5.0)
    assert metric(routes, "loragate_route_rollout_step", {"route": "r"}) is None


async def test_the_guard_loop_advances_a_healthy_candidate_to_completion(routes: RouteRegistry) -> None:
    await routes.put("r", rollout_spec())
    stats = RequestStats(window_s=600)
    guard = RolloutGuard(routes, stats)
    seen = []
    for _ in range(4):
        route = routes.route("r")
        observe(stats, "r", "one", route.version, 9)
        observe(stats, "r", BASE_MODEL_NAME, route.version, 20)
        await guard.check(route)
        assert routes.route("r").version == route.version  # 9 < min_samples: the step holds
        observe(stats, "r", "one", route.version, 1)
        assert await guard.check(routes.route("r")) == []
        seen.append((routes.route("r").version, weights(routes, "r")[1][1], routes.route("r").rollout.status))
        if seen[-1][2] == "completed":
            break
    assert seen == [(2, 25.0, "progressing"), (3, 50.0, "progressing"), (4, 100.0, "completed")]
    assert weights(routes, "r") == [(BASE_MODEL_NAME, 0.0), ("one", 100.0)]
    assert metric(routes, "loragate_route_rollout_step", {"route": "r"}) == 100
    assert metric(routes, "loragate_route_rollout_transitions_total", {"route": "r", "transition": "advanced"}) == 2
    assert metric(routes, "loragate_route_rollout_transitions_total", {"route": "r", "transition": "completed"}) == 1
    entries = [json.loads(line) for line in routes.adapter_store.audit_path.read_text().splitlines()]
    held = "10 candidate requests: error_rate 0.000 <= 0.1 over 10 requests (95% interval 0.000-0.278))"
    assert [e["source"] for e in entries if e["action"] == "route_rollout"] == [
        "started: one at 5%, steps [5, 25, 50, 100]", f"advanced: one at 25% (held at step 5% (version 1), {held}",
        f"advanced: one at 50% (held at step 25% (version 2), {held}",
        f"completed: one at 100% (held at step 50% (version 3), {held}"]
    # each decision states the figures it was made on
    history = routes.route("r").rollout.history
    assert history[1].reason == f"held at step 5% (version 1), {held[:-1]}"


async def test_the_interval_holds_a_step(routes: RouteRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    await routes.put("r", rollout_spec(min_interval_s=3600))
    stats = RequestStats(window_s=600)
    observe(stats, "r", "one", 1, 50)
    await RolloutGuard(routes, stats).check(routes.route("r"))
    assert routes.route("r").rollout.step == 5 and routes.route("r").version == 1
    an_hour_later = progression.utcnow() + timedelta(seconds=3600)
    monkeypatch.setattr(progression, "utcnow", lambda: an_hour_later)
    await RolloutGuard(routes, stats).check(routes.route("r"))
    assert routes.route("r").rollout.step == 25 and routes.route("r").rollout.advanced_at == an_hour_later


async def test_a_breach_rolls_back_and_stays_rolled_back_across_a_restart(world) -> None:
    adapters, routes = world
    await routes.put("r", rollout_spec())
    stats = RequestStats(window_s=600)
    guard = RolloutGuard(routes, stats)
    observe(stats, "r", "one", 1, 10)
    await guard.check(routes.route("r"))  # 5 -> 25
    observe(stats, "r", "one", 2, 4)
    observe(stats, "r", "one", 2, 2, status=500)  # 2 of 6: above 0.1
    assert await guard.check(routes.route("r")) == ["one"]
    route = routes.route("r")
    assert weights(routes, "r") == [(BASE_MODEL_NAME, 100.0), ("one", 0.0)] and route.version == 3
    assert route.rollout.status == "rolled_back"
    assert route.rollout.reason == ("error_rate 0.333 > 0.1 over 6 requests (95% interval 0.097-0.700); "
                                    "step 25% (version 2), 6 candidate requests")
    assert route.rollbacks["one"] == route.rollout.reason
    labels = {"route": "r", "variant": "one", "reason": "error_rate"}
    assert metric(routes, "loragate_route_rollbacks_total", labels) == 1
    assert metric(routes, "loragate_route_rollout_transitions_total", {"route": "r", "transition": "rolled_back"}) == 1
    assert metric(routes, "loragate_route_rollout_step", {"route": "r"}) == 0
    # good traffic afterwards changes nothing, here or in a restarted process
    observe(stats, "r", "one", 3, 100)
    await guard.check(routes.route("r"))
    restarted = RouteRegistry(adapters.store, BASE_MODEL_NAME, Metrics(CollectorRegistry()))
    await restarted.start()
    await RolloutGuard(restarted, stats).check(restarted.route("r"))
    assert restarted.route("r").rollout.status == "rolled_back" and restarted.route("r").version == 3
    # the same rollout set again keeps its state; starting it again begins at the first step
    assert (await routes.patch("r", {"rollout": ROLLOUT})).rollout.status == "rolled_back"
    fresh = await routes.start_rollout("r", RolloutSpec.model_validate(ROLLOUT), caller="ops")
    assert (fresh.rollout.status, fresh.rollout.step, fresh.version) == ("progressing", 5, 4)
    assert "one" not in fresh.rollbacks


async def test_pause_resume_abort(routes: RouteRegistry) -> None:
    await routes.put("r", rollout_spec())
    stats = RequestStats(window_s=600)
    paused = await routes.rollout_action("r", "pause", caller="ops")
    assert paused.rollout.status == "paused" and paused.version == 1
    observe(stats, "r", "one", 1, 50)
    await RolloutGuard(routes, stats).check(routes.route("r"))
    assert routes.route("r").rollout.step == 5  # paused: holds
    with pytest.raises(ConflictError) as caught:
        await routes.rollout_action("r", "pause")
    assert caught.value.code == "rollout_state" and "paused" in caught.value.message
    assert (await routes.rollout_action("r", "resume", caller="ops")).rollout.status == "progressing"
    aborted = await routes.rollout_action("r", "abort", caller="ops")
    assert (aborted.rollout.status, aborted.rollout.reason) == ("rolled_back", "aborted by ops")
    assert aborted.version == 2 and weights(routes, "r") == [(BASE_MODEL_NAME, 100.0), ("one", 0.0)]
    assert aborted.rollbacks == {"one": "aborted by ops"}
    for action in ("pause", "resume", "abort"):
        with pytest.raises(ConflictError):
            await routes.rollout_action("r", action)  # type: ignore[arg-type]
    history = [(e.transition, e.caller) for e in aborted.rollout.history]
    assert history == [("started", None), ("paused", "ops"), ("resumed", "ops"), ("aborted", "ops")]
    entries = [json.loads(line) for line in routes.adapter_store.audit_path.read_text().splitlines()]
    assert [(e["source"].split(":")[0], e.get("caller")) for e in entries if e["action"] == "route_rollout"][1:] == [
        ("paused", "ops"), ("resumed", "ops"), ("aborted", "ops")]
    await routes.put("plain", spec([(BASE_MODEL_NAME, 1)]))
    with pytest.raises(NotFoundError) as missing:
        await routes.rollout_action("plain", "pause")
    assert missing.value.code == "rollout_not_found"
    with pytest.raises(NotFoundError):
        await routes.rollout_action("nope", "pause")


async def test_start_on_an_existing_route(routes: RouteRegistry) -> None:
    await routes.put("r", spec([(BASE_MODEL_NAME, 90), ("two", 10)], guard=GUARD))
    with pytest.raises(InvalidRequestError) as caught:  # two still gets traffic
        await routes.start_rollout("r", RolloutSpec.model_validate(ROLLOUT))
    assert caught.value.param == "variants"
    await routes.patch("r", {"variants": [{"target": BASE_MODEL_NAME, "weight": 1}, {"target": "two", "weight": 0}]})
    route = await routes.start_rollout("r", RolloutSpec.model_validate(ROLLOUT))
    assert weights(routes, "r") == [(BASE_MODEL_NAME, 95.0), ("one", 5.0)]
    # completed (one step of 100: at once): the next rollout's control is the candidate serving everything
    route = await routes.start_rollout("r", RolloutSpec.model_validate(ROLLOUT | {"steps": [100]}))
    assert route.rollout.status == "completed" and weights(routes, "r") == [(BASE_MODEL_NAME, 0.0), ("one", 100.0)]
    route = await routes.start_rollout("r", RolloutSpec.model_validate(ROLLOUT | {"candidate": "two"}))
    assert weights(routes, "r") == [("one", 95.0), ("two", 5.0)] and route.rollout.status == "progressing"
    with pytest.raises(NotFoundError):
        await routes.start_rollout("nope", RolloutSpec.model_validate(ROLLOUT))


async def test_only_one_replica_acts_on_a_step(world) -> None:
    adapters, routes = world
    other = RouteRegistry(adapters.store, BASE_MODEL_NAME, Metrics(CollectorRegistry()))
    await routes.put("r", rollout_spec())
    await other.start()
    stats = RequestStats(window_s=600)
    observe(stats, "r", "one", 1, 10)
    stale = other.route("r")
    await RolloutGuard(routes, stats).check(routes.route("r"))
    assert routes.route("r").rollout.step == 25
    await RolloutGuard(other, stats).check(stale)  # decided on the version another replica already moved
    await other.refresh(force=True)
    assert other.route("r").rollout.step == 25 and other.route("r").version == 2
    assert len([e for e in other.route("r").rollout.history if e.transition == "advanced"]) == 1


async def test_after_completion_the_guard_still_rolls_the_candidate_back(routes: RouteRegistry) -> None:
    route = await routes.put("r", rollout_spec(steps=[100]))
    assert route.rollout.status == "completed" and weights(routes, "r") == [(BASE_MODEL_NAME, 0.0), ("one", 100.0)]
    stats = RequestStats(window_s=600)
    observe(stats, "r", "one", route.version, 5, status=500)
    assert await RolloutGuard(routes, stats).check(routes.route("r")) == ["one"]
    after = routes.route("r")
    assert weights(routes, "r") == [(BASE_MODEL_NAME, 100.0), ("one", 0.0)]
    assert after.rollout.status == "rolled_back" and after.rollout.reason.startswith("error_rate 1.000 > 0.1")
    assert [e.transition for e in after.rollout.history] == ["started", "rolled_back"]


async def test_a_tick_advances_a_step_without_new_requests(routes: RouteRegistry) -> None:
    await routes.put("r", rollout_spec())
    await routes.put("plain", spec([(BASE_MODEL_NAME, 1)], guard=GUARD))
    stats = RequestStats(window_s=600)
    observe(stats, "r", "one", 1, 10)  # the requests finished before the step was due
    guard = RolloutGuard(routes, stats)
    guard.tick()
    assert len(guard._tasks) == 1  # only the progressing rollout is checked
    await asyncio.gather(*guard._tasks)
    assert routes.route("r").rollout.step == 25
