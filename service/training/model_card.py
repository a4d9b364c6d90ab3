"""The adapter's README.md (Hugging Face model card convention), `loss.png` and `training_metrics.json`.

The card pins what the adapter was made from (base model and data hashes, seed, settings), so a
run can be repeated and an adapter can be matched to the base model it needs.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from service.config import DEFAULT_MODEL_NAME
from service.model_prep import MANIFEST_NAME, read_manifest, sha256_file
from service.observability.stats import mean
from service.training.config import TrainingConfig
from service.training.recipes import project_path

HUB_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what `base_model` means on the Hub
LICENSE = "apache-2.0"  # the base model's and the project's licence


class RunSummary(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    config: TrainingConfig
    model_dir: Path
    train_file: Path
    validation_file: Path
    train_examples: int
    skipped_train: int
    validation_examples: int
    skipped_validation: int
    steps: int
    tokens: int
    training_s: float
    evaluation_s: float
    wall_s: float
    threads: int
    machine: str
    metrics: dict[str, Any]
    adapter: dict[str, Any]
    log: list[dict[str, Any]]


def base_model_hashes(model_dir: Path) -> dict[str, str]:
    """sha256 of the base weights (from the prepared folder's manifest when there is one) and of
    the manifest itself."""
    manifest = read_manifest(model_dir)
    hashes: dict[str, str] = {}
    weights = model_dir / "model.safetensors"
    if manifest is not None and "model.safetensors" in manifest.files:
        hashes["model.safetensors"] = manifest.files["model.safetensors"]
        hashes[MANIFEST_NAME] = sha256_file(model_dir / MANIFEST_NAME)
    elif weights.is_file():
        hashes["model.safetensors"] = sha256_file(weights)
    return hashes


def plot_loss(log: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(row["step"], row["loss"]) for row in log if "loss" in row]
    val = [(row["step"], row["val_loss"]) for row in log if "val_loss" in row]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        steps, losses = zip(*train)
        ax.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=1, label="training loss (per step)")
        smooth, ema = [], losses[0]
        for value in losses:
            ema = 0.9 * ema + 0.1 * value
            smooth.append(ema)
        ax.plot(steps, smooth, color="tab:blue", linewidth=2, label="training loss (EMA 0.9)")
    if val:
        ax.plot(*zip(*val), "o-", color="tab:orange", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy per answer token")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s"


def _metric_rows(metrics: dict[str, Any]) -> list[str]:
    rows = []
    for key, value in metrics.items():
        if isinstance(value, float):
            rows.append(f"| {key} | {value:.4f} |")
        elif isinstance(value, int):
            rows.append(f"| {key} | {value} |")
        elif isinstance(value, dict):
            rows.append(f"| {key} | {', '.join(f'{k} {v:.2f}' for k, v in value.items())} |")
    return rows


def _extra_line(c: TrainingConfig) -> str:
    if not c.mixes_extra:
        return ""
    return f"\n- Mixed in: every example of `{c.extra_train_file}`, {c.extra_train_repeat} times"


def triage_loss_rows(c: TrainingConfig) -> list[tuple[str, object]]:
    """The ticket-triage answer's loss weights (other recipes train on plain weights)."""
    return [
        ("category token loss weight", c.class_token_weight),
        ("priority token loss weight", c.priority_weight),
        ("restated quote mark loss weight", c.quote_token_weight),
        ("label balancing", "inverse label frequency" if c.balance_labels else "none"),
    ]


def render_card(s: RunSummary, base_hashes: dict[str, str], data_hashes: dict[str, str]) -> str:
    c = s.config
    front = {"base_model": HUB_BASE_MODEL, "library_name": "peft", "license": LICENSE,
             "tags": ["lora", "peft", "loragate", c.recipe, "smollm2"], "pipeline_tag": "text-generation"}
    yaml = "\n".join(f"{k}: {json.dumps(v)}" if isinstance(v, list) else f"{k}: {v}" for k, v in front.items())
    train_losses = [row["loss"] for row in s.log if "loss" in row]
    final = mean(train_losses[-10:]) or 0.0
    hyper = [
        ("LoRA rank r", c.rank), ("LoRA alpha", c.alpha), ("LoRA dropout", c.dropout),
        ("target modules", ", ".join(c.target_modules)), ("learning rate", c.learning_rate),
        ("schedule", f"{c.schedule}, {c.warmup_ratio:.0%} linear warmup, decays to 10%"),
        ("weight decay", c.weight_decay),
        *(triage_loss_rows(c) if c.recipe == "ticket-triage" else []),
        ("optimizer", f"AdamW, grad-norm clip {c.max_grad_norm}"),
        ("batch", f"{c.batch_size} sequences x {c.grad_accum} accumulation = {c.batch_size * c.grad_accum}"),
        ("optimizer steps", s.steps), ("epochs", f"{s.steps * c.batch_size * c.grad_accum / s.train_examples:.2f}"),
        ("max length", f"{c.max_length} tokens (longer examples skipped)"), ("seed", c.seed),
        ("precision", f"fp32 training, weights saved as {c.save_dtype}"),
    ]
    samples = "\n".join(f"- `{x['id']}`: `{x['output'][:300]}`" for x in s.metrics.get("samples", []))
    return f"""---
{yaml}
---

# {c.recipe} LoRA adapter for {DEFAULT_MODEL_NAME}

A LoRA adapter of [{HUB_BASE_MODEL}](https://huggingface.co/{HUB_BASE_MODEL}), trained with
`loragate train --recipe {c.recipe}`. Register it with a running loragate server:
`loragate adapters add {c.recipe} <path of this folder>`.

## Base model

- Name: `{DEFAULT_MODEL_NAME}` (the folder made by `loragate prepare-model`; `adapter_config.json` names it)
""" + "\n".join(f"- sha256 of `{name}`: `{digest}`" for name, digest in base_hashes.items()) + f"""

## Training data

- Recipe: `{c.recipe}` (generator in `adapters/recipes/`, tables in `adapters/recipes/tables/`, data in
  `adapters/data/`), seed {c.seed}
""" + "\n".join(f"- `{name}` sha256 `{digest}`" for name, digest in data_hashes.items()) + f"""
- Training examples used: {s.train_examples}{f" (first {c.train_limit})" if c.train_limit else ""}, \
{s.skipped_train} skipped as longer than {c.max_length} tokens{_extra_line(c)}
- Validation examples: {s.validation_examples} ({s.skipped_validation} skipped)
- Format: the prompt exactly as the server renders it (chat template, generation prompt); loss on the
  answer tokens only, the answer ending with `<|im_end|>`.

## Hyperparameters

Why the recipe's defaults are what they are, and what each version changed: `adapters/evaluation/README.md`.

| setting | value |
|---|---|
""" + "\n".join(f"| {name} | {value} |" for name, value in hyper) + f"""

## Training

- Training time: {_duration(s.training_s)} ({s.tokens:,} tokens, {s.tokens / max(s.training_s, 1e-9):.0f} tokens/s); \
validation {_duration(s.evaluation_s)}
- Machine: {s.machine}; {s.threads} torch threads
- Final training loss (mean of the last 10 steps): {final:.4f}
- Finished: {datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}

![loss curve](loss.png)

## Validation metrics

Greedy, unconstrained generation with transformers + peft (fp32) on the first validation examples.

| metric | value |
|---|---|
""" + "\n".join(_metric_rows({k: v for k, v in s.metrics.items() if k != "samples"})) + f"""

{"Sample outputs:" + chr(10) + chr(10) + samples if samples else ""}

## Adapter

- Weights sha256: `{s.adapter.get("weights_sha256", "")}` ({s.adapter.get("adapter_bytes", 0) / 2**20:.1f} MiB)
- Checked with loragate's registry validation against the base model's shapes.
"""


def write_model_card(output: Path, summary: RunSummary) -> None:
    base_hashes = base_model_hashes(summary.model_dir)
    c = summary.config
    data_files = [summary.train_file, summary.validation_file]
    if c.mixes_extra:
        data_files.insert(1, project_path(c.extra_train_file))
    data_hashes = {path.name: sha256_file(path) for path in data_files}
    plot_loss(summary.log, output / "loss.png", f"{summary.config.recipe}: LoRA r={summary.config.rank}")
    (output / "README.md").write_text(render_card(summary, base_hashes, data_hashes))
    metrics = {
        "recipe": summary.config.recipe, "steps": summary.steps, "train_examples": summary.train_examples,
        "validation_examples": summary.validation_examples, "tokens": summary.tokens,
        "training_s": round(summary.training_s, 1), "evaluation_s": round(summary.evaluation_s, 1),
        "final_train_loss": next((row["loss"] for row in reversed(summary.log) if "loss" in row), None),
        "validation": summary.metrics, "config": summary.config.model_dump(),
        "base_model": {"name": DEFAULT_MODEL_NAME, "sha256": base_hashes},
        "data_sha256": data_hashes, "adapter": summary.adapter, "machine": summary.machine,
    }
    (output / "training_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
