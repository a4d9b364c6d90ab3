"""External tools the suite needs (prometheus, promtool, hadolint, ...): found, or the test is
skipped, except under CI (`CI` set, as `.ci/run` does), where a missing tool fails the test."""

from __future__ import annotations

import os
import shutil

import pytest


def missing_tool(what: str, how: str) -> None:
    """Skip (or, under CI, fail) because `what` is not available; `how` says how to install it."""
    if "CI" in os.environ:
        pytest.fail(f"{what} is not installed but CI is set; {how}")
    pytest.skip(f"{what} is not installed ({how}); with CI set this fails")


def required_tool(name: str, how: str) -> str:
    """The path of the executable `name`, or skip/fail as `missing_tool` does."""
    path = shutil.which(name)
    if path is None:
        missing_tool(name, how)
    assert path is not None
    return path
