"""The eval runner and report against a fake server (httpx.MockTransport): no engine needed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from service.cli import evaluate
from service.evaluation import client as client_module
from service.evaluation.client import ServiceUnreachable
from service.evaluation.report import write_report
from service.evaluation.runner import EvalConfig, run_eval

TICKETS = [
    {"id": "a", "subject": "Charged twice", "body": "refund", "category": "billing", "priority": "high"},
    {"id": "b", "subject": "Down", "body": "outage", "expected_category": "technical", "expected_priority": "urgent"},
    {"id": "c", "subject": "Password", "body": "reset", "category": "account", "priority": "medium"},
]
TRIAGE = {"a": ("billing", "high"), "b": ("technical", "medium")}  # "c": no valid output (502)


def fake_server(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/health/ready":
        return httpx.Response(200, json={"status": "ready", "engine": "ready"})
    if request.url.path == "/v1/models":
        return httpx.Response(200, json={"object": "list", "data": [
            {"id": "tiny-base", "object": "model", "parent": None}, {"id": "tuned", "object": "model", "parent": "tiny-base"}]})
    body = json.loads(request.content)
    if body["model"] not in ("tiny-base", "tuned"):
        return httpx.Response(404, json={"error": {"message": "no such model", "type": "invalid_request_error",
                                                   "param": "model", "code": "model_not_found"}})
    headers = {"x-loragate-model": body["model"], "x-loragate-variant": "none"}
    if request.url.path == "/v1/tickets/triage":
        ticket_id = {"Charged twice": "a", "Down": "b", "Password": "c"}[body["subject"]]
        if ticket_id not in TRIAGE:
            return httpx.Response(502, json={"error": {"message": "no valid triage", "type": "upstream_error",
                                                       "param": None, "code": "generation_failed"}})
        category, priority = TRIAGE[ticket_id]
        return httpx.Response(200, headers=headers, json={
            "triage": {"category": category, "priority": priority, "summary": "s", "suggested_action": "a"},
            "meta": {"latency_ms": 5.0, "prompt_tokens": 120, "completion_tokens": 30, "route": "none", "variant": "none"}})
    assert request.url.path == "/v1/chat/completions"
    assert body["temperature"] == 0 and "response_format" not in body
    user = body["messages"][-1]["content"]
    if len(body["messages"]) == 1:  # voice
        content = "Hello! Order 42 ships today, gonna be quick." if "42" in user else "Sure."
    elif "Charged twice" in user:
        content = ' {"category": "billing", "priority": "urgent", "summary": "s", "suggested_action": "a"}\n'
    elif "Down" in user:
        content = '{"category": "technical"}'  # JSON, not schema-valid
    else:
        content = "The category is account."
    return httpx.Response(200, headers=headers, json={
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}})


def _dataset(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_triage_run_and_report(tmp_path: Path) -> None:
    config = EvalConfig(dataset=_dataset(tmp_path, TICKETS), targets=["base", "missing"], url="http://fake",
                        concurrency=2)
    report = asyncio.run(run_eval(config, transport=httpx.MockTransport(fake_server)))
    assert report.base_model == "tiny-base" and report.n == 3
    by_key = {(r.target, r.mode): r.metrics for r in report.results}
    assert list(by_key) == [("base", "constrained"), ("base", "unconstrained"),
                            ("missing", "constrained"), ("missing", "unconstrained")]
    constrained = by_key["base", "constrained"]
    assert constrained.errors == 0  # the 502 is a wrong answer, not an error
    assert constrained.schema_valid_rate == pytest.approx(2 / 3) and constrained.json_parse_rate == pytest.approx(2 / 3)
    assert constrained.category_accuracy == pytest.approx(2 / 3) and constrained.priority_accuracy == pytest.approx(1 / 3)
    assert (constrained.urgent_recall, constrained.urgent_missed, constrained.under_escalations) == (0.0, 1, 1)
    assert constrained.mean_prompt_tokens == 120 and constrained.served_by == {"tiny-base": 2}
    free = by_key["base", "unconstrained"]
    assert free.json_parse_rate == pytest.approx(2 / 3) and free.schema_valid_rate == pytest.approx(1 / 3)
    assert free.category_accuracy == pytest.approx(1 / 3) and free.over_escalations == 1
    assert free.mean_completion_tokens == 10
    missing = by_key["missing", "constrained"]
    assert missing.errors == 3 and missing.category_accuracy == 0.0
    assert list(missing.error_messages) == ["404 model_not_found: no such model"]

    written = write_report(report, tmp_path / "out")
    names = sorted(path.name for path in written)
    assert names == ["accuracy.png", "confusion_base.png", "confusion_missing.png", "report.json", "report.md"]
    assert all(path.stat().st_size > 0 for path in written)
    text = (tmp_path / "out" / "report.md").read_text()
    assert report.dataset_sha256 in text and "| base | constrained | 3 | 0 | 66.7% | 66.7% |" in text
    assert "## Confusion matrices" in text and "404 model_not_found" in text
    invalid = text[text.index("## Answers that are not schema-valid"):text.index("## Confusion matrices")]
    assert "### base, constrained: 1 of 3" in invalid and "- `c` (not JSON): `...502" in invalid
    assert "- `b` (JSON, not the schema): `...{\"category\": \"technical\"}`" in invalid
    assert "- `c` (not JSON): `...The category is account.`" in invalid
    assert "### missing" not in invalid  # errors are listed under Errors, not here
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["results"][0]["outcomes"][2]["status"] == 502


def test_voice_run_adds_base_and_reports_deltas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import service.training.recipes as recipes

    def missing(name: str) -> None:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(recipes, "recipe_module", missing)  # default style constants: stable expectations
    rows = [{"message": "Where is order 42?", "reply": "Hello, order 42 ships today."}, {"message": "thanks"}]
    config = EvalConfig(dataset=_dataset(tmp_path, rows), targets=["tuned"], url="http://fake", voice=True)
    report = asyncio.run(run_eval(config, transport=httpx.MockTransport(fake_server)))
    assert [r.target for r in report.results] == ["base", "tuned"]  # base added as the reference
    tuned = report.results[1].metrics
    assert tuned.n == 2 and tuned.errors == 0
    assert tuned.measures["greeting_rate"] == 0.5 and tuned.measures["answer_share"] == 1.0
    assert tuned.delta_vs_base == {key: (0.0 if value is not None else None) for key, value in tuned.measures.items()}
    written = write_report(report, tmp_path / "voice")
    assert sorted(p.name for p in written) == ["report.json", "report.md", "voice.png"]
    assert "Relative to the base model" in (tmp_path / "voice" / "report.md").read_text()


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"subject": "s"}\n')
    assert evaluate.run(["--dataset", str(bad), "--url", "http://127.0.0.1:9"]) == 2
    assert "line 1" in capsys.readouterr().err
    good = _dataset(tmp_path, TICKETS)
    assert evaluate.run(["--dataset", str(good), "--url", "http://127.0.0.1:9", "--timeout", "2"]) == 1
    assert "/v1/models" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.run(["--dataset", str(good), "--concurrency", "0"])


def test_modes_limit_the_run_to_the_named_triage_modes(tmp_path: Path) -> None:
    config = EvalConfig(dataset=_dataset(tmp_path, TICKETS), targets=["base", "tuned"], url="http://fake",
                        modes=["constrained"])
    report = asyncio.run(run_eval(config, transport=httpx.MockTransport(fake_server)))
    assert [(r.target, r.mode) for r in report.results] == [("base", "constrained"), ("tuned", "constrained")]
    written = write_report(report, tmp_path / "out")
    assert sorted(p.name for p in written) == ["accuracy.png", "confusion_base.png", "confusion_tuned.png",
                                               "report.json", "report.md"]


def test_unknown_mode_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        evaluate.run(["--dataset", str(_dataset(tmp_path, TICKETS)), "--modes", "constrained,fast"])
    assert exc.value.code == 2 and "--modes" in capsys.readouterr().err


def test_waits_while_the_service_is_starting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(client_module, "READY_POLL_S", 0.0)
    probes = []

    def starting_server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health/ready":
            probes.append(request)
            if len(probes) <= 2:
                return httpx.Response(503, json={"status": "unavailable", "engine": "starting"})
        elif len(probes) <= 2:
            return httpx.Response(503, json={"error": {"message": "The engine is starting", "type": "server_error",
                                                       "param": None, "code": "engine_unavailable"}})
        return fake_server(request)

    config = EvalConfig(dataset=_dataset(tmp_path, TICKETS), targets=["tuned"], url="http://fake",
                        modes=["constrained"])
    report = asyncio.run(run_eval(config, transport=httpx.MockTransport(starting_server)))
    assert len(probes) == 3
    assert report.results[0].metrics.errors == 0  # none of the 503s reached a ticket
    assert "waiting for http://fake/health/ready" in capsys.readouterr().err

    stuck = EvalConfig(dataset=_dataset(tmp_path, TICKETS), targets=["tuned"], url="http://fake", ready_wait_s=0.0)
    with pytest.raises(ServiceUnreachable, match="not ready after 0 s"):
        asyncio.run(run_eval(stuck, transport=httpx.MockTransport(
            lambda request: httpx.Response(503, json={"status": "unavailable", "engine": "starting"}))))
