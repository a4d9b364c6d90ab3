"""`loragate serve`: start the HTTP service (every setting is a flag; see `--help`)."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from service.cli.logs import configure_logging
from service.config import Settings, load_settings


def run(argv: list[str]) -> int:
    try:
        settings = load_settings(argv)
    except ValidationError as exc:
        print(f"loragate serve: invalid settings\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings)  # JSON lines unless --log-format text
    from service.api.keys import AuthConfigError, key_ring_for

    try:
        key_ring_for(settings, warn=False)  # refuse keyless or insecure starts before preparing anything
    except AuthConfigError as exc:
        print(f"loragate serve: {exc}", file=sys.stderr)
        return 2
    _prepare_if_default(settings)
    from service.api import create_app
    from service.api.server import serve

    # SIGTERM drains then exits 0; a dead engine exits 3 (service/api/lifecycle.py).
    return serve(create_app(settings), settings.host, settings.port, settings.log_level,
                 log_config=None, access_log=False)  # our handlers; loragate.access replaces uvicorn's access log


def _prepare_if_default(settings: Settings) -> None:
    if settings.model is None:
        from service.model_prep import prepare_default_model

        prepare_default_model(settings.default_model_dir)
