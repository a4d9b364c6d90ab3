"""Resumable training state in `<output>/.checkpoint/`: LoRA weights, optimizer, scheduler, RNG.

Batches are a pure function of (seed, step) (see `BatchSchedule`), so the step number plus the
dropout RNG is all a resumed run needs to continue exactly where the interrupted one stopped.
A checkpoint is written beside the old one and swapped in, so a kill mid-write keeps the old one.
The running `train_log.jsonl` lives in the checkpoint folder too, so an adapter already in the
output folder stays whole (and servable) until the new run finishes and replaces it.
Tensors go to safetensors and the rest to JSON, never a pickle: the output folder is an adapter
folder, and the registry refuses any folder holding a pickle-format file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from safetensors.torch import load_file, save_file

CHECKPOINT_DIR = ".checkpoint"
_WEIGHTS = "lora.safetensors"
_OPTIMIZER = "optimizer.safetensors"  # AdamW moments and step counts, plus the torch RNG state
_OPTIMIZER_JSON = "optimizer.json"  # param groups and the scheduler's state
_META = "state.json"
LOG_FILE = "train_log.jsonl"


class CheckpointMeta(BaseModel):
    step: int  # optimizer steps completed
    elapsed_s: float  # training time so far, across resumed runs
    tokens: int  # tokens processed so far
    config: dict[str, Any]  # TrainingConfig.resume_key() of the run


def checkpoint_dir(output: Path) -> Path:
    return Path(output) / CHECKPOINT_DIR


def _existing(output: Path) -> Path | None:
    folder = checkpoint_dir(output)
    if (folder / _META).is_file():
        return folder
    old = folder.with_name(CHECKPOINT_DIR + ".old")  # left by a kill during the swap: put it back
    if (old / _META).is_file():
        shutil.rmtree(folder, ignore_errors=True)
        old.rename(folder)
        return folder
    return None


def live_log(output: Path) -> Path:
    """Where the running log is appended (moved into the output folder when the run finishes)."""
    folder = _existing(output) or checkpoint_dir(output)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / LOG_FILE


def has_checkpoint(output: Path) -> bool:
    return _existing(output) is not None


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(output: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, meta: CheckpointMeta) -> None:
    folder = checkpoint_dir(output)
    partial = folder.with_name(CHECKPOINT_DIR + ".partial")
    old = folder.with_name(CHECKPOINT_DIR + ".old")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file(trainable_state(model), str(partial / _WEIGHTS))
    state = optimizer.state_dict()
    tensors = {f"state.{index}.{key}": value.detach().clone().contiguous()
               for index, moments in state["state"].items() for key, value in moments.items()}
    tensors["torch_rng"] = torch.get_rng_state()
    save_file(tensors, str(partial / _OPTIMIZER))
    (partial / _OPTIMIZER_JSON).write_text(json.dumps(
        {"param_groups": state["param_groups"], "scheduler": scheduler.state_dict()}))
    (partial / _META).write_text(meta.model_dump_json(indent=2))
    if (folder / LOG_FILE).is_file():
        shutil.copy2(folder / LOG_FILE, partial / LOG_FILE)
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    partial.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def read_meta(output: Path) -> CheckpointMeta:
    folder = _existing(output)
    if folder is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(output)}")
    return CheckpointMeta.model_validate_json((folder / _META).read_text())


def load_checkpoint(output: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> CheckpointMeta:
    """Restore everything in place; return the checkpoint's metadata."""
    folder = _existing(output)
    if folder is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(output)}")
    weights = load_file(str(folder / _WEIGHTS))
    expected = {name for name, p in model.named_parameters() if p.requires_grad}
    if set(weights) != expected:
        raise ValueError("checkpoint weights do not match this model's LoRA parameters")
    model.load_state_dict(weights, strict=False)
    tensors = load_file(str(folder / _OPTIMIZER))
    extra = json.loads((folder / _OPTIMIZER_JSON).read_text())
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("state."):
            _, index, key = name.split(".", 2)
            moments.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": moments, "param_groups": extra["param_groups"]})
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(tensors["torch_rng"])
    return CheckpointMeta.model_validate_json((folder / _META).read_text())


def remove_checkpoint(output: Path) -> None:
    for suffix in ("", ".partial", ".old"):
        shutil.rmtree(checkpoint_dir(output).with_name(CHECKPOINT_DIR + suffix), ignore_errors=True)
