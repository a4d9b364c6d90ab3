"""The fleet-wide sample source over Prometheus: the PromQL it sends, how it reads canned API
answers into samples, that the guard holds when Prometheus cannot answer, and that with every
replica judging the same figures only one acts on a breach (the store's lock decides).

The queries against a real Prometheus: test_prometheus_queries.py."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from service.errors import DependencyFailedError
from service.observability import Metrics, RequestSample, RequestStats
from service.observability.route_report import build_route_report
from service.routing import RolloutGuard, RouteGuard, RouteRegistry, RouteSpec
from service.routing.prometheus_source import (
    SERIES,
    PrometheusSampleSource,
    bucket_values,
    parse_vector,
    route_queries,
    samples_from,
    selector,
    step_for,
    window_count,
)
from service.routing.rollout import judge
from tests.support.registry_harness import BASE_MODEL_NAME, adapters_and_routes

pytestmark = pytest.mark.anyio


def vector(*series: tuple[dict[str, str], float]) -> dict:
    """An /api/v1/query answer."""
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels, "value": [1700000000.0, "NaN" if math.isnan(value) else repr(value)]}
        for labels, value in series]}}


# ------------------------------------------------------------------ PromQL
def test_a_count_is_a_sum_of_scrape_to_scrape_increases_of_one_route_version() -> None:
    expr = window_count("loragate_requests_total", "variant, status", "ab", 3, 300)
    s = 'loragate_requests_total{route="ab",route_version="3"}'
    assert expr == (f"sum by (variant, status) (sum_over_time((({s} - {s} offset 2000ms) >= 0 or {s} * 1)"
                    "[300000ms:2000ms]))")
    assert selector("loragate_requests_total", "ab", None) == 'loragate_requests_total{route="ab"}'
    assert selector("m", 'a"b\\', 1) == 'm{route="a\\"b\\\\",route_version="1"}'  # quoted, whatever the name


def test_steps_are_at_least_a_second_and_at_most_250_per_window() -> None:
    assert step_for(10) == 1 and step_for(250) == 1 and step_for(900) == 4 and step_for(86400) == 346
    assert "[900000ms:4000ms]" in window_count("x", "variant", "r", 1, 900)
    assert "[1500ms:1000ms]" in window_count("x", "variant", "r", 1, 1.5)  # no fractional PromQL durations


def test_a_route_needs_one_query_per_series() -> None:
    queries = route_queries("ab", 2, 600)
    assert set(queries) == set(SERIES)
    assert "sum by (variant, le)" in queries["latency"] and "loragate_request_duration_seconds_bucket" in queries["latency"]
    assert all('route="ab",route_version="2"' in q for q in queries.values())


# ------------------------------------------------------------------ answers
def test_parse_vector_reads_labels_and_values_and_drops_nan() -> None:
    body = vector(({"variant": "a", "status": "200"}, 3.0), ({"variant": "b"}, float("nan")))
    assert parse_vector(body) == [({"variant": "a", "status": "200"}, 3.0)]
    assert parse_vector(vector()) == []


@pytest.mark.parametrize("body, words", [
    ({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}, "parse error at char 3"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "'matrix', not a vector"),
    ("<html>", "<html>"),
])
def test_an_error_answer_is_figures_unavailable(body: object, words: str) -> None:
    with pytest.raises(DependencyFailedError, match="Prometheus") as raised:
        parse_vector(body)
    assert words in raised.value.message and raised.value.code == "figures_unavailable"
    assert raised.value.status == 424


def histogram_quantile(q: float, cumulative: dict[float, float]) -> float:
    """Prometheus's algorithm (promql/quantile.go), for the comparison."""
    bounds = sorted(cumulative)
    rank = q * cumulative[bounds[-1]]
    b = next(i for i, upper in enumerate(bounds) if cumulative[upper] >= rank)
    if math.isinf(bounds[b]):
        return bounds[-2]
    start, below = (0.0, 0.0) if b == 0 else (bounds[b - 1], cumulative[bounds[b - 1]])
    return start + (bounds[b] - start) * (rank - below) / (cumulative[bounds[b]] - below)


