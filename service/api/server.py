"""Run the app under uvicorn with loragate's drain: the first SIGTERM/SIGINT drains (readiness 503,
new requests 503, in-flight ones finish within the drain timeout) and the process then exits 0;
a second signal stops at once. A dead engine stops the server with the lifecycle's exit code."""

from __future__ import annotations

import asyncio
import logging
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from service.api.lifecycle import Lifecycle

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app
        self.lifecycle: Lifecycle = app.state.lifecycle
        self.lifecycle.request_exit = self._stop
        self._drain_task: asyncio.Task[None] | None = None

    def _stop(self) -> None:
        self.should_exit = True
        if self.lifecycle.cut_requests:
            # Waiting for requests that cannot finish would only delay the restart; they end with a
            # closed connection.
            self.force_exit = True

    def _begin_drain(self) -> None:
        services = getattr(self.app.state, "services", None)
        if services is not None:
            services.engine.begin_drain()  # /health/ready: 503 from now on
            services.metrics.engine_ready.set(0)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.lifecycle.draining or self.should_exit:
            self.force_exit = self.should_exit = True  # a second signal: stop now
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().handle_exit(sig, frame)
            return
        logger.warning("signal %d: draining before exit", sig)
        # Not recorded in `_captured_signals`: uvicorn would re-raise it after shutdown and the
        # process would die by the signal instead of exiting 0.
        # Signal handlers run between bytecodes: hand the work to the loop, waking it up.
        loop.call_soon_threadsafe(self._start_drain, loop)

    def _start_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        self._drain_task = loop.create_task(self.lifecycle.drain(self._begin_drain))


def serve(app: FastAPI, host: str, port: int, log_level: str, **uvicorn_options: Any) -> int:
    """Serve until drained or stopped; returns the process exit code."""
    lifecycle: Lifecycle = app.state.lifecycle
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=int(lifecycle.drain_timeout_s) + 5, **uvicorn_options)
    DrainingServer(config, app).run()
    return lifecycle.exit_code
