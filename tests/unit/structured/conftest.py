"""Guard tests run the trial compiler in thread workers (they start at once and see monkeypatches)
with a fake conversion (tests/unit/structured/fakes.py)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import service.structured.guard as guard_module
from service.structured import StructuredGuard, StructuredLimits
from tests.unit.structured.fakes import FakeCompiler


@pytest.fixture()
def compiler(monkeypatch: pytest.MonkeyPatch) -> FakeCompiler:
    fake = FakeCompiler()

    class ThreadWorkers(ThreadPoolExecutor):
        def __init__(self, max_workers: int = 1, **_: Any) -> None:
            fake.executors += 1
            super().__init__(max_workers=max_workers)

    for module in (guard_module, sys.modules.get("service.structured.workers")):
        if module is not None and hasattr(module, "ProcessPoolExecutor"):
            monkeypatch.setattr(module, "ProcessPoolExecutor", ThreadWorkers)
    monkeypatch.setattr(guard_module, "_convert_with_xgrammar", fake)
    return fake


@pytest.fixture()
async def make_guard(compiler: FakeCompiler, anyio_backend: str) -> AsyncIterator[Callable[..., StructuredGuard]]:
    guards: list[StructuredGuard] = []

    def make(**limits: Any) -> StructuredGuard:
        guards.append(StructuredGuard(StructuredLimits(**limits)))
        return guards[-1]

    yield make
    compiler.release_all()
    for guard in guards:
        guard.close()