def test_bucket_values_are_histogram_quantiles() -> None:
    cumulative = {0.1: 2.0, 0.5: 2.0, 1.0: 7.0, 2.5: 9.0, math.inf: 10.0}
    values = bucket_values(cumulative, 10)
    assert values == pytest.approx([histogram_quantile(i / 10, cumulative) for i in range(1, 11)])
    assert values[0] == pytest.approx(0.05) and values[-1] == 2.5  # +Inf: the highest finite bound
    assert len(bucket_values(cumulative, 4)) == 4 and bucket_values(cumulative, 0) == [] and bucket_values({}, 3) == []
    # The p95 the guard computes from them is histogram_quantile's within one rank.
    assert np.percentile(values, 95) == pytest.approx(histogram_quantile(0.95, cumulative), abs=0.6)


def canned_results() -> dict[str, list[tuple[dict[str, str], float]]]:
    cand = {"variant": "cand"}
    return {
        "requests": [
            ({"variant": "ctl", "base_model": "b", "model": "b", "endpoint": "chat", "status": "200"}, 4.0),
            ({**cand, "base_model": "b", "model": "cand", "endpoint": "triage", "status": "200"}, 3.0),
            ({**cand, "base_model": "b", "model": "cand", "endpoint": "triage", "status": "502"}, 2.0),
            ({**cand, "base_model": "b", "model": "cand", "endpoint": "triage", "status": "400"}, 1.0),
        ],
        "latency": [({"variant": "ctl", "le": le}, c) for le, c in (("0.5", 4.0), ("1.0", 4.0), ("+Inf", 4.0))]
                 + [({**cand, "le": le}, c) for le, c in (("0.5", 1.0), ("1.0", 3.0), ("+Inf", 5.0))],
        "ttft": [({**cand, "le": le}, c) for le, c in (("0.1", 2.0), ("+Inf", 2.0))],
        "structured": [({**cand, "result": "valid"}, 3.0), ({**cand, "result": "invalid"}, 2.0)],
        "prompt_tokens": [({"variant": "ctl"}, 40.0), (cand, 31.0)],
        "completion_tokens": [({"variant": "ctl"}, 8.0), (cand, 0.0)],
        "needs_review": [(cand, 1.0)],
        "decisions": [({**cand, "field": "category"}, 4.0), ({**cand, "field": "priority"}, 4.0)],
        "confidence": [({**cand, "field": "category"}, 3.2), ({**cand, "field": "priority"}, 2.0)],
    }


def test_samples_stand_for_the_figures() -> None:
    samples, outcomes = samples_from(canned_results(), "ab", 3, now=1000.0)
    ctl = [s for s in samples if s.variant == "ctl"]
    cand = [s for s in samples if s.variant == "cand"]
    assert len(ctl) == 4 and all(s.status == 200 and s.duration_s <= 0.5 for s in ctl)
    assert [s.status for s in cand] == [200, 200, 200, 400, 502, 502]  # successful first
    assert all(s.route == "ab" and s.route_version == 3 and s.finished_at == 1000.0 and not s.shadow for s in samples)
    assert {(s.model, s.endpoint) for s in cand} == {("cand", "triage")}
    assert sorted(s.structured_output for s in cand if s.structured_output) == ["invalid", "invalid", "valid",
                                                                                "valid", "valid"]
    assert [s.ttft_s is not None for s in cand[:3]] == [True, True, False]
    assert sum(s.prompt_tokens for s in cand) == 31 and sum(s.prompt_tokens for s in ctl) == 40
    # latency: the successful requests get the histogram's quantiles (it counts failed ones too)
    assert [s.duration_s for s in cand[:3]] == pytest.approx(bucket_values({0.5: 1, 1.0: 3, math.inf: 5}, 3))
    assert len(outcomes) == 4 and sum(o.needs_review for o in outcomes) == 1
    assert dict(outcomes[0].confidence) == pytest.approx({"category": 0.8, "priority": 0.5})
    # the guard's figures over them: 5xx only, invalid over structured replies
    _, figures = judge(RouteGuard(max_error_rate=0.5, max_invalid_rate=0.5, max_needs_review_rate=0.5, min_samples=4),
                       cand, ctl, outcomes)
    assert figures[0].startswith("error_rate 0.333 <= 0.5 over 6 requests")
    assert figures[1].startswith("invalid_rate 0.400 <= 0.5 over 5 structured replies")
    assert figures[2].startswith("needs_review_rate 0.250 <= 0.5 over 4 decisions")


