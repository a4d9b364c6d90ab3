"""Drain, watchdog and request timeouts, with stand-ins (fast). The real SIGTERM drain and a
killed and a hung engine are exercised in tests/integration/test_operations.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from service.api.cancellation import cancel_on_disconnect, within_deadline
from service.api.errors import install_error_handlers
from service.api.lifecycle import (
    DRAIN_CUT_EXIT_CODE,
    ENGINE_DEAD_EXIT_CODE,
    ENGINE_STALLED_EXIT_CODE,
    Lifecycle,
    LifecycleMiddleware,
    watch_engine,
)
from service.engine.progress import ProgressMonitor
from service.engine import EngineState
from service.errors import TIMEOUT_CANCEL, RequestTimeoutError, failure_of

pytestmark = pytest.mark.anyio



def app_with(lifecycle: Lifecycle, gate: asyncio.Event) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(LifecycleMiddleware, lifecycle=lifecycle)

    @app.post("/v1/work")
    async def work() -> dict:
        await gate.wait()
        return {"done": True}

    @app.get("/health/ready")
    async def ready() -> dict:
        return {"status": "ready"}

    return app


async def test_drain_refuses_new_work_finishes_in_flight_then_exits() -> None:
    lifecycle, gate, stopped, drained = Lifecycle(drain_timeout_s=5), asyncio.Event(), asyncio.Event(), []
    lifecycle.request_exit = stopped.set
    transport = httpx.ASGITransport(app=app_with(lifecycle, gate))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        in_flight = asyncio.create_task(http.post("/v1/work"))
        while lifecycle.in_flight == 0:
            await asyncio.sleep(0.01)
        drain = asyncio.create_task(lifecycle.drain(lambda: drained.append(True)))
        await asyncio.sleep(0.05)
        refused = await http.post("/v1/work")
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
        assert refused.headers["retry-after"] == "1"
        assert (await http.get("/health/ready")).status_code == 200  # probes still answer
        assert drained == [True] and not stopped.is_set()
        gate.set()
        assert (await in_flight).json() == {"done": True}
        await asyncio.wait_for(drain, 5)
        assert stopped.is_set() and lifecycle.exit_code == 0


async def test_drain_timeout_stops_anyway_and_says_so_in_the_exit_code() -> None:
    lifecycle, stopped = Lifecycle(drain_timeout_s=0.1), asyncio.Event()
    lifecycle.request_exit = stopped.set
    lifecycle.started()  # a request that never finishes
    await asyncio.wait_for(lifecycle.drain(lambda: None), 5)
    assert stopped.is_set() and lifecycle.exit_code == DRAIN_CUT_EXIT_CODE


class FlakyEngine:
    def __init__(self, stall_timeout_s: float = 60.0) -> None:
        self.state = EngineState.READY
        self.alive = True
        self.progress = ProgressMonitor()
        self.options = SimpleNamespace(stall_timeout_s=stall_timeout_s)

    @property
    def stalled(self) -> bool:
        return self.progress.stalled_seconds() >= self.options.stall_timeout_s

    async def check_health(self) -> bool:
        if not self.alive:
            self.state = EngineState.DEAD
        return self.alive


async def test_watchdog_notices_a_dead_engine_and_exits_non_zero() -> None:
    engine, lifecycle, stopped, marked = FlakyEngine(), Lifecycle(5), asyncio.Event(), []
    lifecycle.request_exit = stopped.set
    watchdog = asyncio.create_task(watch_engine(engine, lifecycle, 0.02, on_dead=lambda: marked.append(True)))
    await asyncio.sleep(0.1)
    assert not watchdog.done()
    engine.alive = False
    await asyncio.wait_for(watchdog, 5)
    assert stopped.is_set() and lifecycle.exit_code == ENGINE_DEAD_EXIT_CODE and marked == [True]
    assert engine.state == EngineState.DEAD


async def test_watchdog_exits_when_a_stall_lasts_and_not_when_the_engine_recovers() -> None:
    engine, lifecycle, stopped = FlakyEngine(stall_timeout_s=0.15), Lifecycle(5), asyncio.Event()
    lifecycle.request_exit = stopped.set
    watchdog = asyncio.create_task(watch_engine(engine, lifecycle, 0.02, on_dead=lambda: None))
    engine.progress.request_started()
    await asyncio.sleep(0.2)  # stalled (readiness says so), not yet for twice the timeout
    assert engine.stalled and not watchdog.done()
    engine.progress.step(1)  # a step: recovered
    assert not engine.stalled
    await asyncio.sleep(0.2)
    assert not watchdog.done()
    await asyncio.wait_for(watchdog, 5)  # no further step: stalled for 0.3 s, the process exits
    assert stopped.is_set() and lifecycle.exit_code == ENGINE_STALLED_EXIT_CODE
    assert engine.state == EngineState.DEAD


class SilentRequest:
    """A client that stays connected."""

    async def receive(self) -> dict:
        await asyncio.Event().wait()
        return {}


async def test_timeout_aborts_the_work_and_is_a_504() -> None:
    seen: list[BaseException] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError as exc:
            seen.append(exc)
            raise

    with pytest.raises(RequestTimeoutError):
        await cancel_on_disconnect(SilentRequest(), slow(), timeout_s=0.05)  # type: ignore[arg-type]
    assert len(seen) == 1 and failure_of(seen[0]).status == 504  # the metrics count a 504, not a 499


async def test_a_stream_past_its_deadline_is_aborted() -> None:
    aborted: list[str] = []

    async def events():
        try:
            yield "first"
            await asyncio.sleep(60)
            yield "never"
        except asyncio.CancelledError as exc:
            aborted.append(exc.args[0] if exc.args else "")
            raise

    got = []
    with pytest.raises(RequestTimeoutError):
        async for event in within_deadline(events(), 0.1):
            got.append(event)
    assert got == ["first"] and aborted == [TIMEOUT_CANCEL]


async def test_a_stream_within_its_deadline_passes_through() -> None:
    async def events():
        for i in range(3):
            yield str(i)

    assert [e async for e in within_deadline(events(), 5)] == ["0", "1", "2"]
