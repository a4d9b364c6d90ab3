"""Automatic rollback: a route's guard thresholds, judged on the route's recent traffic.

Only primary traffic of the route's current version counts (shadow results never change the
primary; samples routed by an earlier version, e.g. before a rollback or a weight change, are
not judged). A variant is judged once it has `min_samples` requests in the guard's window: errors
are server-side failures (status >= 500, e.g. no schema-valid output: the variant's fault; a 4xx
is the client's and never counts), invalid outputs are structured replies that are not valid
(invalid or truncated), latency is p95 of successful requests against the control's p95, the
review rate is the share of the variant's triage decisions flagged for a person (an absolute
ceiling: it is the review workload; the control's rate is stated beside it), and the shadow
agreement is, per label, the share of the control's requests mirrored to the variant (the route's
shadow target) on which the variant decided the label the control returned to the client.

A route with a progressing or paused rollout (see `progression`) judges its candidate over every
request of the current step instead (a step is a route version; as far back as the samples go),
then advances the step when it holds.

The samples come from a RouteSampleSource: this replica's (default), or the fleet's from
Prometheus (`--prometheus-url`), read off the event loop. When the source cannot answer (Prometheus
unreachable) the guard holds: it neither rolls back nor advances, and logs why (once per outage).
Every replica may judge a breach; the store's lock decides: a rollback or a step names the route
version it was judged on, and a replica that finds the route past that version does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from service.errors import DependencyFailedError
from service.observability import OutcomeSample, RequestSample, RouteSampleSource
from service.observability.comparison import wilson_interval
from service.observability.stats import agreement, agreement_pairs, percentile
from service.routing import progression
from service.routing.registry import RouteRegistry
from service.routing.types import Route, RouteGuard

logger = logging.getLogger(__name__)


def _rate(name: str, bad: int, n: int, limit: float, unit: str) -> tuple[bool, str]:
    """(over the limit, the figure with its 95% Wilson interval)."""
    rate = bad / n
    low, high = wilson_interval(bad, n)
    over = rate > limit
    return over, (f"{name} {rate:.3f} {'>' if over else '<='} {limit:g} over {n} {unit} "
                  f"(95% interval {low:.3f}-{high:.3f})")


def _agreement(guard: RouteGuard, pairs: Sequence[OutcomeSample]) -> list[tuple[bool, str]]:
    """Per label, the share of shadow decisions agreeing with the control's (under the minimum: a breach)."""
    judged = []
    assert guard.min_shadow_agreement is not None
    for key, (agreed, n) in agreement(pairs).items():
        if n >= guard.min_samples:
            rate, (low, high) = agreed / n, wilson_interval(agreed, n)
            under = rate < guard.min_shadow_agreement
            judged.append((under, f"{key}_agreement {rate:.3f} {'<' if under else '>='} {guard.min_shadow_agreement:g} "
                           f"with the control over {n} shadow pairs (95% interval {low:.3f}-{high:.3f})"))
    return judged


def judge(guard: RouteGuard, variant: list[RequestSample], control: list[RequestSample],
          decisions: Sequence[OutcomeSample] = (), *, control_decisions: Sequence[OutcomeSample] = (),
          pairs: Sequence[OutcomeSample] = ()) -> tuple[str | None, list[str]]:
    """(why `variant` breaks the guard, or None; every figure judged, each with its 95% interval
    or sample sizes). A threshold is judged only with `min_samples` of what it counts; `pairs`:
    the variant's shadow decisions on the control's requests (`agreement_pairs`)."""
    n = len(variant)
    if n < guard.min_samples:
        return None, []
    judged: list[tuple[bool, str]] = []
    if guard.max_error_rate is not None:
        judged.append(_rate("error_rate", sum(s.status >= 500 for s in variant), n, guard.max_error_rate, "requests"))
    structured = [s for s in variant if s.structured_output is not None]
    if guard.max_invalid_rate is not None and len(structured) >= guard.min_samples:
        invalid = sum(s.structured_output != "valid" for s in structured)
        judged.append(_rate("invalid_rate", invalid, len(structured), guard.max_invalid_rate, "structured replies"))
    if guard.max_p95_latency_ratio is not None:
        ok = [s.duration_s for s in variant if s.status < 400]
        reference = [s.duration_s for s in control if s.status < 400]
        if len(ok) >= guard.min_samples and len(reference) >= guard.min_samples:
            mine, theirs = percentile(ok, 95) or 0.0, percentile(reference, 95) or 0.0
            ratio = mine / max(theirs, 1e-9)
            over = ratio > guard.max_p95_latency_ratio
            judged.append((over, f"p95_latency_ratio {ratio:.2f} {'>' if over else '<='} "
                           f"{guard.max_p95_latency_ratio:g} vs the control (p95 {mine:.3f} s over {len(ok)} "
                           f"requests, the control's {theirs:.3f} s over {len(reference)})"))
    assessed = [d.needs_review for d in decisions if d.needs_review is not None]
    if guard.max_needs_review_rate is not None and len(assessed) >= guard.min_samples:
        over, figure = _rate("needs_review_rate", sum(assessed), len(assessed), guard.max_needs_review_rate,
                             "decisions")
        theirs = [d.needs_review for d in control_decisions if d.needs_review is not None]
        if theirs:  # context only: the limit is absolute
            figure += f"; the control's {sum(theirs) / len(theirs):.3f} over {len(theirs)}"
        judged.append((over, figure))
    if guard.min_shadow_agreement is not None:
        judged += _agreement(guard, pairs)
    reason = next((figure for over, figure in judged if over), None)
    return reason, [figure for _, figure in judged]