def test_the_report_says_where_its_figures_came_from() -> None:
    source = PrometheusSampleSource("http://prometheus:9090/", transport=httpx.MockTransport(lambda r: None))
    samples, outcomes = samples_from(canned_results(), "ab", 3, now=time.time())
    report = build_route_report("ab", samples, outcomes, 300, ["ctl", "cand"], version=3,
                                source=source.description, figures_from=source.figures_from)
    assert report.figures_from == "prometheus" and report.source.startswith("Prometheus at http://prometheus:9090:")
    assert "histogram_quantile" in report.source and "exact only to its bucket's bounds" in report.source
    assert [(v.variant, v.requests, v.errors) for v in report.variants] == [("ctl", 4, 0), ("cand", 6, 3)]
    assert build_route_report("ab", [], [], 300, ["ctl"]).figures_from == "this_replica"


# ------------------------------------------------------------------ the source over HTTP
def test_the_source_asks_every_query_at_one_time_and_bounds_the_wait() -> None:
    seen: list[httpx.Request] = []
    answers = canned_results()

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        query = request.url.params["query"]
        name = next(n for n, (series, by) in SERIES.items() if f"sum by ({by}) (sum_over_time((({series}{{" in query)
        return httpx.Response(200, json=vector(*answers[name]))

    source = PrometheusSampleSource("http://prom:9090", window_s=600, timeout_s=1.5,
                                    transport=httpx.MockTransport(answer))
    samples, outcomes = source.route_window("ab", 120, now=1234.5, version=3)
    assert len(samples) == 10 and len(outcomes) == 4
    assert {r.url.path for r in seen} == {"/api/v1/query"} and {r.url.params["time"] for r in seen} == {"1234.500"}
    assert len(seen) == len(SERIES) and all("[120000ms:1000ms]" in r.url.params["query"] for r in seen)
    assert source._client.timeout.read == 1.5  # noqa: SLF001
    source.route_window("ab", 7200, now=1.0, version=3)  # capped at the configured window
    assert "[600000ms:" in seen[-1].url.params["query"]


