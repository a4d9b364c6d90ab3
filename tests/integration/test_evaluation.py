"""`loragate eval` end to end against the real service: 4 tickets, the base model and an adapter,
both modes; every metric and output file present, values in range and consistent with n."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.evaluation.results import TriageMetrics
from service.testing import TICKETS_FILE
from service.testing.adapters import make_peft_adapter

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
N = 4
ADAPTER = "eval-style"
RATES = ("json_parse_rate", "schema_valid_rate", "category_accuracy", "priority_accuracy", "category_macro_f1",
         "priority_macro_f1")


@pytest.fixture(scope="module")
def adapter(base_url: str, adapter_source_dir: Path, model_dir: Path) -> str:
    folder = make_peft_adapter(model_dir, adapter_source_dir / ADAPTER, seed=21, weight_scale=0.5)
    response = httpx.post(f"{base_url}/admin/adapters", json={"name": ADAPTER, "path": str(folder)}, timeout=300)
    assert response.status_code == 201, response.text
    return ADAPTER


def _eval(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "service", "eval", *args], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_eval_triage_base_and_adapter(base_url: str, model: str, adapter: str, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = _eval("--dataset", str(TICKETS_FILE), "--targets", f"base,{adapter}", "--url", base_url,
                   "--out", str(out), "--limit", str(N), "--max-tokens", "64", "--concurrency", "4")
    print(f"\n{(out / 'report.md').read_text()}")
    assert f"[eval] target {adapter} unconstrained {N}/{N}" in result.stderr
    assert "| base | constrained |" in result.stdout and f"| {adapter} | unconstrained |" in result.stdout

    files = {path.name for path in out.iterdir()}
    assert {"report.md", "report.json", "accuracy.png", "confusion_base.png", f"confusion_{adapter}.png"} <= files
    for name in files:
        assert (out / name).stat().st_size > 0, name

    labels = [json.loads(line) for line in TICKETS_FILE.read_text().splitlines() if line.strip()][:N]
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == N and report["base_model"] == model and report["url"] == base_url
    assert report["dataset_sha256"] == hashlib.sha256(TICKETS_FILE.read_bytes()).hexdigest()
    assert [(r["target"], r["mode"], r["model"]) for r in report["results"]] == [
        ("base", "constrained", model), ("base", "unconstrained", model),
        (adapter, "constrained", adapter), (adapter, "unconstrained", adapter)]

    for result_ in report["results"]:
        m = result_["metrics"]
        where = f"{result_['target']} {result_['mode']}"
        assert set(TriageMetrics.model_fields) <= set(m), where
        assert len(result_["outcomes"]) == N and m["n"] == N
        assert m["errors"] == 0, (where, m["error_messages"])
        for key in RATES:
            assert m[key] is None or 0 <= m[key] <= 1, (where, key, m[key])
        # invalid outputs count as wrong, so accuracy can never beat validity, nor validity parsing
        assert m["category_accuracy"] <= m["schema_valid_rate"] <= m["json_parse_rate"], where
        assert m["priority_accuracy"] <= m["schema_valid_rate"], where
        correct = round(m["category_accuracy"] * N)
        assert m["misrouted"] == N - correct and m["misrouted_per_1000"] == pytest.approx(1000 * (N - correct) / N)
        for name in ("category", "priority"):
            confusion = m[f"{name}_confusion"]
            assert sum(map(sum, confusion["matrix"])) == N
            for label, row in zip(confusion["rows"], confusion["matrix"]):
                assert sum(row) == sum(t[f"expected_{name}"] == label for t in labels), (where, name, label)
            diagonal = sum(confusion["matrix"][i][i] for i in range(len(confusion["rows"])))
            assert diagonal == round(m[f"{name}_accuracy"] * N)
            invalid = sum(row[-1] for row in confusion["matrix"])
            assert invalid == N - round(m["schema_valid_rate"] * N)
        urgent = sum(t["expected_priority"] == "urgent" for t in labels)
        assert m["urgent_tickets"] == urgent and 0 <= m["urgent_missed"] <= urgent
        assert m["urgent_recall"] == pytest.approx((urgent - m["urgent_missed"]) / urgent)
        assert m["over_escalations"] + m["under_escalations"] <= round(m["schema_valid_rate"] * N)
        assert m["over_escalations_per_1000"] == pytest.approx(1000 * m["over_escalations"] / N)
        assert m["under_escalations_per_1000"] == pytest.approx(1000 * m["under_escalations"] / N)
        assert 0 < m["latency_p50_ms"] <= m["latency_p95_ms"] < 600_000
        # constrained: tokens come from `meta`, absent when every ticket was a 502
        assert m["mean_prompt_tokens"] > 50 or (result_["mode"] == "constrained" and m["mean_prompt_tokens"] is None)
        if m["mean_completion_tokens"] is not None:
            assert 0 < m["mean_completion_tokens"] <= (64 if result_["mode"] == "unconstrained" else 1024)

    text = (out / "report.md").read_text()
    assert report["dataset_sha256"] in text and base_url in text and f"n = {N}" in text
    assert "## Confusion matrices" in text and "loragate eval --dataset" in text


def test_eval_voice_base(base_url: str, tmp_path: Path) -> None:
    dataset = tmp_path / "voice.jsonl"
    dataset.write_text(json.dumps({"message": "Hi, where is my order 4417? It was due Monday.",
                                   "reply": "Hello! Order 4417 ships today. Best regards, the team"}) + "\n"
                       + json.dumps({"message": "How do I change my password?"}) + "\n")
    out = tmp_path / "voice"
    _eval("--voice", "--dataset", str(dataset), "--url", base_url, "--out", str(out), "--max-tokens", "48")
    assert {"report.md", "report.json", "voice.png"} <= {path.name for path in out.iterdir()}
    report = json.loads((out / "report.json").read_text())
    (result,) = report["results"]
    assert result["target"] == "base" and result["metrics"]["n"] == 2 and result["metrics"]["errors"] == 0
    measures = result["metrics"]["measures"]
    for key in ("greeting_rate", "sign_off_rate", "answer_share", "reference_f1"):
        assert measures[key] is not None and 0 <= measures[key] <= 1, key
    assert measures["words"] > 0 and result["metrics"]["delta_vs_base"]["words"] == 0
