"""The route registry: validated, persisted, audited routes, shared by every replica.

Writes take the shared store's lock and check the adapter manifest under it, so a route never
names an adapter that another replica is removing at the same moment (and an adapter a route
uses cannot be removed: see `routes_using`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from service.adapters import AdapterStore
from service.adapters.validation import NAME_PATTERN
from service.errors import ConflictError, InvalidRequestError, NotFoundError, ServiceError
from service.observability import Metrics
from service.routing import progression
from service.routing.gate_reports import GateReportStore
from service.routing.patch import patched_spec
from service.routing.progression import RolloutSpec
from service.routing.rollout_ops import RolloutOperations, rollout_variants
from service.routing.store import RouteStore
from service.routing.types import (
    THRESHOLDS,
    AppliedRoutesFile,
    Route,
    RouteSpec,
    RoutesFile,
    RouteTable,
)

logger = logging.getLogger(__name__)
_NAME_RE = re.compile(NAME_PATTERN)


def spec_digest(spec: RouteSpec) -> str:
    """A route spec's content hash (pydantic dumps fields in a fixed order)."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


class RouteRegistry(RolloutOperations):
    def __init__(self, store: AdapterStore, base_model: str, metrics: Metrics) -> None:
        self.adapter_store = store
        self.store = RouteStore(store)
        self.gate_reports = GateReportStore(store)  # what `loragate promote` measured before a rollout
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

    def stored_names(self) -> set[str]:
        """Every route name in the shared store (read from disk: the adapter registry calls this
        under the store lock, so no adapter takes a name a replica is giving a route)."""
        return set(self.store.load().routes)

    # ------------------------------------------------------ start, sync
    async def start(self, configured: RoutesFile | None = None) -> None:
        """Load the stored routes, then apply the routes file's routes that changed in the file
        since it was last applied (stored state, rollbacks included, wins over an unchanged file)."""
        await self.refresh(force=True)
        if configured is not None:
            async with self._write_lock:
                await asyncio.to_thread(self._apply_file, configured)

    def _apply_file(self, configured: RoutesFile) -> None:
        with self.adapter_store.locked():
            table = self.store.load()
            applied = table.routes_file
            if applied is not None and applied.sha256 == configured.sha256:
                logger.info("routes file unchanged since it was applied at %s: the stored routes stand",
                            applied.applied_at.isoformat(timespec="seconds"))
                return
            recorded = dict(applied.routes) if applied is not None else {}
            adapters = set(self.adapter_store.load().adapters)
            failed = []
            for name, spec in configured.routes.items():
                digest = spec_digest(spec)
                if recorded.get(name) == digest:
                    continue  # unchanged in the file: what the API or a guard did since stands
                current = table.routes.get(name)
                try:
                    if current is None or current.spec != spec:
                        self._check(name, spec, adapters, table)
                        self._store(table, name, spec, caller=None, source="routes file")
                    recorded[name] = digest
                except ServiceError as exc:
                    failed.append(name)
                    logger.error("route %s from the routes file was not applied: %s", name, exc.message)
            # With a failure the file's hash is not recorded: the next start retries the routes that
            # failed (those applied are skipped by their own hashes).
            table.routes_file = AppliedRoutesFile(sha256="" if failed else configured.sha256, routes=recorded)
            self._save(table)

    async def refresh(self, force: bool = False) -> None:
        """Pick up changes other replicas made to the shared store."""
        mtime = self.store.mtime_ns()
        if mtime == self._mtime and not force:
            return
        table = await asyncio.to_thread(self.store.load)
        self._mtime = mtime
        self._install(table)

    def _install(self, table: RouteTable) -> None:
        for name, route in self._routes.items():
            if name not in table.routes:
                for variant in route.spec.variants:
                    self.metrics.route_variant_weight.remove(name, variant.target)
            if route.rollout is not None and (name not in table.routes or table.routes[name].rollout is None):
                self.metrics.route_rollout_step.remove(name)
        self._routes = dict(table.routes)
        for route in self._routes.values():
            for variant in route.spec.variants:
                self.metrics.route_variant_weight.labels(route.name, variant.target).set(variant.weight)
            if route.rollout is not None:
                self.metrics.route_rollout_step.labels(route.name).set(route.rollout.step)

    # ------------------------------------------------------------ writes
    async def put(self, name: str, spec: RouteSpec, caller: str | None = None, source: str = "api") -> Route:
        """Create or replace a route."""
        async with self._write_lock:
            return await asyncio.to_thread(self._write, name, lambda _: spec, caller, source, "route_set")

    async def patch(self, name: str, patch: dict[str, Any], caller: str | None = None, source: str = "api") -> Route:
        """Merge `patch` (JSON merge patch) into the stored route, under the store lock, so
        concurrent patches of different fields from any replica all land."""
        def merged(current: Route | None) -> RouteSpec:
            if current is None:
                raise NotFoundError(f"No route named `{name}` exists.", param="name", code="route_not_found")
            return patched_spec(current.spec, patch)

        async with self._write_lock:
            return await asyncio.to_thread(self._write, name, merged, caller, source, "route_patch")

    def _write(self, name: str, new_spec: Callable[[Route | None], RouteSpec], caller: str | None, source: str,
               action: str, restart_rollout: bool = False) -> Route:
        with self.adapter_store.locked():
            adapters = set(self.adapter_store.load().adapters)
            table = self.store.load()
            spec = new_spec(table.routes.get(name))
            self._check(name, spec, adapters, table)
            route = self._store(table, name, spec, caller, source, action, restart_rollout)
            self._save(table)
        logger.info("route %s v%d: %s", name, route.version,
                    ", ".join(f"{v.target}={v.weight:g}" for v in spec.variants))
        return route

    def _store(self, table: RouteTable, name: str, spec: RouteSpec, caller: str | None, source: str,
               action: str = "route_set", restart_rollout: bool = False) -> Route:
        """Put `spec` in `table` (the caller saves it): a new version when the variants change, and
        the rollback reasons of variants still at weight 0 kept. A rollout keeps its state while its
        spec is unchanged (else it starts again at its first step) and sets the variants' weights."""
        previous = table.routes.get(name)
        now = progression.utcnow()
        state, started = None, False
        if spec.rollout is not None:
            kept = previous is not None and previous.spec.rollout == spec.rollout and not restart_rollout
            state = previous.rollout if kept and previous is not None else None
            if state is None:
                state, started = progression.started(spec.rollout, now, caller), True
            spec = rollout_variants(spec, state)
        if previous is None or previous.spec.variants != spec.variants or started:
            # a rollout (re)started: a new version, so its first step judges its own requests only
            version = max(table.last_versions.get(name, 0), previous.version if previous else 0) + 1
        else:
            version = previous.version
        if started and spec.rollout is not None and state is not None:
            self.store.audit("route_rollout", name, caller=caller, version=version, source=f"started: "
                             f"{spec.rollout.candidate} at {state.step}%, steps {spec.rollout.steps}")
            self.metrics.route_rollout_transitions.labels(name, "started").inc()
        zeroed = {v.target for v in spec.variants if v.weight <= 0}
        rollbacks = {k: why for k, why in (previous.rollbacks if previous else {}).items() if k in zeroed}
        route = Route(name=name, spec=spec, version=version, rollbacks=rollbacks, rollout=state, updated_at=now)
        table.routes[name] = route
        table.last_versions[name] = version
        self.store.audit(action, name, caller=caller, version=version, source=source)
        return route

    def _save(self, table: RouteTable) -> None:
        self.store.save(table)
        self._mtime = self.store.mtime_ns()
        self._install(table)

    def _check(self, name: str, spec: RouteSpec, adapters: set[str], table: RouteTable) -> None:
        if not _NAME_RE.fullmatch(name):
            raise InvalidRequestError(
                f"Invalid route name {name!r}: use 1-64 characters of lowercase letters, digits, '.', '_' "
                "or '-', starting with a letter or digit.", param="name", code="invalid_route_name")
        if name.lower() == self.base_model.lower():
            raise InvalidRequestError(
                f"Route name {name!r} is the base model's; clients could not tell them apart.",
                param="name", code="invalid_route_name")
        if name in adapters:
            raise ConflictError(
                f"Route name {name!r} is taken by a registered adapter; clients could not tell them apart.",
                param="name", code="name_taken")
        for field, target in [(f"variants.{i}.target", v.target) for i, v in enumerate(spec.variants)] + (
                [("shadow.target", spec.shadow.target)] if spec.shadow else []):
            if target != self.base_model and target not in adapters:
                kind = "a route" if target in table.routes else "not the base model or a registered adapter"
                raise InvalidRequestError(
                    f"Route target {target!r} is {kind}; a variant must be `{self.base_model}` or a "
                    "registered adapter.", param=field, code="invalid_route_target")
        if spec.guard is not None and not spec.guard.thresholds():
            raise InvalidRequestError(
                f"A guard needs at least one threshold ({', '.join(THRESHOLDS)}); to remove the guard, "
                "send `guard: null` (CLI: --clear-guard).", param="guard", code="invalid_guard")
        if spec.guard is not None and spec.guard.min_shadow_agreement is not None:
            _check_agreement(spec)
        if spec.rollout is not None:
            self._check_rollout(spec, spec.rollout, adapters)

    def _check_rollout(self, spec: RouteSpec, rollout: RolloutSpec, adapters: set[str]) -> None:
        candidate = rollout.candidate
        if candidate != self.base_model and candidate not in adapters:
            raise InvalidRequestError(
                f"Rollout candidate {candidate!r} is not the base model or a registered adapter.",
                param="rollout.candidate", code="invalid_route_target")
        if candidate == spec.control:
            raise InvalidRequestError(
                f"Rollout candidate {candidate!r} is the route's control (its first variant); roll out "
                "another adapter against it.", param="rollout.candidate", code="invalid_rollout")
        if len(spec.variants) > 2 or (len(spec.variants) == 2 and spec.variants[1].target != candidate):
            raise InvalidRequestError(
                f"A rollout route has exactly two variants, the control (first) and the candidate {candidate!r} "
                "(added when absent); the rollout sets their weights.", param="variants", code="invalid_rollout")
        if spec.guard is None:
            raise InvalidRequestError(
                "A rollout needs a guard: its steps advance only while the guard holds (e.g. "
                "`guard: {\"max_error_rate\": 0.05}`).", param="guard", code="invalid_rollout")

    async def delete(self, name: str, caller: str | None = None) -> Route:
        async with self._write_lock:
            return await asyncio.to_thread(self._delete, name, caller)

    def _delete(self, name: str, caller: str | None) -> Route:
        with self.adapter_store.locked():
            table = self.store.load()
            route = table.routes.pop(name, None)
            if route is None:
                raise NotFoundError(f"No route named `{name}` exists.", param="name", code="route_not_found")
            self.store.audit("route_delete", name, caller=caller, version=route.version)
            self._save(table)
        return route

    async def rollback(self, name: str, variant: str, reason: str, version: int | None = None) -> bool:
        """Zero a variant's weight (never the control's); False if there was nothing to do, or
        (with `version`, the route version the breach was judged on) the stored route is at
        another version: another replica acted on the same figures first, or the route changed."""
        async with self._write_lock:
            done, stopped = await asyncio.to_thread(self._rollback, name, variant, reason, version)
        if done:
            self.metrics.route_rollbacks.labels(name, variant, reason.split(" ", 1)[0]).inc()
            logger.warning("route %s: variant %s rolled back to weight 0: %s", name, variant, reason)
        if stopped:
            self.metrics.route_rollout_transitions.labels(name, "rolled_back").inc()
        return done

    def _rollback(self, name: str, variant: str, reason: str, version: int | None = None) -> tuple[bool, bool]:
        """(rolled back, a rollout stopped)."""
        with self.adapter_store.locked():
            table = self.store.load()
            route = table.routes.get(name)
            if route is None or variant == route.spec.control or version not in (None, route.version):
                return False, False
            variants = [v.model_copy(update={"weight": 0.0}) if v.target == variant else v for v in route.spec.variants]
            if variants == route.spec.variants:
                return False, False
            if sum(v.weight for v in variants) <= 0:  # all traffic was on this variant: back to the control
                variants[0] = variants[0].model_copy(update={"weight": 1.0})
            state = route.rollout
            rollout = route.spec.rollout
            if state is not None and rollout is not None and variant == rollout.candidate \
                    and state.status != "rolled_back":  # the rollout stops: the control takes it all
                state = progression.rolled_back(state, reason, datetime.now(timezone.utc))
                variants = rollout_variants(route.spec, state).variants
            updated = route.model_copy(update={
                "spec": route.spec.model_copy(update={"variants": variants}),
                "version": max(table.last_versions.get(name, 0), route.version) + 1, "updated_at": datetime.now(timezone.utc),
                "rollbacks": route.rollbacks | {variant: reason}, "rollout": state,
            })
            table.routes[name] = updated
            table.last_versions[name] = updated.version
            self.store.audit("route_rollback", name, version=updated.version, source=f"{variant}: {reason}")
            self._save(table)
        return True, state is not route.rollout


def _check_agreement(spec: RouteSpec) -> None:
    """Shadow agreement is judged on the variant the route mirrors the control's requests to."""
    judged = {spec.rollout.candidate} if spec.rollout else {v.target for v in spec.variants[1:]}
    if spec.shadow is None or spec.shadow.target not in judged:
        what = f"the rollout's candidate {spec.rollout.candidate!r}" if spec.rollout else \
            "a variant other than the control"
        raise InvalidRequestError(
            f"guard.min_shadow_agreement compares a variant's decisions with the control's on mirrored requests: "
            f"the route needs a shadow whose target is {what}.", param="guard.min_shadow_agreement",
            code="invalid_guard")
