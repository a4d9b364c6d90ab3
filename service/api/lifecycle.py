"""The process's life around the engine: drain on SIGTERM, a watchdog for a dead engine, and
the exit code a supervisor reads.

- Drain: the first SIGTERM (or SIGINT) turns `/health/ready` to 503 at once and answers every
  new request except health probes with 503 `shutting_down`; requests in flight finish (up to
  `drain_timeout_s`), then the server stops and the process exits 0, or 5 if the drain timed out
  and cut requests. The replica's serving marker in the adapter store stays until the server
  has stopped, so no other replica deletes an adapter version a draining request still uses.
- Watchdog: every `engine_watchdog_interval_s` it asks the engine whether it is alive. A dead
  engine fails in-flight requests with 503 (vLLM raises EngineDeadError to every waiting request),
  turns readiness and liveness to 503 and stops the process with exit code 3, so a supervisor
  restarts it; the adapter store and routes are on disk and come back unchanged. A hung engine
  (work in flight, no step finished for `engine_stall_timeout_s`) turns readiness to 503 while it
  lasts; stalled for twice that, the process exits with code 4.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from service.api.errors import service_error_response
from service.api.health import PROBE_PATHS
from service.api.observability import METRICS_PATH
from service.engine import EngineState
from service.errors import ShuttingDownError

logger = logging.getLogger(__name__)

ENGINE_DEAD_EXIT_CODE = 3
ENGINE_STALLED_EXIT_CODE = 4
DRAIN_CUT_EXIT_CODE = 5  # the drain timed out and requests in flight were cut
# What stopping takes after the drain (the engine's processes get 5 s to exit, then are killed):
# a pod's grace period must cover its preStop pause + the drain timeout + this (test_deployment.py).
SHUTDOWN_BUDGET_S = 10.0
OPEN_WHILE_DRAINING = (*PROBE_PATHS, METRICS_PATH)


class Lifecycle:
    """Shared by the middleware, the watchdog and the server: in-flight count, drain, exit code."""

    def __init__(self, drain_timeout_s: float) -> None:
        self.drain_timeout_s = drain_timeout_s
        self.draining = False
        self.in_flight = 0
        self.exit_code = 0
        # The requests in flight cannot finish (a timed-out drain, a hung engine): the server then
        # stops without another wait for them.
        self.cut_requests = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.request_exit: Callable[[], None] = lambda: None  # set by the server that runs the app

    def started(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def drain(self, on_drain: Callable[[], None]) -> None:
        """Refuse new work, wait for what is in flight (bounded), then ask the server to stop."""
        if self.draining:
            return
        self.draining = True
        on_drain()
        started = time.monotonic()
        logger.warning("draining: %d request(s) in flight, up to %.0f s", self.in_flight, self.drain_timeout_s)
        try:
            await asyncio.wait_for(self._idle.wait(), self.drain_timeout_s)
            logger.warning("drained in %.1f s; stopping", time.monotonic() - started)
        except TimeoutError:
            logger.error("drain timeout: %d request(s) still in flight; cutting them and exiting with code %d",
                         self.in_flight, DRAIN_CUT_EXIT_CODE)
            self.exit_code, self.cut_requests = DRAIN_CUT_EXIT_CODE, True
        self.request_exit()

    def fail(self, exit_code: int, cut_requests: bool = False) -> None:
        """Stop with `exit_code`; `cut_requests`: without waiting for the requests in flight (a dead
        engine's fail by themselves with 503, a hung engine's never end)."""
        self.exit_code, self.cut_requests = exit_code, cut_requests
        self.draining = True
        self.request_exit()


class LifecycleMiddleware:
    """Counts requests in flight (a stream until its last byte) and refuses new ones while draining."""

    def __init__(self, app: Any, lifecycle: Lifecycle) -> None:
        self.app, self.lifecycle = app, lifecycle

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_WHILE_DRAINING:
            await self.app(scope, receive, send)
            return
        if self.lifecycle.draining:
            error = ShuttingDownError("The server is shutting down; retry on another replica.")
            await service_error_response(error, scope.get("app"))(scope, receive, send)
            return
        self.lifecycle.started()
        try:
            await self.app(scope, receive, send)
        finally:
            self.lifecycle.finished()


async def watch_engine(engine: Any, lifecycle: Lifecycle, interval_s: float, on_dead: Callable[[], None]) -> None:
    """Poll the engine's health; on death, or a stall that does not end, stop the process with a
    non-zero exit code. A stall turns readiness to 503 by itself (`/health/ready` asks the engine)."""
    exit_code, was_stalled = ENGINE_DEAD_EXIT_CODE, False
    while True:
        await asyncio.sleep(interval_s)
        if engine.state not in (EngineState.READY, EngineState.DRAINING):
            if engine.state == EngineState.DEAD:
                break
            continue
        try:
            alive = await asyncio.wait_for(engine.check_health(), timeout=max(interval_s, 5.0))
        except Exception:  # noqa: BLE001 - a health check that cannot answer is a dead engine
            alive = False
        if not alive and engine.state != EngineState.DRAINING:
            break
        stalled_s, limit_s = engine.progress.stalled_seconds(), engine.options.stall_timeout_s
        stalled = stalled_s >= limit_s  # one reading of the clock, as `engine.stalled` decides
        if stalled and not was_stalled:
            logger.error("the engine has finished no step for %.0f s with work in flight: not ready", stalled_s)
        elif was_stalled and not stalled:
            logger.warning("the engine is making progress again: ready")
        was_stalled = stalled
        if stalled_s >= 2 * limit_s:
            exit_code = ENGINE_STALLED_EXIT_CODE
            logger.critical("the engine has been stalled for %.0f s; exiting with code %d so the supervisor "
                            "restarts this replica", stalled_s, exit_code)
            break
    engine.state = EngineState.DEAD
    on_dead()
    if exit_code == ENGINE_DEAD_EXIT_CODE:
        logger.critical("the engine died; exiting with code %d so the supervisor restarts this replica", exit_code)
    lifecycle.fail(exit_code, cut_requests=exit_code == ENGINE_STALLED_EXIT_CODE)
