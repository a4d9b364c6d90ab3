"""A/B route report (GET /admin/routes/{name}/report): each variant's figures and its difference
from the control, with confidence intervals, so "v2 is better" comes with its uncertainty.

Pure function of the samples: no HTTP, no registry. Definitions match stats.py:
- errors: status >= 400 (the guard in service/routing/rollout.py rolls back on status >= 500 only);
- latency and TTFT percentiles and mean token counts use successful (status < 400) requests only,
  percentiles interpolate linearly between closest ranks;
- structured validity: valid / structured requests (invalid and truncated replies count against it).

Only the samples of one route version are judged when `version` is given (the API passes the
current one). Primary traffic (`shadow=False`) is grouped per variant; mirrored requests (`shadow=True`) are
grouped per shadow target separately and never mixed into a variant. The control is the first
entry of `variant_order`. Each other variant and each shadow target is compared with the control's
primary traffic: rate differences with Newcombe's hybrid score interval, latency/TTFT percentiles
and mean completion tokens with a percentile bootstrap (comparison.py). Every difference is
(variant - control). A shadow target's decisions on mirrored requests the control answered are
also compared request by request with the control's: its agreement per label, with a Wilson interval.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from service.observability.comparison import (
    Interval,
    Statistic,
    bootstrap_difference,
    proportion_difference,
    wilson_interval,
)
from service.observability.stats import (
    FiguresFrom,
    OutcomeSample,
    RequestSample,
    agreement,
    agreement_pairs,
    decision_figures,
    mean,
    percentile,
)

MetricName = Literal[
    "error_rate", "structured_valid_rate", "latency_p50_s", "latency_p95_s", "ttft_p50_s", "ttft_p95_s",
    "mean_completion_tokens",
]


class LabelDistribution(BaseModel):
    """How often each value of one outcome label (e.g. category) was decided."""

    total: int = Field(description="Outcomes that carry this label.")
    counts: dict[str, int] = Field(description="Value -> count, most frequent first.")
    shares: dict[str, float] = Field(description="Value -> count / total.")


class LabelAgreement(BaseModel):
    """A shadow target's agreement with the control on one label, over mirrored requests the
    control answered (the same request decided by both)."""

    pairs: int = Field(description="Mirrored requests both decided this label for.")
    agreed: int
    rate: float
    low: float = Field(description="95% Wilson interval, lower bound.")
    high: float = Field(description="95% Wilson interval, upper bound.")


class VariantFigures(BaseModel):
    variant: str
    shadow: bool = Field(description="True for a shadow target's mirrored requests.")
    control: bool = Field(description="The route's first variant (primary traffic only).")
    requests: int
    errors: int = Field(description="Requests answered with status >= 400.")
    error_rate: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    mean_prompt_tokens: float | None
    mean_completion_tokens: float | None
    structured_requests: int
    structured_valid: int
    structured_valid_rate: float | None
    outcomes: int = Field(description="Requests whose task decision was recorded (triage).")
    labels: dict[str, LabelDistribution] = Field(description="Label key (category, priority) -> distribution.")
    needs_review_rate: float | None = Field(None, description="Share of triage decisions flagged for review.")
    mean_confidence: dict[str, float] = Field(default_factory=dict, description="Field -> mean confidence.")
    urgent_rate: float | None = Field(None, description="Share of triage decisions with priority urgent.")
    rolled_back: str | None = Field(None, description="Why a guard set this variant's weight to 0, if it did.")
    agreement: dict[str, LabelAgreement] = Field(default_factory=dict, description="Shadow targets: label -> "
                                                 "agreement with the control's decision for the same request.")


class MetricComparison(BaseModel):
    metric: MetricName
    method: Literal["newcombe", "bootstrap"]
    control_value: float | None
    variant_value: float | None
    difference: Interval | None = Field(description="variant - control; None without enough data.")
    significant: bool = Field(description="The interval excludes 0.")
    verdict: str


class VariantComparison(BaseModel):
    variant: str
    shadow: bool
    control: str
    metrics: list[MetricComparison]
    verdict: str = Field(description="The significant differences in plain words, or 'no significant difference'.")


class RouteReport(BaseModel):
    route: str
    version: int | None = Field(None, description="The route version judged: samples routed by earlier versions "
                                "(before the last change of the variants or weights) are left out.")
    source: str | None = Field(None, description="Where the figures come from, and what they lose.")
    figures_from: FiguresFrom = Field("this_replica", description="`prometheus`: every replica's requests, read "
                                      "from Prometheus (--prometheus-url); `this_replica`: the in-process samples "
                                      "of the replica that answered.")
    window_seconds: float
    generated_at: float = Field(description="Unix time the report was built.")
    confidence: float
    control: str | None = Field(description="The first variant of the route; the reference of every comparison.")
    variants: list[VariantFigures] = Field(description="Primary traffic, in the route's variant order.")
    shadows: list[VariantFigures] = Field(description="Mirrored traffic per shadow target.")
    comparisons: list[VariantComparison]
    rollbacks: dict[str, str] = Field(description="Variant -> why a guard rolled it back.")


# metric -> (words in a verdict, kind of number)
_METRICS: dict[MetricName, tuple[str, Literal["rate", "seconds", "count"]]] = {
    "error_rate": ("error rate", "rate"),
    "structured_valid_rate": ("structured-output validity", "rate"),
    "latency_p50_s": ("p50 latency", "seconds"),
    "latency_p95_s": ("p95 latency", "seconds"),
    "ttft_p50_s": ("p50 TTFT", "seconds"),
    "ttft_p95_s": ("p95 TTFT", "seconds"),
    "mean_completion_tokens": ("mean completion tokens", "count"),
}
_BOOTSTRAPPED: dict[MetricName, tuple[str, Statistic]] = {  # metric -> (sample values, statistic)
    "latency_p50_s": ("latency", "p50"),
    "latency_p95_s": ("latency", "p95"),
    "ttft_p50_s": ("ttft", "p50"),
    "ttft_p95_s": ("ttft", "p95"),
    "mean_completion_tokens": ("completion_tokens", "mean"),
}


class _Group:
    """One variant's (or shadow target's) samples, with the value lists the comparisons need."""

    def __init__(self, samples: list[RequestSample], outcomes: list[OutcomeSample]) -> None:
        self.samples = samples
        self.outcomes = outcomes
        ok = [s for s in samples if s.status < 400]
        self.ok = ok
        self.errors = len(samples) - len(ok)
        self.latency = sorted(s.duration_s for s in ok)
        self.ttft = sorted(s.ttft_s for s in ok if s.ttft_s is not None)
        self.completion_tokens = [float(s.completion_tokens) for s in ok]
        self.prompt_tokens = [float(s.prompt_tokens) for s in ok]
        structured = [s for s in samples if s.structured_output is not None]
        self.structured = len(structured)
        self.valid = sum(1 for s in structured if s.structured_output == "valid")

    def figures(self, variant: str, *, shadow: bool, control: bool, rolled_back: str | None) -> VariantFigures:
        n = len(self.samples)
        decisions = decision_figures(self.outcomes)
        return VariantFigures(
            variant=variant, shadow=shadow, control=control, requests=n, errors=self.errors,
            error_rate=self.errors / n if n else None,
            latency_p50_s=percentile(self.latency, 50), latency_p95_s=percentile(self.latency, 95),
            ttft_p50_s=percentile(self.ttft, 50), ttft_p95_s=percentile(self.ttft, 95),
            mean_prompt_tokens=mean(self.prompt_tokens), mean_completion_tokens=mean(self.completion_tokens),
            structured_requests=self.structured, structured_valid=self.valid,
            structured_valid_rate=self.valid / self.structured if self.structured else None,
            outcomes=len(self.outcomes), labels=_distributions(self.outcomes), rolled_back=rolled_back,
            **(decisions.model_dump(include={"needs_review_rate", "mean_confidence", "urgent_rate"}) if decisions else {}),
        )


def _distributions(outcomes: Iterable[OutcomeSample]) -> dict[str, LabelDistribution]:
    per_key: dict[str, Counter[str]] = {}
    for outcome in outcomes:
        for key, value in outcome.labels:
            per_key.setdefault(key, Counter())[value] += 1
    result = {}
    for key in sorted(per_key):
        counter = per_key[key]
        total = sum(counter.values())
        ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
        result[key] = LabelDistribution(
            total=total, counts=dict(ordered), shares={value: count / total for value, count in ordered},
        )
    return result


def _agreement(pairs: list[OutcomeSample], confidence: float) -> dict[str, LabelAgreement]:
    figures = {}
    for key, (agreed, n) in agreement(pairs).items():
        low, high = wilson_interval(agreed, n, confidence)
        figures[key] = LabelAgreement(pairs=n, agreed=agreed, rate=agreed / n, low=low, high=high)
    return figures


# --------------------------------------------------------------------------------------------
# verdicts
# --------------------------------------------------------------------------------------------


def _format(values: Sequence[float], kind: str) -> tuple[list[str], str]:
    """The numbers as text in one shared unit, and that unit (for a sentence)."""
    if kind == "rate":
        return [f"{v * 100:.1f}" for v in values], "points"
    if kind == "seconds":
        largest = max(abs(v) for v in values)
        if largest >= 1:
            return [f"{v:.2f}" for v in values], "s"
        decimals = 0 if largest >= 0.1 else 1
        return [f"{v * 1000:.{decimals}f}" for v in values], "ms"
    return [f"{v:.1f}" for v in values], ""


def _verdict(variant: str, metric: MetricName, difference: Interval | None) -> str:
    words, kind = _METRICS[metric]
    if difference is None:
        return f"{variant} {words}: not enough data"
    (magnitude, low, high), unit = _format([abs(difference.estimate), difference.low, difference.high], kind)
    level = f"{difference.confidence * 100:g}% CI"
    unit_after_ci = f" {unit}" if unit and unit != "points" else ""
    if not difference.excludes_zero():
        return f"{variant} {words}: no significant difference ({level} {low} to {high}{unit_after_ci})"
    direction = "higher" if difference.estimate > 0 else "lower"
    amount = f"{magnitude} {unit}" if unit else magnitude
    return f"{variant} {words} {amount} {direction} ({level} {low} to {high}{unit_after_ci})"


def _compare(group: _Group, figures: VariantFigures, control: _Group, control_figures: VariantFigures, *,
             confidence: float, resamples: int, seed: int) -> VariantComparison:
    variant = figures.variant
    metrics: list[MetricComparison] = []
    rates = {
        "error_rate": (control.errors, len(control.samples), group.errors, len(group.samples)),
        "structured_valid_rate": (control.valid, control.structured, group.valid, group.structured),
    }
    for metric, counts in rates.items():
        difference = proportion_difference(*counts, confidence=confidence)
        metrics.append(MetricComparison(
            metric=metric, method="newcombe", control_value=getattr(control_figures, metric),
            variant_value=getattr(figures, metric), difference=difference,
            significant=difference is not None and difference.excludes_zero(),
            verdict=_verdict(variant, metric, difference),
        ))
    for metric, (values, statistic) in _BOOTSTRAPPED.items():
        difference = bootstrap_difference(getattr(control, values), getattr(group, values), statistic,
                                          confidence=confidence, resamples=resamples, seed=seed)
        metrics.append(MetricComparison(
            metric=metric, method="bootstrap", control_value=getattr(control_figures, metric),
            variant_value=getattr(figures, metric), difference=difference,
            significant=difference is not None and difference.excludes_zero(),
            verdict=_verdict(variant, metric, difference),
        ))
    significant = [m.verdict for m in metrics if m.significant]
    if significant:
        verdict = "; ".join(significant)
    elif all(m.difference is None for m in metrics):
        verdict = "not enough data"
    else:
        verdict = "no significant difference"
    return VariantComparison(variant=variant, shadow=figures.shadow, control=control_figures.variant,
                             metrics=metrics, verdict=verdict)


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def _ordered(names: Iterable[str], order: Sequence[str]) -> list[str]:
    """`order` first (all of it), then any other name seen, alphabetically."""
    seen = set(names)
    return list(order) + sorted(seen - set(order))


def build_route_report(route: str, samples: Iterable[RequestSample], outcomes: Iterable[OutcomeSample],
                       window_s: float, variant_order: list[str], rollbacks: dict[str, str] | None = None,
                       generated_at: float | None = None, *, version: int | None = None, source: str | None = None,
                       figures_from: FiguresFrom = "this_replica", confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> RouteReport:
    """The report of one route over the given samples (those of other routes, and with `version`
    those routed by another version of the route, are ignored).

    Every variant of `variant_order` is listed, with zero requests if it had no traffic; variants
    seen in the samples but no longer configured follow, alphabetically. The bootstrap is seeded,
    so the same samples always give the same report.
    """
    rollbacks = dict(rollbacks or {})
    samples = [s for s in samples if s.route == route and version in (None, s.route_version)]
    outcomes = [o for o in outcomes if o.route == route and version in (None, o.route_version)]
    order = list(dict.fromkeys(variant_order))  # drop repeats, keep order
    control_name = order[0] if order else None

    def groups(shadow: bool, order: Sequence[str]) -> dict[str, _Group]:
        mine = [s for s in samples if s.shadow is shadow]
        decided = [o for o in outcomes if o.shadow is shadow]
        names = _ordered([s.variant for s in mine] + [o.variant for o in decided], order)
        return {name: _Group([s for s in mine if s.variant == name], [o for o in decided if o.variant == name])
                for name in names}

    primary = groups(False, order)
    shadows = groups(True, [])
    variants = {name: group.figures(name, shadow=False, control=name == control_name, rolled_back=rollbacks.get(name))
                for name, group in primary.items()}
    shadow_figures = {name: group.figures(name, shadow=True, control=False, rolled_back=None)
                      for name, group in shadows.items()}
    for name, figures in shadow_figures.items():
        if control_name is not None:
            figures.agreement = _agreement(agreement_pairs(outcomes, name, control_name), confidence)

    comparisons: list[VariantComparison] = []
    if control_name is not None:
        control, control_figures = primary[control_name], variants[control_name]
        others = [(primary[name], figures) for name, figures in variants.items() if name != control_name]
        others += [(shadows[name], figures) for name, figures in shadow_figures.items()]
        comparisons = [_compare(group, figures, control, control_figures,
                                confidence=confidence, resamples=resamples, seed=seed)
                       for group, figures in others]

    return RouteReport(
        route=route, version=version, source=source, figures_from=figures_from, window_seconds=window_s,
        generated_at=time.time() if generated_at is None else generated_at,
        confidence=confidence, control=control_name, variants=list(variants.values()),
        shadows=list(shadow_figures.values()),
        comparisons=comparisons, rollbacks=rollbacks,
    )
