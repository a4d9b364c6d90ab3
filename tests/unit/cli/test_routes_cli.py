"""`loragate routes`: requests sent to the admin API and what is printed, via httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from service.cli import routes as cli
from service.observability.route_report import build_route_report
from service.observability.stats import OutcomeSample, RequestSample
from service.routing.patch import merge_patch

NOW = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC

ROUTE = {
    "name": "ticket-triage", "version": 3, "updated_at": "2025-06-15T15:00:00Z", "rollbacks": {},
    "spec": {"variants": [{"target": "triage-v1", "weight": 90}, {"target": "triage-v2", "weight": 10}],
             "shadow": {"target": "triage-v3", "fraction": 0.1}, "guard": None},
}


class Recorder:
    """A MockTransport handler that records requests and answers with one canned response."""

    def __init__(self, status: int = 200, payload: object | None = None) -> None:
        self.status = status
        self.payload = payload
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status == 204:
            return httpx.Response(204)
        return httpx.Response(self.status, json=self.payload)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    @property
    def body(self) -> dict:
        return json.loads(self.requests[-1].content)


def run(argv: list[str], recorder: Recorder | Callable) -> int:
    transport = recorder.transport if isinstance(recorder, Recorder) else httpx.MockTransport(recorder)
    return cli.run(argv, transport=transport)


# --------------------------------------------------------------------------------------------
# requests
# --------------------------------------------------------------------------------------------


def test_list_prints_a_table(capsys) -> None:
    server = Recorder(payload={"object": "list", "data": [ROUTE]})
    assert run(["list"], server) == 0
    (request,) = server.requests
    assert request.method == "GET" and str(request.url) == "http://127.0.0.1:8000/admin/routes"
    assert "authorization" not in request.headers
    out = capsys.readouterr().out
    assert "ticket-triage" in out and "triage-v1=90 triage-v2=10" in out and "triage-v3 (10%)" in out


def test_list_json_and_empty(capsys) -> None:
    assert run(["list", "--json"], Recorder(payload={"object": "list", "data": []})) == 0
    assert json.loads(capsys.readouterr().out) == {"object": "list", "data": []}
    assert run(["list"], Recorder(payload={"object": "list", "data": []})) == 0
    assert capsys.readouterr().out.strip() == "no routes"


def test_show_url_and_api_key(capsys) -> None:
    server = Recorder(payload=ROUTE)
    assert run(["--url", "http://gate:9000/", "--api-key", "s3cret", "show", "ticket-triage"], server) == 0
    (request,) = server.requests
    assert str(request.url) == "http://gate:9000/admin/routes/ticket-triage"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert json.loads(capsys.readouterr().out) == ROUTE


class RouteServer:
    """A route store behind the admin API: GET, PUT (replaces) and PATCH (JSON merge patch, as the
    service applies it), recording every request."""

    def __init__(self, spec: dict | None = None) -> None:
        self.spec = spec
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "GET" and self.spec is None:
            return httpx.Response(404, json={"error": {"message": "No route named `r` exists.", "type": "x"}})
        if request.method == "PUT":
            self.spec = json.loads(request.content)
        elif request.method == "PATCH":
            assert request.headers["content-type"] == "application/merge-patch+json"
            self.spec = merge_patch(self.spec, json.loads(request.content))
        return httpx.Response(200, json={**ROUTE, "spec": self.spec})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def calls(self) -> list[str]:
        return [request.method for request in self.requests]


def test_set_creates_a_missing_route_with_the_whole_spec(capsys) -> None:
    server = RouteServer()
    argv = ["set", "ticket-triage", "--variant", "triage-v1=90", "--variant", "triage-v2=10.5",
            "--shadow", "triage-v3", "--shadow-fraction", "0.1", "--guard-max-error-rate", "0.05",
            "--guard-max-invalid-rate", "0.02", "--guard-max-p95-ratio", "1.5", "--guard-min-samples", "50"]
    assert cli.run(argv, transport=server.transport) == 0
    assert server.calls() == ["GET", "PUT"] and server.requests[1].url.path == "/admin/routes/ticket-triage"
    assert json.loads(server.requests[1].content) == {
        "variants": [{"target": "triage-v1", "weight": 90}, {"target": "triage-v2", "weight": 10.5}],
        "shadow": {"target": "triage-v3", "fraction": 0.1},
        "guard": {"max_error_rate": 0.05, "max_invalid_rate": 0.02, "max_p95_latency_ratio": 1.5, "min_samples": 50},
    }
    assert json.loads(capsys.readouterr().out)["version"] == 3


def test_set_without_shadow_or_guard_creates_them_null() -> None:
    server = RouteServer()
    assert cli.run(["set", "r", "--variant", "base=1"], transport=server.transport) == 0
    assert json.loads(server.requests[-1].content) == {
        "variants": [{"target": "base", "weight": 1}], "shadow": None, "guard": None}


def test_set_changes_only_what_its_options_name() -> None:
    """The README's walkthrough: step 2 names the weights and min_samples; step 1's thresholds stay."""
    server = RouteServer()
    step1 = ["set", "r", "--variant", "base=90", "--variant", "v2=10", "--guard-max-error-rate", "0.05",
             "--guard-max-invalid-rate", "0.02", "--guard-max-p95-ratio", "2", "--guard-min-samples", "20"]
    assert cli.run(step1, transport=server.transport) == 0
    step2 = ["set", "r", "--variant", "base=50", "--variant", "v2=50", "--guard-min-samples", "50"]
    assert cli.run(step2, transport=server.transport) == 0
    assert server.calls() == ["GET", "PUT", "GET", "PATCH"]
    assert json.loads(server.requests[-1].content) == {
        "variants": [{"target": "base", "weight": 50}, {"target": "v2", "weight": 50}], "guard": {"min_samples": 50}}
    assert server.spec["guard"] == {"max_error_rate": 0.05, "max_invalid_rate": 0.02, "max_p95_latency_ratio": 2,
                                    "min_samples": 50}
    # only the shadow fraction, then no guard: the rest stays
    server.spec["shadow"] = {"target": "v3", "fraction": 0.1}
    assert cli.run(["set", "r", "--shadow-fraction", "0.25"], transport=server.transport) == 0
    assert json.loads(server.requests[-1].content) == {"shadow": {"fraction": 0.25}}
    assert cli.run(["set", "r", "--clear-guard"], transport=server.transport) == 0
    assert json.loads(server.requests[-1].content) == {"guard": None}
    assert server.spec == {"variants": [{"target": "base", "weight": 50}, {"target": "v2", "weight": 50}],
                           "shadow": {"target": "v3", "fraction": 0.25}}
    assert cli.run(["set", "r", "--clear-shadow"], transport=server.transport) == 0
    assert "shadow" not in server.spec


def test_set_refuses_a_shadow_fraction_for_a_route_without_shadow(capsys) -> None:
    server = RouteServer({"variants": [{"target": "base", "weight": 1}]})
    with pytest.raises(SystemExit) as exc:
        cli.run(["set", "r", "--shadow-fraction", "0.1"], transport=server.transport)
    assert exc.value.code == 2 and server.calls() == ["GET"]  # nothing written
    assert "has no shadow" in capsys.readouterr().err


def test_creating_a_route_needs_variants(capsys) -> None:
    server = RouteServer()
    with pytest.raises(SystemExit) as exc:
        cli.run(["set", "r", "--guard-min-samples", "5"], transport=server.transport)
    assert exc.value.code == 2 and server.calls() == ["GET"]
    assert "--variant" in capsys.readouterr().err


def test_set_from_file_with_overrides(tmp_path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "variants": [{"target": "a", "weight": 50}, {"target": "b", "weight": 50}],
        "shadow": {"target": "c", "fraction": 0.2},
        "guard": {"max_error_rate": 0.1, "min_samples": 30},
    }))
    server = Recorder(payload=ROUTE)
    assert run(["set", "r", "--file", str(spec)], server) == 0
    assert server.body["variants"] == [{"target": "a", "weight": 50}, {"target": "b", "weight": 50}]
    # options replace the variants, adjust the shadow fraction and override single guard fields
    assert run(["set", "r", "--file", str(spec), "--variant", "a=80", "--variant", "b=20",
                "--shadow-fraction", "0.05", "--guard-min-samples", "100"], server) == 0
    assert server.body == {
        "variants": [{"target": "a", "weight": 80}, {"target": "b", "weight": 20}],
        "shadow": {"target": "c", "fraction": 0.05},
        "guard": {"max_error_rate": 0.1, "min_samples": 100},
    }
    assert run(["set", "r", "--file", str(spec), "--no-shadow", "--no-guard"], server) == 0
    assert server.body["shadow"] is None and server.body["guard"] is None
    assert run(["set", "r", "--file", str(spec), "--clear-shadow", "--clear-guard"], server) == 0
    assert server.body["shadow"] is None and server.body["guard"] is None
    assert {r.method for r in server.requests} == {"PUT"}  # --file: the whole route, never read first


@pytest.mark.parametrize("argv", [
    ["set", "r"],  # nothing to set
    ["set", "r", "--variant", "v1"],  # no weight
    ["set", "r", "--variant", "v1=lots"],
    ["set", "r", "--variant", "=5"],
    ["set", "r", "--variant", "v1=1", "--shadow", "v3"],  # no fraction
    ["set", "r", "--variant", "v1=1", "--no-guard", "--guard-min-samples", "5"],
    ["set", "r", "--clear-guard", "--guard-max-error-rate", "0.1"],
    ["set", "r", "--clear-shadow", "--shadow-fraction", "0.1"],
    ["set", "r", "--file", "/nonexistent/spec.json"],
    ["report", "r", "--window", "0"],
])
def test_usage_errors_exit_2_without_a_request(argv, capsys) -> None:
    server = Recorder(payload=ROUTE)
    with pytest.raises(SystemExit) as exc:
        run(argv, server)
    assert exc.value.code == 2
    assert server.requests == []
    assert "error:" in capsys.readouterr().err


def test_delete(capsys) -> None:
    server = Recorder(status=204)
    assert run(["delete", "ticket-triage"], server) == 0
    assert server.requests[0].method == "DELETE" and server.requests[0].url.path == "/admin/routes/ticket-triage"
    assert capsys.readouterr().out.strip() == "deleted route ticket-triage"


def test_names_are_escaped_in_the_path() -> None:
    server = Recorder(payload=ROUTE)
    assert run(["show", "a/b c"], server) == 0
    assert server.requests[0].url.raw_path == b"/admin/routes/a%2Fb%20c"


def test_server_error_prints_the_message(capsys) -> None:
    error = {"error": {"message": "adapter 'triage-v9' is not registered", "type": "invalid_request_error",
                       "param": None, "code": "adapter_not_found"}}
    assert run(["set", "r", "--variant", "triage-v9=1"], Recorder(status=400, payload=error)) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == "error (400): adapter 'triage-v9' is not registered"
    assert captured.out == ""


def test_unreachable_server(capsys) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    assert run(["list"], refuse) == 1
    assert "cannot reach http://127.0.0.1:8000" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def sample_report() -> dict:
    """A real report: triage-v2 errs and is slower; triage-v3 shadows; triage-v2 was rolled back."""
    samples, outcomes = [], []
    for i in range(200):
        samples.append(RequestSample(
            finished_at=NOW - 60, base_model="qwen", model="triage-v1", route="ticket-triage", variant="triage-v1",
            endpoint="triage", status=500 if i < 2 else 200, duration_s=0.80 + (i % 50) / 250,
            ttft_s=0.10 + (i % 10) / 500, prompt_tokens=180, completion_tokens=40 + i % 7,
            structured_output="valid" if i % 40 else "invalid", shadow=False))
        outcomes.append(OutcomeSample(NOW - 60, "ticket-triage", "triage-v1", False,
                                      (("category", ("billing", "bug", "account", "billing")[i % 4]),
                                       ("priority", ("high", "low")[i % 2]))))
    for i in range(60):
        samples.append(RequestSample(
            finished_at=NOW - 60, base_model="qwen", model="triage-v2", route="ticket-triage", variant="triage-v2",
            endpoint="triage", status=500 if i < 9 else 200, duration_s=1.10 + (i % 30) / 120,
            ttft_s=0.10 + (i % 10) / 500, prompt_tokens=180, completion_tokens=44 + i % 7,
            structured_output="valid", shadow=False))
        outcomes.append(OutcomeSample(NOW - 60, "ticket-triage", "triage-v2", False,
                                      (("category", ("billing", "bug")[i % 2]), ("priority", "high"))))
    for i in range(20):
        samples.append(RequestSample(
            finished_at=NOW - 60, base_model="qwen", model="triage-v3", route="ticket-triage", variant="triage-v3",
            endpoint="triage", status=200, duration_s=0.85 + (i % 10) / 50, ttft_s=0.11, prompt_tokens=180,
            completion_tokens=41, structured_output="valid", shadow=True))
    report = build_route_report("ticket-triage", samples, outcomes, 900, ["triage-v1", "triage-v2"],
                                rollbacks={"triage-v2": "error_rate 0.150 > 0.1 over 60 requests"},
                                generated_at=NOW)
    return json.loads(report.model_dump_json())


def test_report_prints_a_table(capsys) -> None:
    server = Recorder(payload=sample_report())
    assert run(["report", "ticket-triage", "--window", "600"], server) == 0
    (request,) = server.requests
    assert request.url.path == "/admin/routes/ticket-triage/report"
    assert request.url.params["window_seconds"] == "600"
    out = capsys.readouterr().out
    print(out)  # shown with `pytest -s`: the sample in the report of this change
    lines = out.splitlines()
    assert lines[0] == "Route ticket-triage: last 900 s (until 2025-06-15 15:06:40 UTC), control triage-v1"
    table = {line.split()[0]: line for line in lines[2:8] if line and not line.startswith(("VARIANT", "-"))}
    assert "triage-v1 (control)" in table["triage-v1"]
    assert table["triage-v1"].split()[2:5] == ["200", "2", "1.0%"]
    assert "[rolled back]" in table["triage-v2"] and "15.0%" in table["triage-v2"]
    assert "triage-v3 (shadow)" in table["triage-v3"]
    assert "    category: billing 100 (50%), account 50 (25%), bug 50 (25%)" in lines
    assert "  triage-v2: 4 significant differences" in lines
    assert any(line.startswith("    * triage-v2 error rate 14.0 points higher (95% CI 6.6 to 25.1)") for line in lines)
    assert any(line.startswith("    * triage-v2 p50 latency") and "higher" in line for line in lines)
    assert "  triage-v2: error_rate 0.150 > 0.1 over 60 requests" in lines


def test_report_names_the_route_version_and_where_its_figures_come_from(capsys) -> None:
    payload = {**sample_report(), "version": 4, "source": "in-process samples of this replica"}
    assert run(["report", "ticket-triage"], Recorder(payload=payload)) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "Route ticket-triage v4: last 900 s (until 2025-06-15 15:06:40 UTC), control triage-v1; "
        "figures: in-process samples of this replica")


def test_report_json(capsys) -> None:
    payload = sample_report()
    server = Recorder(payload=payload)
    assert run(["report", "ticket-triage", "--json"], server) == 0
    assert "window_seconds" not in server.requests[0].url.params
    assert json.loads(capsys.readouterr().out) == payload


def test_report_of_an_unknown_route(capsys) -> None:
    error = {"error": {"message": "route 'nope' not found", "type": "invalid_request_error", "code": "not_found"}}
    assert run(["report", "nope"], Recorder(status=404, payload=error)) == 1
    assert capsys.readouterr().err.strip() == "error (404): route 'nope' not found"