def test_unreachable_or_refusing_prometheus_is_figures_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(DependencyFailedError, match="did not answer") as raised:
        PrometheusSampleSource("http://prom:9090", transport=httpx.MockTransport(refuse)).route_window("ab", version=1)
    assert raised.value.code == "figures_unavailable"
    down = PrometheusSampleSource("http://prom:9090", transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    with pytest.raises(DependencyFailedError, match="answered HTTP 503"):
        down.route_window("ab", version=1)
    bad = PrometheusSampleSource("http://prom:9090", transport=httpx.MockTransport(lambda r: httpx.Response(
        400, json={"status": "error", "errorType": "bad_data", "error": "1:2: parse error"})))
    with pytest.raises(DependencyFailedError, match="parse error"):
        bad.route_window("ab", version=1)


# ------------------------------------------------------------------ the guard over a fleet
@pytest.fixture()
async def world(tmp_path: Path, tiny_model_dir: Path, adapter_root: Path):
    return await adapters_and_routes(tmp_path / "store", tiny_model_dir, adapter_root)


GUARD = RouteGuard(max_error_rate=0.2, min_samples=10)


def spec() -> RouteSpec:
    return RouteSpec.model_validate({"variants": [{"target": BASE_MODEL_NAME, "weight": 50},
                                                  {"target": "one", "weight": 50}], "guard": GUARD.model_dump()})


class Fleet(RequestStats):
    """Stands for Prometheus: every replica's guard reads the same samples."""

    figures_from = "prometheus"


def failing(fleet: Fleet, version: int, n: int = 10) -> None:
    for i in range(n):
        for variant, status in ((BASE_MODEL_NAME, 200), ("one", 502 if i % 2 else 200)):
            fleet.observe(RequestSample(time.time(), BASE_MODEL_NAME, variant, "ab", variant, "chat", status, 0.5,
                                        0.1, 10, 5, None, route_version=version))


def rollback_audits(routes: RouteRegistry) -> list[object]:
    return [e for e in routes.adapter_store.audit_events() if e.action == "route_rollback"]


async def test_a_breach_every_replica_sees_is_acted_on_once(world) -> None:
    adapters, routes = world
    other = RouteRegistry(adapters.store, BASE_MODEL_NAME, Metrics(CollectorRegistry()))
    await routes.put("ab", spec())
    await other.start()
    fleet = Fleet(window_s=600)
    failing(fleet, version=1)
    first, second = RolloutGuard(routes, fleet), RolloutGuard(other, fleet)
    acted = await asyncio.gather(first.check(routes.route("ab")), second.check(other.route("ab")))
    assert sorted(acted) == [[], ["one"]]  # the store's lock let one of them act
    await asyncio.gather(routes.refresh(force=True), other.refresh(force=True))
    assert other.route("ab").version == routes.route("ab").version == 2
    assert len(rollback_audits(routes)) == 1


async def test_a_replica_behind_the_store_does_not_act_on_an_old_version(world) -> None:
    adapters, routes = world
    other = RouteRegistry(adapters.store, BASE_MODEL_NAME, Metrics(CollectorRegistry()))
    await routes.put("ab", spec())
    await other.start()
    stale = other.route("ab")  # version 1, as the other replica last read it
    fleet = Fleet(window_s=600)
    failing(fleet, version=1)
    assert await RolloutGuard(routes, fleet).check(routes.route("ab")) == ["one"]
    await routes.patch("ab", {"variants": [{"target": BASE_MODEL_NAME, "weight": 50},
                                           {"target": "one", "weight": 50}]})  # fixed and re-enabled: version 3
    assert routes.route("ab").version == 3
    # The other replica still judges version 1's breach: the store is past it, so nothing happens.
    assert await RolloutGuard(other, fleet).check(stale) == []
    assert not await other.rollback("ab", "one", "error_rate 0.5 > 0.2", version=1)
    await other.refresh(force=True)
    assert [v.weight for v in other.route("ab").spec.variants] == [50, 50] and len(rollback_audits(routes)) == 1


class Unreachable:
    description = "Prometheus at http://prom:9090"
    figures_from = "prometheus"
    calls = 0

    def route_window(self, route: str, window_s: float | None = None, now: float | None = None, *,
                     version: int | None = None) -> tuple[list, list]:
        self.calls += 1
        source = PrometheusSampleSource("http://prom:9090", transport=httpx.MockTransport(
            lambda r: (_ for _ in ()).throw(httpx.ConnectTimeout("timed out", request=r))))
        return source.route_window(route, window_s, now, version=version)


async def test_the_guard_holds_while_prometheus_cannot_answer_and_says_so_once(
        world, caplog: pytest.LogCaptureFixture) -> None:
    _, routes = world
    await routes.put("ab", spec())
    source = Unreachable()
    guard = RolloutGuard(routes, source)
    with pytest.raises(DependencyFailedError):
        await guard.check(routes.route("ab"))
    with caplog.at_level(logging.INFO, logger="service.routing.rollout"):
        for _ in range(3):
            await guard._check_in_background(routes.route("ab"))  # noqa: SLF001
    held = [r for r in caplog.records if "the guard holds" in r.getMessage()]
    assert source.calls == 4 and len(held) == 1 and held[0].levelno == logging.WARNING
    assert "did not answer" in held[0].getMessage()
    assert routes.route("ab").version == 1 and routes.route("ab").rollbacks == {}  # nothing was decided
    fleet = Fleet(window_s=600)
    guard.stats = fleet  # back: it judges again, and says so
    with caplog.at_level(logging.INFO, logger="service.routing.rollout"):
        await guard._check_in_background(routes.route("ab"))  # noqa: SLF001
    assert any("has its figures again" in r.getMessage() for r in caplog.records)
