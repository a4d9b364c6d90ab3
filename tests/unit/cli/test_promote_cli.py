"""`loragate promote` against a fake server (httpx MockTransport): the eval runs on the control
and the candidate, the gate's report is stored either way, the rollout starts only on a pass
(naming the report), and usage errors never reach the server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.cli import promote

TICKETS = [("billing", "low"), ("technical", "urgent"), ("account", "medium"), ("shipping", "urgent"),
           ("returns", "high"), ("general", "low")]
ROUTE = {"name": "triage", "version": 3, "spec": {"variants": [{"target": "triage-v6", "weight": 1}]}, "rollout": None}


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "six.jsonl"
    path.write_text("".join(json.dumps({"id": i, "subject": f"Ticket {i}", "body": f"About {c}.", "category": c,
                                        "priority": p}) + "\n" for i, (c, p) in enumerate(TICKETS)))
    return path


class FakeServer:
    """The control triages every ticket right; the candidate calls every ticket `general`/`low`
    unless `good`."""

    def __init__(self, good: bool) -> None:
        self.good = good
        self.calls: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, request.url.path, body))
        path = request.url.path
        if path == "/health/ready":
            return httpx.Response(200, json={"status": "ready"})
        if path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "base"}, {"id": "triage-v6", "parent": "base"}]})
        if path == "/v1/tickets/triage":
            category, priority = next((c, p) for c, p in TICKETS if body["body"] == f"About {c}.")
            if body["model"] != "triage-v6" and not self.good:
                category, priority = "general", "low"
            triage = {"category": category, "priority": priority, "summary": "s", "suggested_action": "a"}
            return httpx.Response(200, json={"triage": triage, "meta": {"prompt_tokens": 5, "completion_tokens": 9}})
        if path == "/admin/routes/triage" and request.method == "GET":
            return httpx.Response(200, json=ROUTE)
        if path == "/admin/routes/triage/gate-reports":
            return httpx.Response(201, json={"id": "20250101T000000000000Z-triage-v7",
                                             "path": "gate-reports/triage/20250101T000000000000Z-triage-v7.json",
                                             "report": body})
        if path == "/admin/routes/triage/rollout":
            state = {"status": "progressing", "step_index": 0, "step": 5, "advanced_at": "2025-01-01T00:00:00Z",
                     "history": []}
            return httpx.Response(200, json={**ROUTE, "spec": {**ROUTE["spec"], "rollout": {**body, "min_samples": 50,
                                                                                              "min_interval_s": 300}},
                                             "rollout": state})
        return httpx.Response(404, json={"error": {"message": f"no route {path}"}})

    def posted(self, path: str) -> list[Any]:
        return [body for method, p, body in self.calls if method == "POST" and p == path]


def promote_with(server: FakeServer, dataset: Path, tmp_path: Path, *extra: str) -> int:
    return promote.run(["--route", "triage", "--candidate", "triage-v7", "--dataset", str(dataset), "--url",
                        "http://test", "--out", str(tmp_path / "out"), "--wait", "1", *extra],
                       transport=httpx.MockTransport(server))


def test_a_worse_candidate_is_refused_its_report_stored_and_no_rollout_started(
        dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = FakeServer(good=False)
    assert promote_with(server, dataset, tmp_path) == 1
    triaged = {b["model"] for b in server.posted("/v1/tickets/triage")}
    assert triaged == {"triage-v6", "triage-v7"} and len(server.posted("/v1/tickets/triage")) == 12
    [report] = server.posted("/admin/routes/triage/gate-reports")
    assert (report["candidate"], report["control"], report["passed"], report["n"]) == ("triage-v7", "triage-v6",
                                                                                         False, 6)
    assert [m["measure"] for m in report["measures"] if not m["passed"]] == ["category_accuracy", "priority_accuracy",
                                                                             "urgent_recall"]
    assert server.posted("/admin/routes/triage/rollout") == []
    out = capsys.readouterr()
    assert "Evaluation gate REFUSED" in out.out and "FAIL category_accuracy: candidate 0.167 (1/6, 95% CI" in out.out
    assert "refused: triage-v7 is worse than triage-v6" in out.err
    assert (tmp_path / "out" / "report.json").is_file()


def test_a_candidate_not_worse_starts_the_rollout_naming_its_report(dataset: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    server = FakeServer(good=True)
    assert promote_with(server, dataset, tmp_path, "--steps", "10,100", "--min-samples", "20",
                        "--measure", "category_accuracy,urgent_recall", "--tolerance", "urgent_recall=0.1") == 0
    [report] = server.posted("/admin/routes/triage/gate-reports")
    assert report["passed"] and {m["measure"]: m["tolerance"] for m in report["measures"]} == {
        "category_accuracy": 0.0, "urgent_recall": 0.1}
    [(_, _, body)] = [c for c in server.calls if c[1] == "/admin/routes/triage/rollout"]
    assert body == {"candidate": "triage-v7", "steps": [10, 100], "min_samples": 20}
    out = capsys.readouterr().out
    assert "Evaluation gate PASSED" in out and "rollout of triage-v7 against triage-v6" in out


def test_the_rollout_request_names_the_stored_report(dataset: Path, tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    server = FakeServer(good=True)

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return server(request)

    assert promote.run(["--route", "triage", "--candidate", "triage-v7", "--dataset", str(dataset), "--url",
                        "http://test", "--out", str(tmp_path / "out")], transport=httpx.MockTransport(recording)) == 0
    [start] = [r for r in seen if r.url.path == "/admin/routes/triage/rollout"]
    assert start.url.params["gate_report"] == "20250101T000000000000Z-triage-v7"


@pytest.mark.parametrize("extra, message", [
    (["--measure", "latency"], "--measure latency"),
    (["--tolerance", "1.5"], "must be in 0..1"),
    (["--tolerance", "urgent_recall=0.1", "--measure", "category_accuracy"], "not a measure of this gate"),
    (["--steps", "5,x"], "--steps"),
    (["--candidate", "triage-v6"], "is the route's control already"),
])
def test_usage_errors_exit_2_before_any_ticket_is_sent(extra: list[str], message: str, dataset: Path,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = FakeServer(good=True)
    with pytest.raises(SystemExit) as exited:
        promote_with(server, dataset, tmp_path, *extra)
    assert exited.value.code == 2 and message in capsys.readouterr().err
    assert server.posted("/v1/tickets/triage") == [] and server.posted("/admin/routes/triage/rollout") == []


def test_an_unknown_route_exits_3(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = promote.run(["--route", "nope", "--candidate", "triage-v7", "--dataset", str(dataset), "--url",
                        "http://test"], transport=httpx.MockTransport(FakeServer(good=True)))
    assert code == 3 and "route nope: 404" in capsys.readouterr().err
