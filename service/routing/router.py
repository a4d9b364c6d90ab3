"""Resolve the `model` a request names into what serves it: the base model or an adapter.

Routes (A/B splits between adapters) will resolve here too, which is why the result carries
`route` and `variant`.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

from service.engine import AdapterHandle
from service.errors import ModelNotFoundError
from service.observability.metrics import NO_ROUTE
from service.adapters import NO_LEASE, Lease


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

    @property
    def labels(self) -> dict[str, str]:
        return {"base_model": self.base_model, "model": self.model, "route": self.route, "variant": self.variant}


class ModelRouter:
    def __init__(self, base_model: str, adapters: AdapterCatalog | None = None) -> None:
        self.base_model = base_model
        self.adapters = adapters

    def resolve(self, name: str) -> ServingTarget:
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

    def reserved_names(self) -> set[str]:
        """Names an adapter may not take: the base model (and, later, routes)."""
        return {self.base_model}

    def adapter_names(self) -> list[str]:
        return self.adapters.names() if self.adapters is not None else []
