"""A route's rollout changed in the store: started again, advanced by the guard loop, paused,
resumed or aborted through the API. Part of RouteRegistry (a mixin over its store and lock).

Every change is made under the store's lock on what the store holds now, so with several
replicas only one acts on a step (the others find the route's version or rollout state changed
and do nothing), and every change is audited and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from service.errors import ConflictError, InvalidRequestError, NotFoundError
from service.routing import progression
from service.routing.progression import RolloutSpec, RolloutState
from service.routing.types import Route, RouteSpec, RouteTable, RouteVariant

if TYPE_CHECKING:
    from service.adapters import AdapterStore
    from service.observability import Metrics
    from service.routing.store import RouteStore

logger = logging.getLogger(__name__)
RolloutAction = Literal["pause", "resume", "abort"]


def rollout_variants(spec: RouteSpec, state: RolloutState) -> RouteSpec:
    """`spec` with the variants a rollout state gives: the control and the candidate at its step."""
    assert spec.rollout is not None
    control, candidate = progression.weights(state)
    return spec.model_copy(update={"variants": [RouteVariant(target=spec.control, weight=control),
                                                RouteVariant(target=spec.rollout.candidate, weight=candidate)]})


def _refused(name: str, state: RolloutState, action: str, allowed: str) -> ConflictError:
    return ConflictError(f"The rollout of route {name} is {state.status}: only a {allowed} rollout can be "
                         f"{action}.", param="name", code="rollout_state")


class RolloutOperations:
    adapter_store: AdapterStore
    store: RouteStore
    metrics: Metrics
    _write_lock: asyncio.Lock

    # Provided by RouteRegistry.
    def _save(self, table: RouteTable) -> None: ...  # pragma: no cover

    def _write(self, name: str, new_spec: Callable[[Route | None], RouteSpec], caller: str | None, source: str,
               action: str, restart_rollout: bool = False) -> Route: ...  # pragma: no cover

    async def start_rollout(self, name: str, rollout: RolloutSpec, caller: str | None = None,
                            source: str = "api") -> Route:
        """(Re)start a rollout on an existing route at its first step, whatever its state was. The
        control is the route's control, or the candidate of a completed rollout (it serves all the
        traffic); variants without weight are dropped, others are refused (400 naming `variants`).
        `source` is audited (e.g. the gate report the rollout was started on)."""
        def spec(current: Route | None) -> RouteSpec:
            if current is None:
                raise NotFoundError(f"No route named `{name}` exists.", param="name", code="route_not_found")
            control = current.spec.control
            if current.rollout is not None and current.rollout.status == "completed" and current.spec.rollout:
                control = current.spec.rollout.candidate
            others = [v.target for v in current.spec.variants if v.weight > 0 and v.target not in
                      (control, rollout.candidate)]
            if others:
                raise InvalidRequestError(
                    f"A rollout route has exactly two variants, the control {control!r} and the candidate; "
                    f"{', '.join(others)} still get traffic: give it to the control first.", param="variants",
                    code="invalid_rollout")
            variants = [RouteVariant(target=control, weight=100.0)]
            return current.spec.model_copy(update={"variants": variants, "rollout": rollout})

        async with self._write_lock:
            return await asyncio.to_thread(self._write, name, spec, caller, source, "route_rollout_start", True)

    async def rollout_action(self, name: str, action: RolloutAction, caller: str | None = None) -> Route:
        """pause (a progressing rollout holds its step; the guard still watches), resume (a paused
        one progresses again) or abort (the control gets all the traffic: status `rolled_back`,
        reason "aborted by CALLER"); 409 when the rollout's status does not allow it."""
        def change(route: Route, state: RolloutState) -> RolloutState:
            now = progression.utcnow()
            if action == "pause":
                if state.status != "progressing":
                    raise _refused(name, state, "paused", "progressing")
                return progression.paused(state, now, caller)
            if action == "resume":
                if state.status != "paused":
                    raise _refused(name, state, "resumed", "paused")
                return progression.resumed(state, now, caller)
            if state.status not in ("progressing", "paused"):
                raise _refused(name, state, "aborted", "progressing or paused")
            return progression.rolled_back(state, f"aborted by {caller or 'an unnamed caller'}", now, caller, "aborted")

        async with self._write_lock:
            return await asyncio.to_thread(self._change_rollout, name, change, caller)

    async def progress(self, name: str, version: int, before: RolloutState, after: RolloutState) -> bool:
        """Store a step the guard loop decided (`after`, from `before` at route version `version`);
        False when the route changed meanwhile (another replica acted first, or an API call)."""
        def change(route: Route, state: RolloutState) -> RolloutState:
            return after if route.version == version and state == before else state

        async with self._write_lock:
            try:
                route = await asyncio.to_thread(self._change_rollout, name, change, None)
            except NotFoundError:
                return False  # deleted, or its rollout removed, meanwhile
        return route.rollout == after

    def _change_rollout(self, name: str, change: Callable[[Route, RolloutState], RolloutState],
                        caller: str | None) -> Route:
        with self.adapter_store.locked():
            table = self.store.load()
            route = table.routes.get(name)
            if route is None:
                raise NotFoundError(f"No route named `{name}` exists.", param="name", code="route_not_found")
            if route.spec.rollout is None or route.rollout is None:
                raise NotFoundError(f"Route {name} has no rollout (start one with POST /admin/routes/{name}/rollout "
                                    "or `loragate routes rollout`).", param="name", code="rollout_not_found")
            state = change(route, route.rollout)
            if state is route.rollout:
                return route
            spec = rollout_variants(route.spec, state)
            changed = spec.variants != route.spec.variants
            version = max(table.last_versions.get(name, 0), route.version) + 1 if changed else route.version
            zeroed = {v.target for v in spec.variants if v.weight <= 0}
            rollbacks = {k: why for k, why in route.rollbacks.items() if k in zeroed}
            if state.status == "rolled_back" and state.reason:
                rollbacks[route.spec.rollout.candidate] = state.reason
            updated = route.model_copy(update={"spec": spec, "version": version, "rollout": state,
                                               "rollbacks": rollbacks, "updated_at": progression.utcnow()})
            table.routes[name] = updated
            table.last_versions[name] = version
            event = state.history[-1]
            reason = f" ({event.reason})" if event.reason else ""
            self.store.audit("route_rollout", name, caller=caller, version=version,
                             source=f"{event.transition}: {route.spec.rollout.candidate} at {event.step}%{reason}")
            self._save(table)
        self.metrics.route_rollout_transitions.labels(name, event.transition).inc()
        logger.info("route %s v%d: rollout %s, %s at %d%%%s", name, version, event.transition,
                    route.spec.rollout.candidate, event.step, reason)
        return updated
