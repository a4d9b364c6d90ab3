"""FastAPI application factory: lifespan (engine start/stop), error handlers and routers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import __version__
from service.api import admin, health, observability, openai, tasks
from service.api.bootstrap import build_services, run_services
from service.api.deps import Services
from service.api.errors import install_error_handlers
from service.config import Settings


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """`services` may be injected (unit tests); otherwise they are built from settings."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = services or build_services(settings)
        app.state.services = svc
        svc.metrics.engine_ready.set(0)
        # The engine starts in the background so /health/live answers (and /health/ready says
        # 503) during the half-minute start.
        starting = asyncio.create_task(run_services(svc)) if services is None else None
        try:
            yield
        finally:
            if starting is not None and not starting.done():
                starting.cancel()
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
    install_error_handlers(app)
    for router in (health.router, openai.router, observability.router, tasks.router, admin.adapters_router,
                   admin.routes_router):
        app.include_router(router)
    return app
