"""The public schemas the integration test serves (tests/data/schemas): each passes the guard's
static checks, and its hand-checked example is valid under the reply validator (RE2 patterns,
format checker) and under the relaxed schema a backend may be given (relaxing only widens)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.structured import StructuredLimits, relaxed_schema
from service.structured.schema_checks import check_schema
from service.structured.validation import _validator

SCHEMAS = sorted((Path(__file__).parents[2] / "data" / "schemas").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_the_sample_is_wide() -> None:
    assert len(SCHEMAS) >= 50


@pytest.mark.parametrize("path", SCHEMAS, ids=[path.stem for path in SCHEMAS])
def test_a_public_schema_passes_the_guard_and_its_example_validates(path: Path) -> None:
    spec = _load(path)
    check_schema(spec["schema"], StructuredLimits(), "response_format")
    validator = _validator(json.dumps(spec["schema"], sort_keys=True))
    assert [error.message for error in validator.iter_errors(spec["example"])] == []
    relaxed = relaxed_schema(spec["schema"])
    if relaxed is not None:
        assert _validator(json.dumps(relaxed, sort_keys=True)).is_valid(spec["example"])
