"""`loragate serve`: start the HTTP service (every setting is a flag; see `--help`)."""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError

from service.config import Settings, load_settings


def run(argv: list[str]) -> int:
    try:
        settings = load_settings(argv)
    except ValidationError as exc:
        print(f"loragate serve: invalid settings\n{exc}", file=sys.stderr)
        return 2
    _prepare_if_default(settings)
    import uvicorn

    from service.api import create_app

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level, timeout_graceful_shutdown=30)
    return 0


def _prepare_if_default(settings: Settings) -> None:
    if settings.model is None:
        from service.model_prep import prepare_default_model

        prepare_default_model(settings.default_model_dir)
