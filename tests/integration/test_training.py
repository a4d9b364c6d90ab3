"""`loragate train` end to end on tiny runs: the output folder is a complete, registrable adapter,
and an interrupted run resumes to the same result as an uninterrupted one.

Runs the real CLI in a subprocess on the real base model (1 thread, a few short steps), with a
handful of made-up tickets so the test does not depend on the generated data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import PROJECT_ROOT, Settings

pytestmark = pytest.mark.integration

TINY = ["--recipe", "ticket-triage", "--train-limit", "8", "--max-steps", "2", "--validation-limit", "2",
        "--batch-size", "4", "--threads", "1", "--max-new-tokens", "24", "--seed", "7"]
CATEGORIES = ["billing", "technical", "account", "shipping", "returns", "general"]
PRIORITIES = ["low", "medium", "high", "urgent"]


def _ticket(i: int) -> dict:
    category, priority = CATEGORIES[i % 6], PRIORITIES[i % 4]
    return {
        "id": f"tiny-{i}", "subject": f"Question {i} about {category}",
        "body": f"Hello,\nI have a {category} problem (case {i}).\n" + "It started yesterday. " * (1 + i % 5),
        "customer_tier": ["free", "pro", None][i % 3], "channel": ["email", "web", None][i % 3],
        "metadata": {"order_id": f"A-{i}"} if i % 2 else None,
        "category": category, "priority": priority, "summary": f"Customer reports a {category} problem.",
        "suggested_action": f"Look into the {category} problem and reply.",
    }


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    if not (Settings().default_model_dir / "model.safetensors").is_file():
        pytest.skip("the default model is not prepared (run `loragate prepare-model`)")
    folder = tmp_path_factory.mktemp("train-data")
    train, validation = folder / "train.jsonl", folder / "validation.jsonl"
    train.write_text("".join(json.dumps(_ticket(i)) + "\n" for i in range(12)))
    validation.write_text("".join(json.dumps(_ticket(i)) + "\n" for i in range(100, 103)))
    return ["--train-file", str(train), "--validation-file", str(validation)]


def train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "train", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=600)


def steps(output: Path) -> list[dict]:
    log = output / "train_log.jsonl"
    if not log.exists():  # an unfinished run keeps its log with its checkpoint
        log = output / ".checkpoint" / "train_log.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return [row for row in rows if "loss" in row]


@pytest.fixture(scope="module")
def finished(data_files: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("tiny") / "adapter"
    result = train(*TINY, *data_files, "--output", str(output))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 2/2" in result.stderr
    return output


def test_tiny_run_writes_a_complete_adapter_folder(finished: Path) -> None:
    files = {p.name for p in finished.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "loss.png", "training_metrics.json",
            "train_log.jsonl"} <= files
    assert not (finished / ".checkpoint").exists()
    config = json.loads((finished / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "SmolLM2-135M-Instruct"
    assert config["peft_type"] == "LORA" and config["r"] == 16 and not config.get("use_dora")
    assert (finished / "adapter_model.safetensors").stat().st_size <= 10 * 2**20
    assert (finished / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    card = (finished / "README.md").read_text()
    front = card.split("---")[1]
    for key in ("base_model:", "library_name: peft", "license:", "tags:"):
        assert key in front
    for section in ("## Base model", "## Training data", "## Hyperparameters", "## Training", "## Validation metrics",
                    "![loss curve](loss.png)", "sha256"):
        assert section in card

    metrics = json.loads((finished / "training_metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["train_examples"] == 8
    for key in ("validation_loss", "json_parse_rate", "schema_valid_rate", "category_accuracy", "priority_accuracy"):
        assert key in metrics["validation"]
    assert [row["step"] for row in steps(finished)] == [1, 2]


def test_adapter_passes_registry_validation(finished: Path) -> None:
    from service.adapters.validation import BaseModelShape, inspect_adapter, read_safetensors_header

    inspection = inspect_adapter(finished, BaseModelShape.from_model_dir(Settings().default_model_dir),
                                 max_rank=64, max_size_bytes=20 * 2**20)
    assert inspection.target_modules == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert inspection.num_layers == 30
    tensors = read_safetensors_header(finished / "adapter_model.safetensors")[0]
    assert {t["dtype"] for name, t in tensors.items() if name != "__metadata__"} == {"BF16"}


def test_interrupted_run_resumes_to_the_same_result(finished: Path, data_files: list[str], tmp_path: Path) -> None:
    output = tmp_path / "adapter"
    first = train(*TINY, *data_files, "--output", str(output), "--stop-after", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert (output / ".checkpoint").is_dir() and not (output / "adapter_model.safetensors").exists()
    assert not (output / "train_log.jsonl").exists()  # a previous adapter there would stay whole
    assert [row["step"] for row in steps(output)] == [1]

    # Starting over without --resume, or resuming with other settings, is refused.
    assert train(*TINY, *data_files, "--output", str(output)).returncode == 2
    changed = train(*TINY, *data_files, "--output", str(output), "--resume", "--learning-rate", "0.1")
    assert changed.returncode == 2 and "learning_rate" in changed.stderr

    second = train(*TINY, *data_files, "--output", str(output), "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from step 1/2" in second.stderr
    assert not (output / ".checkpoint").exists() and (output / "adapter_model.safetensors").is_file()
    resumed, straight = steps(output), steps(finished)
    assert [row["step"] for row in resumed] == [1, 2]
    # Same batches, same dropout masks, same optimizer state: the same losses as the straight run.
    for a, b in zip(resumed, straight):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4)
