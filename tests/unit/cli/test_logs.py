"""`loragate serve` logging: one JSON object per line, the access log's fields at the top level."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from service.cli.logs import JsonFormatter, configure_logging
from service.config import Settings


def record(name: str, message: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(name, logging.WARNING, __file__, 1, message, (), None)
    rec.__dict__.update(extra)
    return rec


def test_app_records_are_json_lines() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        rec = logging.LogRecord("service.api.errors", logging.ERROR, __file__, 1, "request %s", ("failed",),
                                sys.exc_info())
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    entry = json.loads(line)
    assert (entry["level"], entry["logger"], entry["message"]) == ("error", "service.api.errors", "request failed")
    assert entry["ts"].endswith("Z") and "ValueError: bad" in entry["exc_info"]


def test_access_records_put_their_fields_at_the_top() -> None:
    fields = {"ts": "2025-01-01T00:00:00.000Z", "request_id": "r1", "status": 200}
    entry = json.loads(JsonFormatter().format(record("loragate.access", json.dumps(fields), json_fields=fields)))
    assert entry == {"ts": "2025-01-01T00:00:00.000Z", "level": "warning", "logger": "loragate.access",
                     "request_id": "r1", "status": 200}


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_configure_logging_picks_the_format(log_format: str) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(Settings(log_format=log_format, log_level="warning"))
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter) == (log_format == "json")
        assert root.level == logging.WARNING
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
