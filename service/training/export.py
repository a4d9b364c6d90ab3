"""Write the trained adapter as a standard PEFT folder the registry accepts, and check that it does."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from service.config import DEFAULT_MODEL_NAME

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
MAX_ADAPTER_BYTES = 10 * 2**20  # shipped adapters stay small enough to keep in git


def save_adapter(model: Any, output: Path, dtype: str, base_model_name: str = DEFAULT_MODEL_NAME) -> Path:
    """`save_pretrained`, naming the served base model (not the local folder trained from), with
    the weights cast to `dtype`."""
    for config in model.peft_config.values():
        config.base_model_name_or_path = base_model_name
    # No embedding layers are trained; "auto" would look the base name up on the Hub (offline here).
    model.save_pretrained(str(output), safe_serialization=True, save_embedding_layers=False)
    weights = Path(output) / WEIGHTS_FILE
    if dtype != "float32":
        tensors = load_file(str(weights))
        target = getattr(torch, dtype)
        save_file({k: v.to(target).contiguous() for k, v in tensors.items()}, str(weights), metadata={"format": "pt"})
    return weights


def validate_for_registry(output: Path, model_dir: Path, max_rank: int = 64) -> dict[str, Any]:
    """Run the registry's own validation on the folder (raises AdapterValidationError)."""
    from service.adapters.validation import BaseModelShape, inspect_adapter

    # Only what is registered: the folder may still hold the run's checkpoint (pickled optimizer
    # state), which the registry rightly refuses and which is deleted once the run is done.
    with tempfile.TemporaryDirectory() as staging:
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            shutil.copy2(Path(output) / name, Path(staging) / name)
        inspection = inspect_adapter(
            Path(staging), BaseModelShape.from_model_dir(model_dir), max_rank=max_rank,
            max_size_bytes=256 * 2**20,
        )
    size = (Path(output) / WEIGHTS_FILE).stat().st_size + (Path(output) / CONFIG_FILE).stat().st_size
    if size > MAX_ADAPTER_BYTES:
        raise ValueError(f"adapter is {size / 2**20:.1f} MiB, above {MAX_ADAPTER_BYTES / 2**20:.0f} MiB; "
                         "lower --rank or target fewer modules")
    return {"rank": inspection.rank, "target_modules": inspection.target_modules,
            "weights_sha256": inspection.weights_sha256, "adapter_bytes": size}
