"""Build the service objects from settings, and run them: start the engine, then the registry,
then keep picking up what other replicas changed in the shared adapter store."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

import yaml

from service.adapters import AdapterRegistry, AdapterStore, RegistryLimits
from service.adapters.remote import AdapterResolver
from service.adapters.validation import BaseModelShape
from service.api.deps import Services
from service.config import Settings
from service.errors import ServiceError
from service.engine import Engine, EngineOptions, EngineState
from service.generation import GenerationLimits, GenerationService
from service.observability import Metrics, RequestStats
from service.routing import ModelRouter, RolloutGuard, RouteRegistry, RoutesFile, RouteSpec
from service.routing.prometheus_source import CHECK_INTERVAL_S, PrometheusSampleSource
from service.structured import StructuredGuard, StructuredPolicy
from service.tasks.triage import TriageService

logger = logging.getLogger(__name__)


def engine_options(settings: Settings) -> EngineOptions:
    """The engine's settings, and the model it serves."""
    return EngineOptions(**dict(settings.engine), model_dir=settings.model_dir, served_model_name=settings.model_name)


def build_services(settings: Settings, metrics: Metrics | None = None) -> Services:
    metrics = metrics or Metrics()
    engine = Engine(engine_options(settings), on_stats=metrics.record_engine_stats)
    metrics.engine_unfinished.set_function(engine.unfinished_requests)
    store = AdapterStore(settings.adapters.store)
    routes = RouteRegistry(store, settings.model_name, metrics)
    router = ModelRouter(settings.model_name, routes=routes, metrics=metrics)
    # The registry enforces the engine's rank limit and preloads what the engine keeps loaded.
    registry_limits = RegistryLimits(**dict(settings.adapters), max_rank=settings.engine.max_lora_rank,
                                     preload=settings.engine.max_cpu_loras,
                                     max_pinned=min(settings.engine.max_loras, settings.engine.max_cpu_loras) - 1)
    registry = AdapterRegistry(store, engine, BaseModelShape.from_model_dir(settings.model_dir), registry_limits,
                               metrics, reserved_names=lambda: {settings.model_name})  # routes: route_names
    router.adapters = registry
    registry.used_by = routes.routes_using
    registry.route_names = routes.stored_names
    limits = GenerationLimits(**dict(settings.generation), max_model_len=settings.engine.max_model_len)
    request_stats = RequestStats(window_s=settings.stats_window_s)
    # Route guards and reports judge the fleet's figures in Prometheus when it is given, else this replica's.
    prometheus = (PrometheusSampleSource(settings.prometheus_url, settings.stats_window_s, settings.prometheus_timeout_s)
                  if settings.prometheus_url else None)
    rollout = (RolloutGuard(routes, prometheus, interval_s=CHECK_INTERVAL_S) if prometheus is not None
               else RolloutGuard(routes, request_stats))
    guard = StructuredGuard(settings.structured)
    policy = StructuredPolicy(
        default_backend=settings.engine.structured_output_backend,
        # Without the plugin an engine has one backend: no per-request fallback to another.
        fallback_backends=settings.structured.fallback_backends if settings.engine.vllm_plugin else [],
        per_request_backends=settings.engine.vllm_plugin,
    )
    resolver = (AdapterResolver(registry, settings.adapters.resolver_uri, settings.adapters.resolver_negative_ttl_s,
                                schemes=settings.adapters.uri_schemes)
                if settings.adapters.resolver_uri else None)
    generation = GenerationService(engine, router, metrics, limits, guard=guard, policy=policy,
                                   stats=request_stats, rollout=rollout, resolver=resolver)
    triage = TriageService(generation, settings.model_name, batch_concurrency=settings.triage.batch_concurrency,
                           policy=settings.triage.policy)
    return Services(settings=settings, engine=engine, registry=registry, router=router, metrics=metrics,
                    generation=generation, stats=request_stats, guard=guard, triage=triage, routes=routes,
                    route_source=prometheus, rollout=rollout)


async def run_services(svc: Services) -> None:
    """Engine first, then the registry (it loads adapters into the engine), then traffic."""
    try:
        # Read first: a configuration that cannot work stops the start before the engine loads.
        routes_file = load_routes_file(svc.settings.routes_file)
        check_configured_names(svc.settings.adapters.initial, routes_file)
        await asyncio.gather(svc.engine.start(), *([svc.guard.warm_up()] if svc.guard else []))
        await svc.registry.start()
        # Adapters before routes (routes name them); neither can take a name the store gives the
        # other: the registries check the shared store under its lock, whatever the order.
        await _register_initial_adapters(svc)
        if svc.routes is not None:
            await svc.routes.start(routes_file)
        svc.engine.mark_ready()
    except Exception:
        logger.exception("start-up failed; /health/ready will answer 503")
        svc.engine.state = EngineState.DEAD
    svc.metrics.engine_ready.set(1 if svc.engine.is_ready else 0)
    try:
        # Also while draining: the heartbeat keeps this replica's serving marker alive until the
        # last request in flight has ended (the lifespan then cancels this task and closes it).
        while svc.engine.state in (EngineState.READY, EngineState.DRAINING):
            await asyncio.sleep(svc.settings.adapters.sync_interval_s)
            try:
                await svc.registry.refresh()  # also this replica's heartbeat in the shared store
                if svc.routes is not None:
                    await svc.routes.refresh()
                if svc.rollout is not None:  # steps due without new traffic
                    svc.rollout.tick()
            except Exception:
                logger.exception("could not refresh adapters and routes from the store")
    finally:  # shutdown (cancelled) or a dead engine: this replica serves nothing any more
        svc.registry.close()


async def _register_initial_adapters(svc: Services) -> None:
    """Register the configured adapters the store lacks (never replaces a registered version)."""
    for name, folder in svc.settings.adapters.initial.items():
        if svc.registry.handle(name) is not None:
            continue
        try:
            record = await svc.registry.register_path(name, str(folder), caller="start-up")
            logger.info("registered adapter %s v%d from %s", name, record.version, folder)
        except ServiceError as exc:
            logger.error("adapter %s from %s was not registered: %s", name, folder, exc.message)


def load_routes_file(path: Path | None) -> RoutesFile | None:
    """Routes from a YAML (or JSON, which is YAML) file: `{name: RouteSpec}`, with the hash of its
    content (the route store applies a file again only when it changed)."""
    if path is None:
        return None
    content = path.read_bytes()
    data = yaml.safe_load(content) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of route names to routes")
    return RoutesFile(sha256=hashlib.sha256(content).hexdigest(),
                      routes={str(name): RouteSpec.model_validate(spec) for name, spec in data.items()})


class ConfigurationConflictError(ValueError):
    """Settings that contradict each other: the service does not start."""


def check_configured_names(initial_adapters: Mapping[str, object], routes_file: RoutesFile | None) -> None:
    """An initial adapter and a route of the routes file may not share a name (clients could not
    tell them apart, and whichever registered first would silently win)."""
    shared = sorted(set(initial_adapters) & set(routes_file.routes if routes_file is not None else ()))
    if shared:
        raise ConfigurationConflictError(
            f"{', '.join(shared)}: named both in --initial-adapters and in --routes-file; an adapter and a "
            "route cannot share a name. Rename one of them.")
