"""The rollout guard's background checks: referenced while they run, and their failures logged."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from service.observability import RequestStats
from service.routing import RolloutGuard, RouteGuard

pytestmark = pytest.mark.anyio



class FakeRoutes:
    def __init__(self) -> None:
        self.route = SimpleNamespace(name="triage-ab", spec=SimpleNamespace(guard=RouteGuard()))

    def get(self, name: str) -> SimpleNamespace | None:
        return self.route if name == self.route.name else None


async def test_a_running_check_is_referenced_until_it_is_done() -> None:
    guard = RolloutGuard(FakeRoutes(), RequestStats())  # type: ignore[arg-type]
    release, started = asyncio.Event(), asyncio.Event()

    async def check(route) -> list[str]:
        started.set()
        await release.wait()
        return []

    guard.check = check  # type: ignore[method-assign]
    guard.request_finished("triage-ab")
    await asyncio.wait_for(started.wait(), 2)
    (task,) = guard._tasks
    assert not task.done()

    release.set()
    await asyncio.wait_for(task, 2)
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert not guard._tasks


async def test_a_failing_check_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    guard = RolloutGuard(FakeRoutes(), RequestStats())  # type: ignore[arg-type]

    async def check(route) -> list[str]:
        raise RuntimeError("route store unreachable")

    guard.check = check  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="service.routing.rollout"):
        guard.request_finished("triage-ab")
        (task,) = guard._tasks
        await asyncio.wait({task}, timeout=2)
        await asyncio.sleep(0)

    records = [r for r in caplog.records if r.name == "service.routing.rollout"]
    assert len(records) == 1 and "triage-ab" in records[0].getMessage()
    assert records[0].exc_info is not None and "route store unreachable" in str(records[0].exc_info[1])
    assert not guard._tasks
