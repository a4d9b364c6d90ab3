"""Changing routes: PATCH merges (RFC 7396), a guard needs a threshold, versions move with the
weights, the routes file never undoes stored state, adapters and routes never share a name."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from service.api.bootstrap import ConfigurationConflictError, check_configured_names, load_routes_file
from service.errors import ConflictError, InvalidRequestError, NotFoundError
from service.observability import Metrics
from service.routing import RouteRegistry, RoutesFile, RouteSpec
from service.routing.patch import merge_patch
from tests.support.registry_harness import BASE_MODEL_NAME, make_registry

pytestmark = pytest.mark.anyio
GUARD = {"max_error_rate": 0.05, "max_invalid_rate": 0.02, "max_p95_latency_ratio": 2.0, "min_samples": 20}



def spec(*variants: tuple[str, float], **extra: object) -> RouteSpec:
    return RouteSpec.model_validate({"variants": [{"target": t, "weight": w} for t, w in variants], **extra})


async def new_routes(adapters) -> RouteRegistry:  # noqa: ANN001
    routes = RouteRegistry(adapters.store, BASE_MODEL_NAME, Metrics(CollectorRegistry()))
    adapters.used_by, adapters.route_names = routes.routes_using, routes.stored_names
    return routes


@pytest.fixture()
async def world(tmp_path: Path, tiny_model_dir: Path, adapter_root: Path):
    adapters, _ = make_registry(tmp_path / "store", tiny_model_dir, [adapter_root])
    await adapters.start()
    await adapters.register_path("one", str(adapter_root / "one"))
    routes = await new_routes(adapters)
    await routes.start()
    return adapters, routes


# ------------------------------------------------------------------------------ merge patch
@pytest.mark.parametrize("target, patch, result", [  # RFC 7396 appendix A
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_merge_patch_follows_rfc_7396(target: object, patch: object, result: object) -> None:
    before = json.dumps(target)
    assert merge_patch(target, patch) == result
    assert json.dumps(target) == before  # the target is not modified


async def test_patch_merges_and_keeps_what_it_does_not_name(world) -> None:
    _, routes = world
    await routes.put("ab", spec((BASE_MODEL_NAME, 90), ("one", 10), guard=GUARD,
                                shadow={"target": "one", "fraction": 0.1}))
    route = await routes.patch("ab", {"guard": {"min_samples": 50}}, caller="ops")
    assert route.spec.guard.model_dump(exclude_none=True) == {**GUARD, "min_samples": 50, "window_s": 300.0}
    assert route.spec.shadow.fraction == 0.1 and [v.weight for v in route.spec.variants] == [90, 10]
    route = await routes.patch("ab", {"guard": {"max_p95_latency_ratio": None}, "shadow": {"fraction": 0.5}})
    assert route.spec.guard.max_p95_latency_ratio is None and route.spec.guard.max_error_rate == 0.05
    assert route.spec.shadow.target == "one" and route.spec.shadow.fraction == 0.5
    route = await routes.patch("ab", {"shadow": None, "guard": None})
    assert route.spec.shadow is None and route.spec.guard is None
    # what every replica reads: the stored route
    assert routes.store.load().routes["ab"].spec == route.spec
    audit = [json.loads(line) for line in routes.adapter_store.audit_path.read_text().splitlines()]
    assert [(e["action"], e.get("caller")) for e in audit if e.get("route") == "ab"][:2] == [
        ("route_set", None), ("route_patch", "ops")]


@pytest.mark.parametrize("patch, param", [
    ({"variants": [{"target": "one"}]}, "variants.0.weight"),
    ({"variants": [{"target": BASE_MODEL_NAME, "weight": 0}]}, "variants"),
    ({"shadow": {"fraction": 0.1}}, "shadow.target"),  # no shadow to merge into
    ({"guard": {"max_error_rate": 2}}, "guard.max_error_rate"),
    ({"colour": "red"}, "colour"),
    ({"variants": [{"target": "missing", "weight": 1}]}, "variants.0.target"),
    ({"guard": {"max_error_rate": None, "max_invalid_rate": None, "max_p95_latency_ratio": None}}, "guard"),
])
async def test_an_invalid_merged_route_is_a_400_naming_the_field(world, patch: dict, param: str) -> None:
    _, routes = world
    before = await routes.put("ab", spec((BASE_MODEL_NAME, 90), ("one", 10), guard=GUARD))
    with pytest.raises(InvalidRequestError) as caught:
        await routes.patch("ab", patch)
    assert (caught.value.status, caught.value.param) == (400, param)
    assert routes.route("ab") == before  # nothing changed


async def test_patching_a_missing_route_is_a_404(world) -> None:
    _, routes = world
    with pytest.raises(NotFoundError):
        await routes.patch("nope", {"guard": None})


@pytest.mark.parametrize("guard", [{}, {"min_samples": 50}, {"window_s": 60, "min_samples": 5}])
async def test_a_guard_without_any_threshold_is_a_400_naming_the_guard(world, guard: dict) -> None:
    _, routes = world
    with pytest.raises(InvalidRequestError) as caught:
        await routes.put("ab", spec((BASE_MODEL_NAME, 1), guard=guard))
    assert (caught.value.param, caught.value.code) == ("guard", "invalid_guard")
    await routes.put("ab", spec((BASE_MODEL_NAME, 1)))
    with pytest.raises(InvalidRequestError) as caught:
        await routes.patch("ab", {"guard": guard})  # onto a route without a guard: still no threshold
    assert caught.value.param == "guard"


# ------------------------------------------------------------------------------ versions
async def test_the_version_moves_with_the_variants_and_weights_only(world) -> None:
    _, routes = world
    assert (await routes.put("ab", spec((BASE_MODEL_NAME, 90), ("one", 10)))).version == 1
    assert (await routes.patch("ab", {"guard": GUARD})).version == 1  # same traffic: same samples
    assert (await routes.put("ab", spec((BASE_MODEL_NAME, 90), ("one", 10), guard=GUARD))).version == 1
    assert (await routes.patch("ab", {"variants": [{"target": BASE_MODEL_NAME, "weight": 50},
                                                   {"target": "one", "weight": 50}]})).version == 2
    assert await routes.rollback("ab", "one", "error_rate 1 > 0.05")
    assert routes.route("ab").version == 3
    route = await routes.patch("ab", {"guard": {"min_samples": 50}})  # the rollback reason stays while at 0
    assert route.version == 3 and route.rollbacks == {"one": "error_rate 1 > 0.05"}
    route = await routes.put("ab", spec((BASE_MODEL_NAME, 90), ("one", 10), guard=GUARD))
    assert route.version == 4 and route.rollbacks == {}
    await routes.delete("ab")
    assert (await routes.put("ab", spec((BASE_MODEL_NAME, 1)))).version == 5  # never reused after a delete


# ------------------------------------------------------------------------------ routes file
def routes_file(**routes: RouteSpec) -> RoutesFile:
    content = json.dumps({name: s.model_dump(mode="json") for name, s in routes.items()}, sort_keys=True)
    return RoutesFile(sha256=hashlib.sha256(content.encode()).hexdigest(), routes=routes)


async def test_a_restart_with_the_same_routes_file_never_undoes_a_rollback(world) -> None:
    adapters, routes = world
    configured = routes_file(ab=spec((BASE_MODEL_NAME, 50), ("one", 50), guard=GUARD))
    await (first := await new_routes(adapters)).start(configured)
    assert await first.rollback("ab", "one", "error_rate 0.5 > 0.05")
    rolled_back = first.route("ab")

    restarted = await new_routes(adapters)
    await restarted.start(configured)
    assert restarted.route("ab") == rolled_back
    assert [v.weight for v in restarted.route("ab").spec.variants] == [50, 0]
    assert restarted.store.load().routes_file.sha256 == configured.sha256

    # a change of the file applies (that route only): a deliberate new rollout
    changed = routes_file(ab=spec((BASE_MODEL_NAME, 80), ("one", 20), guard=GUARD),
                          other=spec((BASE_MODEL_NAME, 1)))
    await (again := await new_routes(adapters)).start(changed)
    assert [v.weight for v in again.route("ab").spec.variants] == [80, 20] and again.get("other") is not None


async def test_an_api_change_survives_a_restart_and_other_file_routes_changing(world) -> None:
    adapters, routes = world
    configured = routes_file(ab=spec((BASE_MODEL_NAME, 50), ("one", 50)), cd=spec((BASE_MODEL_NAME, 1)))
    await routes.start(configured)
    await routes.patch("ab", {"variants": [{"target": BASE_MODEL_NAME, "weight": 1}]})
    edited = routes_file(ab=spec((BASE_MODEL_NAME, 50), ("one", 50)), cd=spec((BASE_MODEL_NAME, 1), ("one", 1)))
    await (restarted := await new_routes(adapters)).start(edited)
    assert [v.target for v in restarted.route("ab").spec.variants] == [BASE_MODEL_NAME]  # unchanged in the file
    assert [v.target for v in restarted.route("cd").spec.variants] == [BASE_MODEL_NAME, "one"]


async def test_a_file_route_that_failed_is_retried_at_the_next_start(world, adapter_root: Path) -> None:
    adapters, routes = world
    configured = routes_file(ab=spec((BASE_MODEL_NAME, 1), ("two", 1)), cd=spec((BASE_MODEL_NAME, 1)))
    await routes.start(configured)  # "two" is not registered yet
    assert routes.get("ab") is None and routes.get("cd") is not None
    assert routes.store.load().routes_file.sha256 != configured.sha256
    await routes.patch("cd", {"variants": [{"target": "one", "weight": 1}]})
    await adapters.register_path("two", str(adapter_root / "two"))
    await (restarted := await new_routes(adapters)).start(configured)
    assert restarted.get("ab") is not None
    assert [v.target for v in restarted.route("cd").spec.variants] == ["one"]  # applied before: not again


def test_load_routes_file_hashes_its_content(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("ab:\n  variants: [{target: base, weight: 1}]\n")
    loaded = load_routes_file(path)
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and list(loaded.routes) == ["ab"]
    assert load_routes_file(None) is None


# ------------------------------------------------------------------------------ names
async def test_an_adapter_cannot_take_a_stored_route_name_before_routes_load(
        world, adapter_root: Path, tiny_model_dir: Path) -> None:
    """Start-up registers initial adapters before the routes load: the store decides, not memory."""
    adapters, routes = world
    await routes.put("ab", spec((BASE_MODEL_NAME, 1)))
    restarted, _ = make_registry(adapters.store.root, tiny_model_dir, [adapter_root])
    await restarted.start()
    not_loaded = await new_routes(restarted)  # built, not started: as at start-up
    assert not_loaded.names() == []
    with pytest.raises(ConflictError) as caught:
        await restarted.register_path("ab", str(adapter_root / "two"))
    assert (caught.value.status, caught.value.param, caught.value.code) == (409, "name", "name_taken")
    assert restarted.handle("ab") is None


async def test_a_route_cannot_take_an_adapter_name_at_start_from_the_routes_file(world) -> None:
    adapters, _ = world
    routes = await new_routes(adapters)
    await routes.start(routes_file(one=spec((BASE_MODEL_NAME, 1))))  # "one" is an adapter
    assert routes.get("one") is None  # refused (logged), the adapter still serves
    with pytest.raises(ConflictError):
        await routes.put("one", spec((BASE_MODEL_NAME, 1)))


def test_initial_adapters_and_file_routes_sharing_a_name_stop_the_start() -> None:
    configured = routes_file(ab=spec((BASE_MODEL_NAME, 1)), cd=spec((BASE_MODEL_NAME, 1)))
    with pytest.raises(ConfigurationConflictError, match="ab: named both in --initial-adapters and in --routes-file"):
        check_configured_names({"ab": Path("/a"), "x": Path("/x")}, configured)
    check_configured_names({"x": Path("/x")}, configured)
    check_configured_names({"ab": Path("/a")}, None)
