"""FastAPI application factory: lifespan (engine start/stop), middlewares, error handlers and routers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware

from service import __version__
from service.api import admin, health, observability, openai, tasks
from service.api.access_log import AccessLogMiddleware
from service.api.admission import Admission
from service.api.auth import Auth, KeyMiddleware
from service.api.body_limit import BodyLimitMiddleware
from service.api.bootstrap import build_services, run_services
from service.api.deps import Services
from service.api.errors import UnexpectedErrorMiddleware, install_error_handlers
from service.api.keys import forget_raw_keys
from service.api.lifecycle import Lifecycle, LifecycleMiddleware, watch_engine
from service.api.openapi import install_openapi
from service.config import Settings


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """`services` may be injected (unit tests); otherwise they are built from settings."""
    settings = settings or Settings()
    lifecycle = Lifecycle(settings.drain_timeout_s)
    auth = Auth.from_settings(settings)  # raises AuthConfigError for settings the service must not start with
    forget_raw_keys(settings)  # only the digests in `auth` from here on

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

    # The middlewares, outermost first (Starlette's ServerErrorMiddleware is outside them all;
    # FastAPI's exception handlers, then the routes with their dependencies, inside):
    middleware = [
        # 1. One access-log line per request and its request id: sees every reply, 500s included.
        Middleware(AccessLogMiddleware, enabled=settings.access_log, bodies=settings.access_log_bodies),
        # 2. An unhandled exception becomes the OpenAI-shaped 500, inside the access log.
        Middleware(UnexpectedErrorMiddleware),
        # 3. Identify the key; refuse what the matched route's declared requirement (or, for paths no
        #    route serves, deny by default) does not allow, before the body is read.
        Middleware(KeyMiddleware, auth=auth),
        # 4. Drain: count requests in flight (a stream until its last byte), 503 to new ones.
        Middleware(LifecycleMiddleware, lifecycle=lifecycle),
        # 5. The body-size cap (413), before anything reads the body.
        Middleware(BodyLimitMiddleware, max_bytes=settings.limits.max_body_bytes, upload_prefix=admin.UPLOAD_PREFIX,
                   upload_max_bytes=settings.adapters.max_adapter_bytes),
    ]
    app = FastAPI(
        title="loragate",
        version=__version__,
        description="OpenAI-compatible gateway serving one base model and many LoRA adapters through vLLM.",
        lifespan=lifespan,
        middleware=middleware,
    )
    app.state.lifecycle = lifecycle
    app.state.auth = auth  # read by the routers' key requirements (auth.py)
    app.state.admission = Admission(settings)  # read by the generation routes' admission (admission.py)
    install_error_handlers(app)
    for router in (health.router, openai.router, observability.router, tasks.router, admin.router):
        app.include_router(router)
    install_openapi(app, auth, settings.generation)  # every error response each operation can give, from FAILURE_TABLE
    return app
