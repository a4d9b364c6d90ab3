"""The soak's pure parts (loadtests/soak_report.py) and its requests against a fake transport
(loadtests/soak_traffic.py): how each outcome is classified (strictly), the RSS growth after
warm-up, the registry comparison across the restart, the targets, and the files it writes."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.soak import engine_unfinished, parse_args, sample_tree
from loadtests.soak_report import (
    DISCONNECT, VALID, Outcome, Reply, Result, classify, counts, differences, growth, markdown, missing_kinds,
    p95_series, plot, refusal, registry_state, targets,
)
from loadtests.soak_traffic import Traffic, bad_cases, sse_problem

BASE, ROUTE, ADAPTERS = "base-model", "soak-route", ("soak-a", "soak-b")


# --------------------------------------------------------------------------- classify
@pytest.mark.parametrize(("reply", "outcome"), [
    (Reply(status=200), Outcome.OK),
    (Reply(status=429, code="rate_limit_exceeded", error_shape=True), Outcome.FAILED),  # never excused
    (Reply(status=400, code="invalid_value", error_shape=True), Outcome.FAILED),
    (Reply(status=503, code="engine_unavailable", error_shape=True), Outcome.FAILED),
    (Reply(transport_error="ReadTimeout: timed out"), Outcome.FAILED),
    (Reply(transport_error="RemoteProtocolError: Server disconnected"), Outcome.FAILED),
    (Reply(status=200, body_problem="stream did not end with [DONE]"), Outcome.FAILED),
])
def test_a_valid_request_succeeds_or_has_failed(reply: Reply, outcome: Outcome) -> None:
    got, detail = classify(VALID, reply)
    assert got is outcome
    assert (detail == "") is (outcome is Outcome.OK)


def test_a_valid_request_may_expect_another_success_status() -> None:
    created = VALID.model_copy(update={"ok_statuses": (201,)})
    assert classify(created, Reply(status=201))[0] is Outcome.OK
    assert classify(created, Reply(status=200))[0] is Outcome.FAILED


@pytest.mark.parametrize(("reply", "outcome"), [
    (Reply(status=400, code="unrecognized_argument", error_shape=True), Outcome.REFUSED),
    (Reply(status=400, code="invalid_value", error_shape=True), Outcome.WRONG_REFUSAL),  # another code
    (Reply(status=422, code="unrecognized_argument", error_shape=True), Outcome.WRONG_REFUSAL),  # another status
    (Reply(status=400, code="unrecognized_argument", error_shape=False), Outcome.WRONG_REFUSAL),  # not OpenAI's shape
    (Reply(status=200), Outcome.WRONG_REFUSAL),  # silently accepted
    (Reply(status=500, code="internal_error", error_shape=True), Outcome.WRONG_REFUSAL),
    (Reply(transport_error="ConnectError"), Outcome.WRONG_REFUSAL),
])
def test_a_bad_request_is_refused_exactly_as_documented(reply: Reply, outcome: Outcome) -> None:
    got, detail = classify(refusal(400, "unrecognized_argument"), reply)
    assert got is outcome
    if outcome is Outcome.WRONG_REFUSAL:
        assert "expected 400 unrecognized_argument" in detail or "transport" in detail


def test_a_refusal_without_a_code_checks_the_status_only() -> None:
    assert classify(refusal(404), Reply(status=404, code="anything", error_shape=True))[0] is Outcome.REFUSED
    assert classify(refusal(404), Reply(status=400, code="anything", error_shape=True))[0] is Outcome.WRONG_REFUSAL


@pytest.mark.parametrize(("reply", "outcome"), [
    (Reply(status=200, disconnected=True), Outcome.DISCONNECTED),  # left mid-stream
    (Reply(disconnected=True), Outcome.DISCONNECTED),  # left before the reply
    (Reply(status=200), Outcome.OK),  # the reply was complete before we could leave: judged as valid
    (Reply(status=500, code="internal_error", error_shape=True), Outcome.FAILED),
    (Reply(status=503, code="engine_unavailable", disconnected=True), Outcome.FAILED),  # refused up front
    (Reply(transport_error="ReadError"), Outcome.FAILED),  # not a disconnect we made
    (Reply(status=200, body_problem="served by 'x'"), Outcome.FAILED),
])
def test_a_disconnect_is_not_a_failure_unless_the_service_failed(reply: Reply, outcome: Outcome) -> None:
    assert classify(DISCONNECT, reply)[0] is outcome


# ----------------------------------------------------------------------------- counts
def result(kind: str, outcome: Outcome, status: int | None = 200, started_s: float = 0.0, duration_s: float = 1.0,
           label: str | None = None) -> Result:
    return Result(kind=kind, label=label or kind, started_s=started_s, duration_s=duration_s, outcome=outcome,
                  status=status)


def test_counts_name_each_figure_and_exclude_the_drain_probe_from_the_5xx() -> None:
    results = [
        result("chat", Outcome.OK), result("chat", Outcome.FAILED, status=502),
        result("bad", Outcome.REFUSED, status=400), result("bad", Outcome.WRONG_REFUSAL, status=200),
        result("disconnect", Outcome.DISCONNECTED, status=None),
        result("drain-probe", Outcome.REFUSED, status=503),  # 503 shutting_down: the contract
        result("admin", Outcome.FAILED, status=None, label="swap soak-a"),
    ]
    c = counts(results)
    assert (c["requests"], c["valid_requests"], c["valid_failed"]) == (7, 3, 2)
    assert (c["server_errors_5xx"], c["refused_as_expected"], c["wrong_refusals"], c["disconnects"]) == (1, 2, 1, 1)
    assert c["by_kind"]["chat"] == {"ok": 1, "failed": 1}
    assert [f["status"] for f in c["failures"]] == [502, None]
    assert c["admin_and_bad_labels"] == {"bad": 2, "swap soak-a": 1}


def test_missing_kinds_names_what_never_happened() -> None:
    results = [result("chat", Outcome.OK), result("admin", Outcome.OK, label="swap soak-a")]
    assert missing_kinds(results, ("chat", "swap soak-a", "stream", "route weights")) == ["stream", "route weights"]


def test_p95_series_per_window_and_kind_of_successes_only() -> None:
    results = [result("chat", Outcome.OK, started_s=t, duration_s=d) for t, d in ((1, 1.0), (2, 2.0), (12, 5.0))]
    results += [result("chat", Outcome.FAILED, status=500, started_s=3, duration_s=99.0),
                result("triage", Outcome.OK, started_s=15, duration_s=8.0)]
    series = p95_series(results, window_s=10, end_s=25)
    assert [row["start_s"] for row in series] == [0, 10, 20]
    assert [row["n"] for row in series] == [2, 2, 0]
    assert series[0]["chat_p95_s"] == pytest.approx(1.95) and series[0]["triage_p95_s"] is None
    assert series[1]["p95_s"] == pytest.approx(7.85) and series[2]["p95_s"] is None


# ----------------------------------------------------------------------------- growth
def test_rss_growth_ignores_the_warm_up_and_compares_medians_of_the_two_spans() -> None:
    points = [(t, 100.0 if t < 60 else 1000.0) for t in range(0, 60, 5)]  # warm-up: engine filling up
    points += [(t, 1000.0 + (t - 60) * 0.5) for t in range(60, 181, 5)]  # slow growth after it
    g = growth(points, warmup_s=60, span_s=30)
    assert g.baseline == pytest.approx(1006.25)  # median of t = 60..85
    assert g.end == pytest.approx(1053.75)  # median of t = 155..180
    assert g.growth == pytest.approx(1053.75 / 1006.25 - 1, abs=1e-4)
    assert g.peak == 1060.0 and g.peak_growth == pytest.approx(1060 / 1006.25 - 1, abs=1e-4)


def test_flat_rss_is_no_growth_and_a_spike_is_the_peak_only() -> None:
    points = [(float(t), 500.0) for t in range(0, 300, 5)]
    points[40] = (200.0, 800.0)
    g = growth(points, warmup_s=100, span_s=50)
    assert g.growth == 0 and g.peak_growth == pytest.approx(0.6)


def test_too_few_samples_give_no_growth_figure() -> None:
    assert growth([(70.0, 1.0), (80.0, 2.0)], warmup_s=60, span_s=30).growth is None
    assert growth([(10.0, 1.0)], warmup_s=60, span_s=30).growth is None
    assert growth([], warmup_s=60, span_s=30).samples == 0


# --------------------------------------------------------------------------- registry
def adapters_listing(version: int, resident: bool, last_used: str | None) -> dict[str, Any]:
    record = {"name": "soak-a", "version": version, "sha256": "ab" * 32, "engine_id": 3, "pinned": False,
              "registered_at": "2026-01-01T00:00:00Z", "path": f"adapters/soak-a/v{version}"}
    return {"object": "list", "data": [{"adapter": record, "resident": resident, "in_flight": 2 if resident else 0,
                                        "last_used": last_used, "load_count": 4 if resident else 1}]}


def routes_listing(weights: list[int], version: int) -> dict[str, Any]:
    return {"object": "list", "data": [{"name": ROUTE, "version": version, "updated_at": "2026-01-01T00:00:00Z",
                                        "rollbacks": {}, "rollout": None, "spec": {"variants": [
                                            {"target": t, "weight": w} for t, w in zip((BASE, *ADAPTERS), weights)]}}]}


def test_registry_state_ignores_what_changes_with_use_only() -> None:
    before = registry_state(adapters_listing(3, True, "2026-01-01T00:10:00Z"), routes_listing([2, 1, 1], 5))
    after = registry_state(adapters_listing(3, False, None), routes_listing([2, 1, 1], 5))
    assert differences(before, after) == []
    assert set(before["adapters"]["soak-a"]) == {"adapter"}


def test_differences_name_each_change_across_the_restart() -> None:
    before = registry_state(adapters_listing(3, True, None), routes_listing([2, 1, 1], 5))
    after = registry_state(adapters_listing(2, True, None), routes_listing([2, 3, 1], 5))
    assert differences(before, after) == [
        "adapters.soak-a.adapter.path: 'adapters/soak-a/v3' != 'adapters/soak-a/v2'",
        "adapters.soak-a.adapter.version: 3 != 2",
        "routes.soak-route.spec.variants[1].weight: 1 != 3",
    ]
    gone = registry_state({"data": []}, {"data": []})
    assert differences(before, gone) == ["adapters.soak-a: missing after the restart",
                                         "routes.soak-route: missing after the restart"]
    assert differences(gone, before) == ["adapters.soak-a: new after the restart",
                                         "routes.soak-route: new after the restart"]
    assert differences({"x": [1, 2]}, {"x": [1]}) == ["x: [1, 2] != [1]"]


# ---------------------------------------------------------------------------- targets
def figures(**changes: Any) -> dict[str, Any]:
    base = {
        "counts": {"valid_failed": 0, "server_errors_5xx": 0, "wrong_refusals": 0, "missing_kinds": []},
        "rss": {"growth": 0.02}, "drain": {"in_flight_completed": True, "exit_code": 0},
        "registry": {"compared": True, "differences": []},
    }
    for key, value in changes.items():
        section, field = key.split("__")
        base[section][field] = value
    return base


def test_every_target_met() -> None:
    assert all(t.met for t in targets(figures()))


@pytest.mark.parametrize("change", [
    {"counts__valid_failed": 1}, {"counts__server_errors_5xx": 1}, {"counts__wrong_refusals": 1},
    {"counts__missing_kinds": ["triage"]}, {"rss__growth": 0.10}, {"rss__growth": None},
    {"drain__exit_code": 5}, {"drain__exit_code": None}, {"drain__in_flight_completed": False},
    {"registry__differences": ["routes.x: missing after the restart"]}, {"registry__compared": False},
])
def test_each_target_can_be_missed(change: dict[str, Any]) -> None:
    missed = [t.name for t in targets(figures(**change)) if not t.met]
    assert len(missed) == 1, missed


# ------------------------------------------------------------------- requests, faked
def served_headers(model: str, route: str = "none") -> dict[str, str]:
    return {"x-loragate-model": model, "x-loragate-route": route}


def chat_reply(model: str, route: str = "none", tokens: int = 3) -> httpx.Response:
    return httpx.Response(200, headers=served_headers(model, route), json={
        "choices": [{"message": {"role": "assistant", "content": "hi"}}], "usage": {"completion_tokens": tokens}})


def sse(*events: dict[str, Any] | str, model: str = BASE, route: str = "none") -> httpx.Response:
    lines = "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)
    return httpx.Response(200, headers=served_headers(model, route) | {"content-type": "text/event-stream"},
                          content=lines.encode())


def error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": "m", "type": "invalid_request_error", "param": None,
                                                  "code": code}})


def traffic(handler: Any) -> Traffic:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://soak")
    tickets = [{"subject": "Charged twice", "body": "Refund please."}]
    return Traffic(client, BASE, ADAPTERS, ROUTE, tickets, max_tokens=8, origin=0.0, clock=lambda: 10.0)


DELTA = {"choices": [{"delta": {"content": "Hi"}}]}


@pytest.mark.anyio
async def test_chat_must_be_served_by_what_was_asked_for() -> None:
    rng = random.Random(0)
    assert (await traffic(lambda r: chat_reply("soak-a")).chat("soak-a", rng)).outcome is Outcome.OK
    wrong = await traffic(lambda r: chat_reply("soak-b")).chat("soak-a", rng)
    assert wrong.outcome is Outcome.FAILED and "served by 'soak-b'" in wrong.detail
    routed = await traffic(lambda r: chat_reply("soak-b", route=ROUTE)).chat(ROUTE, rng)
    assert routed.outcome is Outcome.OK and routed.label == "chat route" and routed.started_s == 10.0
    empty = await traffic(lambda r: chat_reply(BASE, tokens=0)).chat(BASE, rng)
    assert empty.outcome is Outcome.FAILED
    garbled = await traffic(lambda r: httpx.Response(200, headers=served_headers(BASE), json={})).chat(BASE, rng)
    assert garbled.outcome is Outcome.FAILED and "unexpected body" in garbled.detail


@pytest.mark.anyio
async def test_a_transport_error_on_a_valid_request_is_a_failure() -> None:
    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
    got = await traffic(reset).completion(BASE, random.Random(0))
    assert got.outcome is Outcome.FAILED and "RemoteProtocolError" in got.detail


@pytest.mark.anyio
async def test_a_stream_must_end_with_done_and_carry_no_error_event() -> None:
    rng = random.Random(0)
    assert (await traffic(lambda r: sse(DELTA, "[DONE]")).stream(BASE, rng)).outcome is Outcome.OK
    cut = await traffic(lambda r: sse(DELTA)).stream(BASE, rng)
    assert cut.outcome is Outcome.FAILED and "[DONE]" in cut.detail
    failed = await traffic(lambda r: sse(DELTA, {"error": {"code": "timeout"}}, "[DONE]")).stream(BASE, rng)
    assert failed.outcome is Outcome.FAILED and "error event" in failed.detail
    refused = await traffic(lambda r: error(503, "engine_unavailable")).stream(BASE, rng)
    assert refused.outcome is Outcome.FAILED and refused.status == 503


def test_sse_problem() -> None:
    assert sse_problem([json.dumps(DELTA), "[DONE]"]) is None
    assert sse_problem(["[DONE]"]) == "stream without content"
    assert sse_problem([]) is not None


@pytest.mark.anyio
async def test_leaving_a_stream_or_a_slow_reply_is_a_disconnect() -> None:
    rng = random.Random(0)
    left = await traffic(lambda r: sse(DELTA, DELTA, "[DONE]")).stream(BASE, rng, kind="disconnect", leave=True)
    assert left.outcome is Outcome.DISCONNECTED and left.label == "disconnect left mid-stream"

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)
    assert (await traffic(slow).leave_waiting(BASE, rng)).outcome is Outcome.DISCONNECTED
    # Answered before the client left: a valid reply, judged as one.
    assert (await traffic(lambda r: chat_reply(BASE)).leave_waiting(BASE, rng)).outcome is Outcome.OK
    assert (await traffic(lambda r: error(500, "internal_error")).leave_waiting(BASE, rng)).outcome is Outcome.FAILED


@pytest.mark.anyio
async def test_triage_labels_must_be_in_the_schema() -> None:
    rng = random.Random(0)

    def reply(category: str, route: str = "none") -> Any:
        return lambda r: httpx.Response(200, json={"triage": {"category": category, "priority": "high"},
                                                   "meta": {"route": route}})
    assert (await traffic(reply("billing")).triage(BASE, rng)).outcome is Outcome.OK
    assert (await traffic(reply("weather")).triage(BASE, rng)).outcome is Outcome.FAILED
    assert (await traffic(reply("billing", route=ROUTE)).triage(ROUTE, rng)).outcome is Outcome.OK
    assert (await traffic(reply("billing")).triage(ROUTE, rng)).outcome is Outcome.FAILED


@pytest.mark.anyio
async def test_bad_inputs_are_sent_as_written_and_judged_by_their_expected_refusal() -> None:
    cases = {case.label: case for case in bad_cases(BASE, ROUTE, ADAPTERS[0])}
    seen: list[tuple[str, str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content))
        return error(400, "invalid_value")
    t = traffic(handler)
    assert (await t.refused(cases["malformed json"])).outcome is Outcome.REFUSED
    assert seen[-1] == ("POST", "/v1/chat/completions", b'{"model": ')
    assert (await t.refused(cases["unknown field"])).outcome is Outcome.WRONG_REFUSAL  # wants unrecognized_argument
    assert (await t.refused(cases["wrong method"])).outcome is Outcome.WRONG_REFUSAL
    assert seen[-1][:2] == ("GET", "/v1/chat/completions")
    accepted = await traffic(lambda r: httpx.Response(204)).refused(cases["remove an adapter a route uses"])
    assert accepted.outcome is Outcome.WRONG_REFUSAL and accepted.label == "bad: remove an adapter a route uses"


@pytest.mark.anyio
async def test_an_adapter_swap_must_raise_its_version() -> None:
    versions = iter([1, 2, 2])
    t = traffic(lambda r: httpx.Response(201, json={"name": "soak-a", "version": next(versions)}))
    assert (await t.register("soak-a", Path("/x"), "register soak-a")).outcome is Outcome.OK
    assert (await t.register("soak-a", Path("/y"), "swap soak-a")).outcome is Outcome.OK
    stale = await t.register("soak-a", Path("/x"), "swap soak-a")
    assert stale.outcome is Outcome.FAILED and "not above 2" in stale.detail
    refused = await traffic(lambda r: error(400, "invalid_adapter")).register("soak-a", Path("/x"), "swap soak-a")
    assert refused.outcome is Outcome.FAILED and refused.status == 400


@pytest.mark.anyio
async def test_route_weights_are_patched_as_a_merge_patch_and_stored_as_sent() -> None:
    sent: list[httpx.Request] = []
    stored = {"weights": [3, 1, 5], "version": 2}

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"version": stored["version"], "spec": {"variants": [
            {"target": t, "weight": w} for t, w in zip((BASE, *ADAPTERS), stored["weights"])]}})
    t = traffic(handler)
    weights = {BASE: 3, "soak-a": 1, "soak-b": 5}
    assert (await t.set_route(weights)).outcome is Outcome.OK
    assert sent[-1].method == "PATCH" and sent[-1].headers["content-type"] == "application/merge-patch+json"
    assert json.loads(sent[-1].content) == {"variants": [{"target": BASE, "weight": 3},
                                                         {"target": "soak-a", "weight": 1},
                                                         {"target": "soak-b", "weight": 5}]}
    stored["version"] = 3
    ignored = await t.set_route({BASE: 1, "soak-a": 1, "soak-b": 1})
    assert ignored.outcome is Outcome.FAILED and "stored weights" in ignored.detail
    stored.update(weights=[1, 1, 1], version=4)
    assert (await t.set_route({BASE: 1, "soak-a": 1, "soak-b": 1})).outcome is Outcome.OK
    unversioned = await t.set_route({BASE: 1, "soak-a": 1, "soak-b": 1})  # the version did not go up
    assert unversioned.outcome is Outcome.FAILED and "not above 4" in unversioned.detail


@pytest.mark.anyio
async def test_the_drain_probes_expect_503() -> None:
    t = traffic(lambda r: httpx.Response(503, json={"status": "draining"}) if r.url.path == "/health/ready"
                else error(503, "shutting_down"))
    assert (await t.probe_ready()).outcome is Outcome.OK
    probe = await t.refused_after_sigterm(random.Random(0))
    assert probe.outcome is Outcome.REFUSED and probe.kind == "drain-probe"
    up = traffic(lambda r: httpx.Response(200, json={"status": "ready"}))
    assert (await up.probe_ready()).outcome is Outcome.FAILED


@pytest.mark.anyio
async def test_the_mix_sends_every_kind() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content.startswith(b"{") else {}
        model = body.get("model", BASE)
        if request.url.path == "/v1/tickets/triage":
            return httpx.Response(200, json={"triage": {"category": "billing", "priority": "low"},
                                             "meta": {"route": ROUTE if model == ROUTE else "none"}})
        if body.get("stream"):
            return sse(DELTA, "[DONE]", model=model, route=ROUTE if model == ROUTE else "none")
        headers = served_headers(model, ROUTE if model == ROUTE else "none")
        if request.url.path == "/v1/completions":
            return httpx.Response(200, headers=headers, json={"choices": [{"text": "x"}]})
        return httpx.Response(200, headers=headers, json={"choices": [{"message": {"content": "x"}}],
                                                          "usage": {"completion_tokens": 1}})
    t = traffic(handler)
    rng = random.Random(7)
    results = [await t.one(rng) for _ in range(200)]
    assert {r.kind for r in results} == {"chat", "stream", "completion", "triage", "bad", "disconnect"}
    assert [r for r in results if r.kind != "bad" and r.outcome not in (Outcome.OK, Outcome.DISCONNECTED)] == []
    assert all(r.outcome is Outcome.WRONG_REFUSAL for r in results if r.kind == "bad")  # all answered 200


# ------------------------------------------------------------------------- the rest
def test_engine_unfinished_sums_its_series() -> None:
    text = ("# TYPE loragate_engine_requests_unfinished gauge\n"
            'loragate_engine_requests_unfinished{model="a"} 1.0\nloragate_engine_requests_unfinished{model="b"} 2.0\n')
    assert engine_unfinished(text) == 3.0
    assert engine_unfinished("# TYPE other gauge\nother 1.0\n") is None


def test_sample_tree_reads_this_process() -> None:
    sample = sample_tree(os.getpid(), 1.5)
    assert sample.rss_bytes > 0 and sample.open_fds > 0 and sample.processes >= 1 and sample.t_s == 1.5


def test_defaults_scale_with_the_duration() -> None:
    short, long = parse_args(["--duration-s", "180"]), parse_args(["--duration-s", "1800"])
    assert (short.warmup_s, short.span_s, short.window_s, short.admin_interval_s) == (60, 30, 30, 9)
    assert (long.warmup_s, long.span_s, long.window_s, long.admin_interval_s) == (300, 180, 60, 20)


def test_markdown_and_chart(tmp_path: Path) -> None:
    results = [result("chat", Outcome.OK, started_s=t) for t in range(0, 100, 10)]
    results.append(result("chat", Outcome.FAILED, status=502, started_s=50))
    samples = [{"t_s": t, "rss_bytes": 2**30, "open_fds": 40, "processes": 3} for t in range(0, 100, 5)]
    c = counts(results)
    c["missing_kinds"] = []
    figs = figures() | {"counts": c, "rss": growth([(s["t_s"], s["rss_bytes"]) for s in samples], 30, 20).model_dump(),
                        "fds": growth([(s["t_s"], s["open_fds"]) for s in samples], 30, 20).model_dump(),
                        "restart": {"ready_s": 40.0}}
    met = [t.model_dump() for t in targets(figs)]
    report = {"machine": {"cpu_model": "cpu", "nproc": 2, "date": "today"}, "command": "python -m loadtests.soak",
              "config": {"duration_s": 100, "concurrency": 4}, "figures": figs, "targets": met,
              "passed": all(t["met"] for t in met),
              "series": {"p95": p95_series(results, 30, 100), "samples": samples}}
    text = markdown(report)
    assert "**FAIL**" in text and "| valid requests that failed | 0 | 1 | NO |" in text
    assert "## Failures (first 1)" in text and "growth +0.0%" in text
    plot(report, tmp_path / "soak.png")
    assert (tmp_path / "soak.png").stat().st_size > 0
