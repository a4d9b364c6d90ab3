"""Make real PEFT LoRA adapters for the default base model (used by tests and benchmarks; torch and
peft are imported on use)."""

from __future__ import annotations

import functools
import io
import tarfile
from collections.abc import Sequence
from pathlib import Path

DEFAULT_TARGETS = ("q_proj", "v_proj")
ALL_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@functools.lru_cache(maxsize=1)
def _base_model(model_dir: str):  # noqa: ANN202 - a transformers model
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def make_peft_adapter(
    model_dir: Path,
    out_dir: Path,
    *,
    rank: int = 8,
    alpha: int = 16,
    seed: int = 0,
    targets: Sequence[str] = DEFAULT_TARGETS,
    weight_scale: float = 1.0,
) -> Path:
    """Save a LoRA adapter with non-zero random weights (so it visibly changes the output)."""
    import torch
    from peft import LoraConfig, get_peft_model

    base = _base_model(str(model_dir))
    torch.manual_seed(seed)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    try:
        if weight_scale != 1.0:
            with torch.no_grad():
                for name, param in peft_model.named_parameters():
                    if "lora_" in name:
                        param.mul_(weight_scale)
        peft_model.save_pretrained(str(out_dir))
    finally:
        # Restore the shared base model for the next adapter.
        peft_model.unload()
    return out_dir


def tar_gz(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=folder.name)
    return buffer.getvalue()
