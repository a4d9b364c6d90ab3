"""FastAPI application: lifespan (engine start/stop), error handlers and routers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import __version__
from service.api.errors import install_error_handlers
from service.api.routes import health, metrics, openai_compat
from service.api.state import Services
from service.completions import CompletionService, GenerationLimits
from service.config import Settings
from service.engine import Engine, EngineOptions
from service.metrics import Metrics
from service.routing import ModelRouter

logger = logging.getLogger(__name__)


def build_services(settings: Settings, metrics: Metrics | None = None) -> Services:
    metrics = metrics or Metrics()
    engine = Engine(
        EngineOptions(
            model_dir=settings.model_dir,
            served_model_name=settings.model_name,
            max_model_len=settings.max_model_len,
            max_num_seqs=settings.max_num_seqs,
            kv_cache_space_gib=settings.kv_cache_space_gib,
            dtype=settings.dtype,
            tensor_parallel_size=settings.tensor_parallel_size,
            structured_output_backend=settings.structured_output_backend,
            enforce_eager=settings.enforce_eager,
            max_loras=settings.max_loras,
            max_cpu_loras=settings.max_cpu_loras,
            max_lora_rank=settings.max_lora_rank,
        ),
        on_stats=metrics.record_engine_stats,
    )
    metrics.engine_unfinished.set_function(engine.unfinished_requests)
    router = ModelRouter(settings.model_name)
    limits = GenerationLimits(
        max_model_len=settings.max_model_len,
        max_tokens_limit=settings.max_tokens_limit,
        max_n=settings.max_n,
    )
    completions = CompletionService(engine, router, metrics, limits)
    return Services(settings=settings, engine=engine, router=router, metrics=metrics, completions=completions)


async def _start_engine(svc: Services) -> None:
    try:
        await svc.engine.start()
    except Exception:
        logger.exception("the engine failed to start; /health/ready will answer 503")
    svc.metrics.engine_ready.set(1 if svc.engine.is_ready else 0)


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
        starting = asyncio.create_task(_start_engine(svc)) if services is None else None
        try:
            yield
        finally:
            if starting is not None and not starting.done():
                starting.cancel()
            svc.engine.begin_drain()
            svc.metrics.engine_ready.set(0)
            await svc.engine.shutdown()

    app = FastAPI(
        title="loragate",
        version=__version__,
        description="OpenAI-compatible gateway serving one base model and many LoRA adapters through vLLM.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(openai_compat.router)
    app.include_router(metrics.router)
    return app