def breach(guard: RouteGuard, variant: list[RequestSample], control: list[RequestSample],
           decisions: Sequence[OutcomeSample] = ()) -> str | None:
    """Why `variant` breaks the guard (a reason starting with its metric's name, with the figure,
    its limit, the sample size and the 95% interval), or None; `decisions`: the variant's task
    decisions (triage review flags)."""
    return judge(guard, variant, control, decisions)[0]


class RolloutGuard:
    """Checks a route after its requests finish (at most once per `interval_s` per route)."""

    def __init__(self, routes: RouteRegistry, stats: RouteSampleSource, interval_s: float = 1.0) -> None:
        self.routes = routes
        self.stats = stats
        self.interval_s = interval_s
        self._checked: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: set[str] = set()  # routes whose figures the source could not give (said once)

    def request_finished(self, route_name: str) -> None:
        route = self.routes.get(route_name)
        now = time.monotonic()
        if route is None or route.spec.guard is None or now - self._checked.get(route_name, 0.0) < self.interval_s:
            return
        self._checked[route_name] = now
        task = asyncio.get_running_loop().create_task(self._check_in_background(route))
        self._tasks.add(task)  # a reference, so the task cannot be collected mid-flight
        task.add_done_callback(self._tasks.discard)

    def tick(self) -> None:
        """Check the routes whose rollout is progressing (called periodically), so a step whose
        interval ends after the traffic stopped still advances."""
        for route in self.routes.routes():
            if route.rollout is not None and route.rollout.status == "progressing":
                self.request_finished(route.name)

    async def _check_in_background(self, route: Route) -> None:
        # Nobody awaits this task: a failure is logged here, or it would be lost.
        try:
            await self.check(route)
            if route.name in self._held:
                self._held.discard(route.name)
                logger.info("route %s: the guard has its figures again (%s)", route.name, self.stats.figures_from)
        except DependencyFailedError as exc:  # the source's figures are unavailable
            if route.name not in self._held:
                self._held.add(route.name)
                logger.warning("route %s: the guard holds (no rollback, no step) until its figures are back: %s",
                               route.name, exc.message)
        except Exception:
            logger.exception("Rollout check of route %s failed", route.name)

    async def check(self, route: Route) -> list[str]:
        """Roll back every variant that breaks the guard; returns the variants rolled back."""
        guard = route.spec.guard
        if guard is None:
            return []
        samples, outcomes = await self._window(route, guard.window_s)
        primary = [s for s in samples if not s.shadow]
        decided = [o for o in outcomes if not o.shadow]
        control = [s for s in primary if s.variant == route.spec.control]
        control_decided = [o for o in decided if o.variant == route.spec.control]
        rolled_back = []
        stepping = route.rollout is not None and route.rollout.status in ("progressing", "paused")
        candidate = route.spec.rollout.candidate if stepping and route.spec.rollout else None
        for variant in route.spec.variants[1:]:
            if variant.weight <= 0 or variant.target == candidate:
                continue  # a rollout's candidate is judged on its whole step below
            reason, _ = judge(guard, [s for s in primary if s.variant == variant.target], control,
                              [o for o in decided if o.variant == variant.target], control_decisions=control_decided,
                              pairs=agreement_pairs(outcomes, variant.target, route.spec.control))
            if reason is not None:  # and what it was judged on
                reason += f"; version {route.version}, last {guard.window_s:g} s"
            if reason is not None and await self.routes.rollback(route.name, variant.target, reason,
                                                                 version=route.version):
                rolled_back.append(variant.target)
        if stepping:
            rolled_back += await self.step(route, guard)
        return rolled_back

    async def _window(self, route: Route, window_s: float | None) -> tuple[list[RequestSample], list[OutcomeSample]]:
        """The route's current version's samples (off the event loop: a source may block on HTTP)."""
        return await asyncio.to_thread(self.stats.route_window, route.name, window_s, version=route.version)

    async def step(self, route: Route, guard: RouteGuard) -> list[str]:
        """Judge a rollout's candidate over the current step and store what `progression.decide`
        makes of it (an advance, or a rollback through the guard's rollback path)."""
        spec, state = route.spec.rollout, route.rollout
        if spec is None or state is None:
            return []
        samples, outcomes = await self._window(route, None)
        primary = [s for s in samples if not s.shadow]
        candidate = [s for s in primary if s.variant == spec.candidate]
        control = route.spec.control
        pairs = agreement_pairs(outcomes, spec.candidate, control)
        reason, figures = judge(guard, candidate, [s for s in primary if s.variant == control],
                                [o for o in outcomes if not o.shadow and o.variant == spec.candidate],
                                control_decisions=[o for o in outcomes if not o.shadow and o.variant == control],
                                pairs=pairs)
        judged_on = f"step {state.step}% (version {route.version}), {len(candidate)} candidate requests"
        # With a shadow agreement threshold, a step also needs that many shadow pairs: it never
        # advances on agreement it has not judged.
        samples_seen = len(candidate) if guard.min_shadow_agreement is None else min(len(candidate), len(pairs))
        if guard.min_shadow_agreement is not None:
            judged_on += f", {len(pairs)} shadow pairs"
        reason = f"{reason}; {judged_on}" if reason is not None else None
        held = f"held at {judged_on}: {'; '.join(figures)}" if figures else None
        after = progression.decide(spec, state, reason, samples_seen, progression.utcnow(), guard.min_samples, held)
        if after is state:
            return []
        if after.status == "rolled_back" and reason is not None:
            rolled_back = await self.routes.rollback(route.name, spec.candidate, reason, version=route.version)
            return [spec.candidate] if rolled_back else []
        await self.routes.progress(route.name, route.version, state, after)
        return []
