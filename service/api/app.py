"""FastAPI application factory: lifespan (engine start/stop), error handlers and routers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import __version__
from service.api import admin, health, observability, openai, tasks
from service.api.access_log import install_access_log
from service.api.admission import install_admission
from service.api.auth import install_auth
from service.api.bootstrap import build_services, run_services
from service.api.deps import Services
from service.api.lifecycle import Lifecycle, LifecycleMiddleware, watch_engine
from service.api.errors import install_error_handlers
from service.config import Settings


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """`services` may be injected (unit tests); otherwise they are built from settings."""
    settings = settings or Settings()
    lifecycle = Lifecycle(settings.drain_timeout_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = services or build_services(settings)
        app.state.services = svc
        svc.metrics.engine_ready.set(0)
        # The engine starts in the background so /health/live answers (and /health/ready says
        # 503) during the half-minute start.
        starting = asyncio.create_task(run_services(svc)) if services is None else None
        watchdog = asyncio.create_task(watch_engine(
            svc.engine, lifecycle, settings.engine_watchdog_interval_s,
            on_dead=lambda: svc.metrics.engine_ready.set(0),
        )) if services is None else None
        try:
            yield
        finally:
            for task in (starting, watchdog):
                if task is not None and not task.done():
                    task.cancel()
            svc.engine.begin_drain()
            svc.metrics.engine_ready.set(0)
            await svc.engine.shutdown()
            if svc.guard is not None:
                svc.guard.close()

    app = FastAPI(
        title="loragate",
        version=__version__,
        description="OpenAI-compatible gateway serving one base model and many LoRA adapters through vLLM.",
        lifespan=lifespan,
    )
    app.state.lifecycle = lifecycle
    install_error_handlers(app)
    install_auth(app, settings)
    app.add_middleware(LifecycleMiddleware, lifecycle=lifecycle)
    install_admission(app, settings)
    install_access_log(app, settings)  # outermost: wraps the whole stack, error middleware included
    for router in (health.router, openai.router, observability.router, tasks.router, admin.adapters_router,
                   admin.routes_router):
        app.include_router(router)
    return app
