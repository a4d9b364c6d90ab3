"""The README documents every setting (flag and env var) that `loragate serve` accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import SETTING_NAMES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("field", sorted(SETTING_NAMES))
def test_setting_is_documented(field: str) -> None:
    assert f"`--{field.replace('_', '-')}`" in README
    assert f"`LORAGATE_{field.upper()}`" in README


def test_two_commands_are_documented() -> None:
    assert "make serve" in README and "make test" in README
