"""The whole app (every router, real registries, admission, auth) over a generating engine double,
served on loopback: what `loadtests.schemathesis_run` is validated against without vLLM.

    python -m tests.support.doubles_app PORT ADAPTER_ROOT BASE_MODEL_DIR STORE
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from service.adapters import AdapterRegistry, AdapterStore, RegistryLimits
from service.adapters.validation import BaseModelShape
from service.api.app import create_app
from service.api.deps import Services
from service.config import Settings
from service.engine import EngineState
from service.engine.types import GenerationDelta, GenerationUpdate, SamplingOptions, TokenLogprob, TopToken
from service.generation import GenerationLimits, GenerationService
from service.observability import Metrics, RequestStats
from service.routing import ModelRouter, RolloutGuard, RouteRegistry
from service.tasks.triage import TriageService
from tests.support.registry_harness import FakeEngine

MODEL = "double-base"
ADMIN_KEY, API_KEY = "st-admin-key-0123456789abcdef", "st-api-key-0123456789abcdef"


class GeneratingEngine(FakeEngine):
    """Words are tokens; every choice answers `max_tokens` (default 4) words of "ok", one per step."""

    state = EngineState.READY
    is_ready = True
    stalled = False
    started_at = 0.0
    vocab_size = 1000

    def render_chat(self, messages: list[dict[str, str]]) -> list[int]:
        return [1] * sum(len(str(m.get("content", "")).split()) + 3 for m in messages)

    def tokenize(self, text: str) -> list[int]:
        return [1] * len(text.split())

    def detokenize(self, token_ids: list[int]) -> str:
        return " ".join("ok" for _ in token_ids)

    async def generate(self, prompt_ids: list[int], options: SamplingOptions, adapter: Any = None,
                       request_id: str | None = None, priority: int = 0,
                       cache_salt: str | None = None) -> AsyncIterator[GenerationUpdate]:
        steps = min(options.max_tokens or 4, 4)
        for step in range(steps):
            await asyncio.sleep(0)
            last = step == steps - 1
            logprobs = ([TokenLogprob(token_id=1, token="ok", logprob=-0.1,
                                      top=[TopToken(token_id=1, token="ok", logprob=-0.1)] * (options.logprobs or 0))]
                        if options.logprobs is not None else None)
            yield GenerationUpdate(prompt_tokens=len(prompt_ids), deltas=[
                GenerationDelta(index=i, text="ok ", token_count=1, finish_reason="length" if last else None,
                                logprobs=logprobs) for i in range(options.n)])

    async def check_health(self) -> bool:
        return True

    def begin_drain(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    def unfinished_requests(self) -> int:
        return 0


def doubles_app(adapter_root: Path, base_model_dir: Path, store: Path, **overrides: Any) -> FastAPI:
    settings = Settings(model=base_model_dir, served_model_name=MODEL, max_model_len=256, max_tokens_limit=8, max_n=2,
                        api_keys=[API_KEY], admin_keys=[ADMIN_KEY], adapter_roots=[adapter_root],
                        adapter_store=store, **overrides)  # type: ignore[call-arg]
    engine, metrics = GeneratingEngine(), Metrics(CollectorRegistry())
    adapter_store = AdapterStore(store)
    routes = RouteRegistry(adapter_store, MODEL, metrics)
    router = ModelRouter(MODEL, routes=routes, metrics=metrics)
    registry = AdapterRegistry(adapter_store, engine, BaseModelShape.from_model_dir(base_model_dir),  # type: ignore[arg-type]
                               RegistryLimits(max_rank=64, max_adapter_bytes=50 << 20, allowed_roots=[adapter_root]),
                               metrics, reserved_names=lambda: {MODEL})
    router.adapters = registry
    registry.used_by, registry.route_names = routes.routes_using, routes.stored_names
    stats = RequestStats(window_s=600)
    generation = GenerationService(engine, router, metrics,  # type: ignore[arg-type]
                                   GenerationLimits(max_model_len=256, max_tokens_limit=8, max_n=2),
                                   stats=stats, rollout=RolloutGuard(routes, stats))
    triage = TriageService(generation, MODEL)
    services = Services(settings=settings, engine=engine, registry=registry, router=router,  # type: ignore[arg-type]
                        metrics=metrics, generation=generation, stats=stats, triage=triage, routes=routes)
    app = create_app(settings, services)
    serving = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serving(app):
            await registry.start()
            await routes.start()
            yield
            registry.close()

    app.router.lifespan_context = lifespan
    return app


def main(argv: list[str]) -> None:
    port, root, base, store = int(argv[0]), Path(argv[1]), Path(argv[2]), Path(argv[3])
    uvicorn.run(doubles_app(root, base, store), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
