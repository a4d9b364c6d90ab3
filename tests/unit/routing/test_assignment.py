"""The A/B assignment function: weighted, sticky, identical everywhere, minimal movement."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from service.routing import RouteVariant, assign_variant
from service.routing.assignment import shadow_selected

KEYS = [f"customer-{i}" for i in range(10_000)]


def variants(**weights: float) -> list[RouteVariant]:
    return [RouteVariant(target=name, weight=weight) for name, weight in weights.items()]


def shares(route: str, table: list[RouteVariant]) -> dict[str, float]:
    counts = Counter(assign_variant(route, table, key) for key in KEYS)
    return {name: counts[name] / len(KEYS) for name in counts}


@pytest.mark.parametrize("weights", [{"a": 90, "b": 10}, {"a": 50, "b": 50}, {"a": 1, "b": 2, "c": 7},
                                     {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}])
def test_shares_follow_the_weights_within_two_points(weights: dict[str, float]) -> None:
    observed = shares("ticket-triage", variants(**weights))
    total = sum(weights.values())
    for name, weight in weights.items():
        assert abs(observed.get(name, 0.0) - weight / total) <= 0.02, (name, observed)


def test_a_key_always_gets_the_same_variant() -> None:
    table = variants(a=50, b=30, c=20)
    first = [assign_variant("r", table, key) for key in KEYS[:500]]
    # Another "replica": a fresh call with the variants listed in another order.
    again = [assign_variant("r", list(reversed(table)), key) for key in KEYS[:500]]
    assert first == again


def test_growing_one_variant_moves_keys_only_into_it() -> None:
    before = {key: assign_variant("r", variants(v1=90, v2=10), key) for key in KEYS}
    after = {key: assign_variant("r", variants(v1=80, v2=20), key) for key in KEYS}
    moved = [(before[k], after[k]) for k in KEYS if before[k] != after[k]]
    assert moved and set(moved) == {("v1", "v2")}
    assert abs(len(moved) / len(KEYS) - 0.10) <= 0.02


def test_zero_weight_never_serves_and_routes_hash_independently() -> None:
    table = variants(a=1, b=0)
    assert {assign_variant("r", table, key) for key in KEYS[:1000]} == {"a"}
    one = [assign_variant("route-1", variants(a=50, b=50), k) for k in KEYS[:2000]]
    two = [assign_variant("route-2", variants(a=50, b=50), k) for k in KEYS[:2000]]
    assert 0.4 < sum(x != y for x, y in zip(one, two)) / 2000 < 0.6


def test_without_a_key_the_choice_is_weighted_random() -> None:
    rng = random.Random(7)
    counts = Counter(assign_variant("r", variants(a=75, b=25), None, rng) for _ in range(10_000))
    assert abs(counts["a"] / 10_000 - 0.75) < 0.02


def test_no_live_variant_is_an_error() -> None:
    with pytest.raises(ValueError):
        assign_variant("r", variants(a=0), "k")


def test_shadow_fraction_is_respected_and_sticky() -> None:
    chosen = [shadow_selected("r", 0.2, key) for key in KEYS]
    assert abs(sum(chosen) / len(KEYS) - 0.2) < 0.02
    assert chosen == [shadow_selected("r", 0.2, key) for key in KEYS]
