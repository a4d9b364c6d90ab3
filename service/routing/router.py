"""Resolve the `model` a request names into what serves it: the base model, an adapter, or a
route's variant (chosen by `assignment`), plus the route's shadow target when it mirrors."""

from __future__ import annotations

import random
from typing import Protocol

from pydantic import BaseModel

from service.adapters import NO_LEASE, Lease
from service.engine import AdapterHandle
from service.errors import ModelNotFoundError
from service.observability import NO_ROUTE, Metrics
from service.routing.assignment import assign_variant, shadow_selected
from service.routing.registry import RouteRegistry


class AdapterCatalog(Protocol):
    """What the router needs from the adapter registry."""

    def handle(self, name: str) -> AdapterHandle | None: ...

    def names(self) -> list[str]: ...

    def lease(self, adapter: AdapterHandle) -> Lease: ...


class ServingTarget(BaseModel):
    base_model: str
    model: str  # the served name: base model or adapter
    adapter: AdapterHandle | None = None
    route: str = NO_ROUTE
    variant: str = NO_ROUTE
    route_version: int = 0  # the route's version that chose the variant: samples carry it

    @property
    def labels(self) -> dict[str, str]:
        version = str(self.route_version) if self.route != NO_ROUTE else NO_ROUTE
        return {"base_model": self.base_model, "model": self.model, "route": self.route, "variant": self.variant,
                "route_version": version}


class ModelRouter:
    def __init__(self, base_model: str, adapters: AdapterCatalog | None = None,
                 routes: RouteRegistry | None = None, metrics: Metrics | None = None,
                 rng: random.Random | None = None) -> None:
        self.base_model = base_model
        self.adapters = adapters
        self.routes = routes
        self.metrics = metrics
        self._rng = rng or random.Random()

    def resolve(self, name: str, route_key: str | None = None) -> ServingTarget:
        route = self.routes.get(name) if self.routes is not None else None
        if route is None:
            return self._direct(name)
        variant = assign_variant(name, route.spec.variants, route_key, self._rng)
        target = self._direct(variant).model_copy(update={"route": name, "variant": variant,
                                                          "route_version": route.version})
        if self.metrics is not None:
            self.metrics.route_assignments.labels(name, variant).inc()
        return target

    def shadow(self, target: ServingTarget, route_key: str | None = None) -> ServingTarget | None:
        """The target to mirror this routed request to, if its route shadows and it is selected."""
        route = self.routes.get(target.route) if self.routes is not None and target.route != NO_ROUTE else None
        if route is None or route.spec.shadow is None:
            return None
        shadow = route.spec.shadow
        if not shadow_selected(route.name, shadow.fraction, route_key, self._rng):
            return None
        try:
            return self._direct(shadow.target).model_copy(update={
                "route": route.name, "variant": shadow.target, "route_version": target.route_version})
        except ModelNotFoundError:
            return None  # removed since the route was set: the primary is unaffected

    def _direct(self, name: str) -> ServingTarget:
        if name == self.base_model:
            return ServingTarget(base_model=self.base_model, model=name)
        handle = self.adapters.handle(name) if self.adapters is not None else None
        if handle is None:
            raise ModelNotFoundError(name)
        return ServingTarget(base_model=self.base_model, model=name, adapter=handle)

    def lease(self, target: ServingTarget) -> Lease:
        """Hold the target's adapter version until the request is done (see AdapterRegistry)."""
        if target.adapter is None or self.adapters is None:
            return NO_LEASE
        return self.adapters.lease(target.adapter)

    def knows(self, name: str) -> bool:
        """Whether `name` is the base model, a route or a registered adapter (no resolving)."""
        return (name == self.base_model or (self.routes is not None and self.routes.get(name) is not None)
                or (self.adapters is not None and self.adapters.handle(name) is not None))

    def adapter_names(self) -> list[str]:
        return self.adapters.names() if self.adapters is not None else []

    def route_names(self) -> list[str]:
        return self.routes.names() if self.routes is not None else []

