"""The route registry: validated, persisted, audited routes, shared by every replica.

Writes take the shared store's lock and check the adapter manifest under it, so a route never
names an adapter that another replica is removing at the same moment (and an adapter a route
uses cannot be removed: see `routes_using`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timezone

from service.adapters import AdapterStore
from service.adapters.validation import NAME_PATTERN
from service.errors import InvalidRequestError, NotFoundError
from service.observability import Metrics
from service.routing.store import RouteStore
from service.routing.types import Route, RouteSpec, RouteTable

logger = logging.getLogger(__name__)
_NAME_RE = re.compile(NAME_PATTERN)


class RouteRegistry:
    def __init__(self, store: AdapterStore, base_model: str, metrics: Metrics) -> None:
        self.adapter_store = store
        self.store = RouteStore(store)
        self.base_model = base_model
        self.metrics = metrics
        self._routes: dict[str, Route] = {}
        self._mtime = 0
        self._write_lock = asyncio.Lock()

    # ----------------------------------------------------------- lookups
    def get(self, name: str) -> Route | None:
        return self._routes.get(name)

    def names(self) -> list[str]:
        return sorted(self._routes)

    def routes(self) -> list[Route]:
        return [self._routes[name] for name in sorted(self._routes)]

    def route(self, name: str) -> Route:
        route = self._routes.get(name)
        if route is None:
            raise NotFoundError(f"No route named `{name}` exists.", param="name", code="route_not_found")
        return route

    def routes_using(self, target: str) -> list[str]:
        """Routes that name `target`, read from disk: the caller holds the store lock, so this
        sees what every replica has written."""
        return sorted(name for name, route in self.store.load().routes.items() if target in route.spec.targets())

    # ------------------------------------------------------ start, sync
    async def start(self, configured: dict[str, RouteSpec] | None = None) -> None:
        """Load the stored routes, then apply routes from the config file that differ from them."""
        await self.refresh(force=True)
        for name, spec in (configured or {}).items():
            current = self._routes.get(name)
            if current is not None and current.spec == spec:
                continue
            try:
                await self.put(name, spec, source="config file")
            except (InvalidRequestError, NotFoundError) as exc:
                logger.error("route %s from the config file was not applied: %s", name, exc.message)

    async def refresh(self, force: bool = False) -> None:
        """Pick up changes other replicas made to the shared store."""
        mtime = self.store.mtime_ns()
        if mtime == self._mtime and not force:
            return
        table = await asyncio.to_thread(self.store.load)
        self._mtime = mtime
        self._install(table)

    def _install(self, table: RouteTable) -> None:
        for name in set(self._routes) - set(table.routes):
            for variant in self._routes[name].spec.variants:
                self.metrics.route_variant_weight.remove(name, variant.target)
        self._routes = dict(table.routes)
        for route in self._routes.values():
            for variant in route.spec.variants:
                self.metrics.route_variant_weight.labels(route.name, variant.target).set(variant.weight)

    # ------------------------------------------------------------ writes
    async def put(self, name: str, spec: RouteSpec, caller: str | None = None, source: str = "api") -> Route:
        async with self._write_lock:
            route = await asyncio.to_thread(self._put, name, spec, caller, source)
        return route

    def _put(self, name: str, spec: RouteSpec, caller: str | None, source: str) -> Route:
        with self.adapter_store.locked():
            adapters = set(self.adapter_store.load().adapters)
            self._check(name, spec, adapters)
            table = self.store.load()
            previous = table.routes.get(name)
            route = Route(name=name, spec=spec, version=previous.version + 1 if previous else 1)
            table.routes[name] = route
            self.store.save(table)
            self.store.audit("route_set", name, caller=caller, version=route.version, source=source)
            self._mtime = self.store.mtime_ns()
            self._install(table)
        logger.info("route %s v%d: %s", name, route.version,
                    ", ".join(f"{v.target}={v.weight:g}" for v in spec.variants))
        return route

    def _check(self, name: str, spec: RouteSpec, adapters: set[str]) -> None:
        if not _NAME_RE.fullmatch(name):
            raise InvalidRequestError(
                f"Invalid route name {name!r}: use 1-64 characters of lowercase letters, digits, '.', '_' "
                "or '-', starting with a letter or digit.", param="name", code="invalid_route_name")
        if name.lower() == self.base_model.lower() or name in adapters:
            raise InvalidRequestError(
                f"Route name {name!r} is taken by the base model or an adapter; clients could not tell "
                "them apart.", param="name", code="invalid_route_name")
        for field, target in [(f"variants.{i}.target", v.target) for i, v in enumerate(spec.variants)] + (
                [("shadow.target", spec.shadow.target)] if spec.shadow else []):
            if target != self.base_model and target not in adapters:
                kind = "a route" if target in self._routes else "not the base model or a registered adapter"
                raise InvalidRequestError(
                    f"Route target {target!r} is {kind}; a variant must be `{self.base_model}` or a "
                    "registered adapter.", param=field, code="invalid_route_target")

    async def delete(self, name: str, caller: str | None = None) -> Route:
        async with self._write_lock:
            return await asyncio.to_thread(self._delete, name, caller)

    def _delete(self, name: str, caller: str | None) -> Route:
        with self.adapter_store.locked():
            table = self.store.load()
            route = table.routes.pop(name, None)
            if route is None:
                raise NotFoundError(f"No route named `{name}` exists.", param="name", code="route_not_found")
            self.store.save(table)
            self.store.audit("route_delete", name, caller=caller, version=route.version)
            self._mtime = self.store.mtime_ns()
            self._install(table)
        return route

    async def rollback(self, name: str, variant: str, reason: str) -> bool:
        """Zero a variant's weight (never the control's); False if there was nothing to do."""
        async with self._write_lock:
            done = await asyncio.to_thread(self._rollback, name, variant, reason)
        if done:
            self.metrics.route_rollbacks.labels(name, variant, reason.split(" ", 1)[0]).inc()
            logger.warning("route %s: variant %s rolled back to weight 0: %s", name, variant, reason)
        return done

    def _rollback(self, name: str, variant: str, reason: str) -> bool:
        with self.adapter_store.locked():
            table = self.store.load()
            route = table.routes.get(name)
            if route is None or variant == route.spec.control:
                return False
            variants = [v.model_copy(update={"weight": 0.0}) if v.target == variant else v for v in route.spec.variants]
            if variants == route.spec.variants:
                return False
            if sum(v.weight for v in variants) <= 0:  # all traffic was on this variant: back to the control
                variants[0] = variants[0].model_copy(update={"weight": 1.0})
            updated = route.model_copy(update={
                "spec": route.spec.model_copy(update={"variants": variants}),
                "version": route.version + 1, "updated_at": datetime.now(timezone.utc),
                "rollbacks": route.rollbacks | {variant: reason},
            })
            table.routes[name] = updated
            self.store.save(table)
            self.store.audit("route_rollback", name, version=updated.version, source=f"{variant}: {reason}")
            self._mtime = self.store.mtime_ns()
            self._install(table)
        return True
