"""Calibration through the eval runner, report and CLI, against a fake server whose triage replies
carry the probabilities of the hand-worked set (calibration_data)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from service.cli import evaluate
from service.evaluation import client as client_module
from service.evaluation.report import write_report
from service.evaluation.runner import EvalConfig, run_eval
from service.evaluation.thresholds import summarize_calibration
from tests.unit.evaluation.calibration_data import the_set

SET = the_set()
TICKETS = [{"id": o.id, "subject": f"t{o.id}", "body": "text", "category": o.true_category,
            "priority": o.true_priority} for o in SET]


def probability_server(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/health/ready":
        return httpx.Response(200, json={"status": "ready"})
    if request.url.path == "/v1/models":
        return httpx.Response(200, json={"object": "list", "data": [{"id": "tiny-base", "parent": None},
                                                                    {"id": "tuned", "parent": "tiny-base"}]})
    body = json.loads(request.content)
    assert request.url.path == "/v1/tickets/triage" and "probabilities" not in body  # asked with probabilities
    o = SET[int(body["subject"][1:])]
    meta = {"latency_ms": 5.0, "prompt_tokens": 100, "completion_tokens": 20, "input_truncated": False,
            "confidence": o.confidence, "probabilities": o.probabilities, "needs_review": o.needs_review,
            "review_reasons": o.review_reasons, "policy": o.policy}
    if o.id == "14":
        meta["confidence"] = {"category": "high"}  # malformed: read as absent, never as a number
    return httpx.Response(200, headers={"x-loragate-model": body["model"]}, json={
        "triage": {"category": o.category, "priority": o.priority, "summary": "s", "suggested_action": "a"},
        "meta": meta})


def _dataset(tmp_path: Path) -> Path:
    path = tmp_path / "tickets.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in TICKETS))
    return path


def test_outcomes_keep_the_reply_meta_and_the_report_shows_calibration(tmp_path: Path) -> None:
    config = EvalConfig(dataset=_dataset(tmp_path), targets=["tuned"], url="http://fake", modes=["constrained"])
    report = asyncio.run(run_eval(config, transport=httpx.MockTransport(probability_server)))
    result = report.results[0]
    first = result.outcomes[0]
    assert (first.probabilities, first.confidence, first.needs_review, first.review_reasons, first.policy) \
        == (SET[0].probabilities, SET[0].confidence, False, [], SET[0].policy)
    assert result.outcomes[14].confidence is None and result.outcomes[14].probabilities == SET[14].probabilities
    # The same figures as the set's summary (ticket 14's confidence comes from its probabilities).
    assert result.calibration == summarize_calibration(SET)
    assert result.calibration.served.coverage == pytest.approx(10 / 15)
    assert "ECE" in report.definitions

    written = {path.name for path in write_report(report, tmp_path / "out")}
    assert {"reliability_tuned.png", "coverage_tuned.png", "urgent_tuned.png"} <= written
    text = (tmp_path / "out" / "report.md").read_text()
    section = text[text.index("## Calibration"):text.index("## Confusion matrices")]
    assert "15 of 15 replies carry probabilities. Served policy: urgent threshold 0.35, review threshold 0.80" in section
    # As served: coverage 10 of 15, 9 right; urgent 3 of 5; 1 of 10 calm escalated; ECE 0.109 and 0.120.
    assert "| 66.7% (10) | 90.0% | 60.0% | 10.0% | 0.109 | 0.120 | 100.0% |" in section
    assert "![reliability](reliability_tuned.png)" in section and "![urgent](urgent_tuned.png)" in section
    assert "| 0.9-1.0 | 6 | 0.955 | 100.0% | 1 | 0.900 | 100.0% |" in section
    assert "| 0.80 (served) | 66.7% (10) | 90.0% |" in section
    assert "| 0.35 (served) | 60.0% | 10.0% |" in section
    assert "- urgent_threshold 0." in section and "- review_threshold 0." in section
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["results"][0]["calibration"]["served"]["ece"]["category"] == pytest.approx(0.109)


def test_no_probabilities_no_calibration_section(tmp_path: Path) -> None:
    def without(request: httpx.Request) -> httpx.Response:
        response = probability_server(request)
        if request.url.path == "/v1/tickets/triage":
            body = json.loads(response.content)
            for key in ("confidence", "probabilities", "needs_review", "review_reasons", "policy"):
                body["meta"].pop(key)
            return httpx.Response(200, json=body)
        return response

    config = EvalConfig(dataset=_dataset(tmp_path), targets=["tuned"], url="http://fake", modes=["constrained"])
    report = asyncio.run(run_eval(config, transport=httpx.MockTransport(without)))
    assert report.results[0].calibration is None and "ECE" not in report.definitions
    written = {path.name for path in write_report(report, tmp_path / "out")}
    assert written == {"accuracy.png", "confusion_tuned.png", "report.json", "report.md"}
    assert "## Calibration" not in (tmp_path / "out" / "report.md").read_text()


def _fake_network(monkeypatch: pytest.MonkeyPatch, handler) -> None:  # noqa: ANN001
    monkeypatch.setattr(client_module.httpx, "AsyncHTTPTransport", lambda **_: httpx.MockTransport(handler))


def test_calibrate_out_writes_the_thresholds_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _fake_network(monkeypatch, probability_server)
    target = tmp_path / "adapter" / "thresholds.json"
    code = evaluate.run(["--dataset", str(_dataset(tmp_path)), "--url", "http://fake", "--targets", "tuned",
                         "--modes", "constrained", "--out", str(tmp_path / "out"), "--calibrate-out", str(target)])
    assert code == 0
    saved = json.loads(target.read_text())
    expected = summarize_calibration(SET).choice
    assert saved["urgent_threshold"] == expected.urgent_threshold
    assert saved["review_threshold"] == expected.review_threshold and saved["priority_review_threshold"] == 0.0
    assert saved["temperature"] == expected.temperature.model_dump()
    on = saved["calibrated_on"]
    assert (on["dataset"], on["n"], on["target"], len(on["sha256"])) == (str(tmp_path / "tickets.jsonl"), 15, "tuned", 64)
    out = capsys.readouterr().out
    assert f"wrote {target}" in out and f"urgent_threshold {expected.urgent_threshold:.2f}: urgent recall" in out

    # A run whose replies carry no probabilities cannot be calibrated: exit 1, and why.
    _fake_network(monkeypatch, lambda request: probability_server(request) if request.url.path != "/v1/tickets/triage"
                  else httpx.Response(200, json={"triage": {"category": "billing", "priority": "low", "summary": "s",
                                                            "suggested_action": "a"}, "meta": {}}))
    assert evaluate.run(["--dataset", str(_dataset(tmp_path)), "--url", "http://fake", "--targets", "tuned",
                         "--modes", "constrained", "--out", str(tmp_path / "none"), "--calibrate-out",
                         str(tmp_path / "none.json")]) == 1
    assert "no reply carried probabilities" in capsys.readouterr().err and not (tmp_path / "none.json").exists()


@pytest.mark.parametrize("flags, message", [
    (["--targets", "base,tuned", "--calibrate-out", "x.json"], "needs --calibrate-target"),
    (["--targets", "tuned", "--calibrate-out", "x.json", "--calibrate-target", "base"], "is not one of --targets"),
    (["--calibrate-target", "tuned"], "needs --calibrate-out"),
    (["--modes", "unconstrained", "--calibrate-out", "x.json"], "needs the constrained mode"),
    (["--voice", "--calibrate-out", "x.json"], "needs the constrained mode"),
    (["--calibrate-priority-review-threshold", "1.5"], "must be in [0, 1]"),
])
def test_calibration_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str],
                                  message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        evaluate.run(["--dataset", str(_dataset(tmp_path)), *flags])
    assert exc.value.code == 2 and message in capsys.readouterr().err
