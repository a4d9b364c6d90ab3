"""`inspect_adapter`: run every check on an adapter folder, cheapest first, and summarise it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from service.adapters.validation.base_shape import BaseModelShape
from service.adapters.validation.errors import fail
from service.adapters.validation.folder import CONFIG_FILE, WEIGHTS_FILE, scan_folder
from service.adapters.validation.peft_config import check_peft_config
from service.adapters.validation.task_policy import read_triage_policy
from service.adapters.validation.weights import check_tensors, read_safetensors_header


class AdapterInspection(BaseModel):
    """What a valid adapter holds. `target_modules` lists the modules that actually have weights."""

    rank: int
    alpha: float
    target_modules: list[str]
    base_model_name_or_path: str | None
    use_rslora: bool = False
    rank_pattern: dict[str, int] = Field(default_factory=dict)
    alpha_pattern: dict[str, float] = Field(default_factory=dict)
    max_rank: int  # largest rank any module actually uses
    num_layers: int  # layers that carry LoRA weights
    num_tensors: int
    weights_sha256: str
    size_bytes: int
    files: list[str]  # relative to the adapter folder, sorted


def inspect_adapter(
    folder: Path,
    base: BaseModelShape,
    max_rank: int,
    max_size_bytes: int,
) -> AdapterInspection:
    """Validate a PEFT LoRA folder against `base`; raise AdapterValidationError naming the problem."""
    folder = Path(folder)
    try:
        folder = folder.resolve(strict=True)
    except FileNotFoundError:
        raise fail(f"Adapter folder {str(folder)!r} does not exist.", "adapter_not_found", status=404) from None
    except (OSError, RuntimeError) as exc:
        raise fail(f"Adapter folder cannot be resolved: {exc}.", "invalid_adapter_path") from exc
    if not folder.is_dir():
        raise fail(f"Adapter path {str(folder)!r} is not a folder.", "invalid_adapter_path")

    # Cheap, file-opening-free checks first: pickles and size come before any parsing.
    files, total_size = scan_folder(folder, max_size_bytes)
    for required in (CONFIG_FILE, WEIGHTS_FILE):
        if required not in files:
            raise fail(
                f"Adapter folder has no {required}; a PEFT LoRA adapter needs {CONFIG_FILE} and {WEIGHTS_FILE}.",
                "missing_adapter_file",
            )

    config = check_peft_config(folder, base, max_rank)
    tensors, sha256, _ = read_safetensors_header(folder / WEIGHTS_FILE)
    modules, layers, largest = check_tensors(tensors, base, config)
    read_triage_policy(folder)  # an adapter may ship its calibrated triage policy: refused if malformed

    return AdapterInspection(
        rank=config.r,
        alpha=float(config.alpha),
        target_modules=sorted(modules),
        base_model_name_or_path=config.base_model_name_or_path,
        use_rslora=config.use_rslora,
        rank_pattern=config.rank_pattern,
        alpha_pattern=config.alpha_pattern,
        max_rank=largest,
        num_layers=len(layers),
        num_tensors=len(tensors),
        weights_sha256=sha256,
        size_bytes=total_size,
        files=files,
    )
