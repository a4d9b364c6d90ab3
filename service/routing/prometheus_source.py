"""A route's figures for the whole fleet, read from Prometheus (`--prometheus-url`), as Argo
Rollouts and Flagger do: every replica's guard and report judge the same figures, and nothing is
lost when a replica restarts.

The queries read the per-variant series loragate exports (service/observability/metrics.py),
selected by `route` and `route_version`, so a version's figures are its own. Counts must be exact
(the guard needs `min_samples` and Wilson intervals over whole requests), which `increase()` is
not: it extrapolates to the window's edges and misses a series' first scrape (a version's series
are born with its first request). So every count is a sum of scrape-to-scrape increases, taken
at the subquery's step:

    sum_over_time(((S - S offset STEP) >= 0 or S * 1)[WINDOW:STEP])

a positive step adds its increase, a new series (nothing STEP ago) or a counter reset (a restarted
replica) adds its whole value. Latency and TTFT come from the histograms' bucket counts, spread
within each bucket as `histogram_quantile` does (so a p95 is exact only to the bucket bounds).

The guard and the report take samples (RouteSampleSource), so this module makes them from the
figures: one RequestSample per request counted, with its status, structured-output result,
interpolated latency and the mean token counts; one OutcomeSample per triage decision, with its
review flag and the mean confidence. What Prometheus does not hold is left out: shadow traffic,
label distributions (category, priority) and per-request pairs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import httpx

from service.observability import FiguresFrom, OutcomeSample, RequestSample, figures_unavailable

logger = logging.getLogger(__name__)

MAX_STEPS = 250  # subquery steps per count: a window's figures cost at most this many evaluations
CHECK_INTERVAL_S = 5.0  # the guard's checks per route with Prometheus: its figures change per scrape only

Labels = dict[str, str]
Vector = list[tuple[Labels, float]]

# name -> (series, grouped by): every count a route's samples are made from.
SERIES: dict[str, tuple[str, str]] = {
    "requests": ("loragate_requests_total", "variant, base_model, model, endpoint, status"),
    "latency": ("loragate_request_duration_seconds_bucket", "variant, le"),
    "ttft": ("loragate_time_to_first_token_seconds_bucket", "variant, le"),
    "structured": ("loragate_structured_output_total", "variant, result"),
    "prompt_tokens": ("loragate_prompt_tokens_total", "variant"),
    "completion_tokens": ("loragate_completion_tokens_total", "variant"),
    "needs_review": ("loragate_triage_needs_review_total", "variant"),
    "decisions": ("loragate_triage_confidence_ratio_count", "variant, field"),
    "confidence": ("loragate_triage_confidence_ratio_sum", "variant, field"),
}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def duration(seconds: float) -> str:
    """A PromQL duration (whole milliseconds: PromQL has no fractional durations)."""
    return f"{max(1, round(seconds * 1000))}ms"


def step_for(window_s: float) -> float:
    """The subquery step of a window: at least 1 s, at most MAX_STEPS steps."""
    return float(max(1, math.ceil(window_s / MAX_STEPS)))


def selector(series: str, route: str, version: int | None) -> str:
    matchers = [f"route={_quote(route)}"] + ([f"route_version={_quote(str(version))}"] if version is not None else [])
    return f"{series}{{{','.join(matchers)}}}"


def window_count(series: str, by: str, route: str, version: int | None, window_s: float) -> str:
    """The exact increase of a counter (or histogram bucket, count or sum) over the last
    `window_s`, summed over replicas by `by`: see the module's doc."""
    s, step = selector(series, route, version), duration(step_for(window_s))
    return (f"sum by ({by}) (sum_over_time((({s} - {s} offset {step}) >= 0 or {s} * 1)"
            f"[{duration(window_s)}:{step}]))")


def route_queries(route: str, version: int | None, window_s: float) -> dict[str, str]:
    """Every query a route's samples need, by name (SERIES)."""
    return {name: window_count(series, by, route, version, window_s) for name, (series, by) in SERIES.items()}


def parse_vector(body: Any) -> Vector:
    """(labels, value) per series of an instant query's answer (/api/v1/query); NaN values are
    dropped. An error answer or another result type raises `figures_unavailable(...)`."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error", body) if isinstance(body, dict) else body
        raise figures_unavailable(f"Prometheus refused the query: {error}")
    data = body.get("data") or {}
    if data.get("resultType") != "vector":
        raise figures_unavailable(f"Prometheus answered a {data.get('resultType')!r}, not a vector")
    vector: Vector = []
    for series in data.get("result", []):
        value = float(series["value"][1])
        if not math.isnan(value):
            vector.append(({str(k): str(v) for k, v in series.get("metric", {}).items()}, value))
    return vector


def bucket_values(cumulative: Mapping[float, float], n: int) -> list[float]:
    """`n` values spread over a histogram's buckets (upper bound -> cumulative count) as
    `histogram_quantile` reads them: the i-th is its quantile i/n (linear within a bucket, from 0
    below the first bound; the +Inf bucket gives the highest finite bound)."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0.0
    if n <= 0 or total <= 0:
        return []
    finite = [b for b in bounds if math.isfinite(b)]
    values: list[float] = []
    for i in range(1, n + 1):
        rank = i * total / n
        below, lower = 0.0, 0.0
        for upper in bounds:
            count = cumulative[upper]
            if count >= rank - 1e-9:
                if not math.isfinite(upper):
                    values.append(finite[-1] if finite else 0.0)
                elif count <= below:
                    values.append(upper)
                else:
                    values.append(lower + (upper - lower) * (rank - below) / (count - below))
                break
            below, lower = count, upper
    return values


def _split(total: float, n: int) -> list[int]:
    """`total` as n whole numbers that add up to it (their mean is total / n)."""
    whole = max(0, round(total))
    share, extra = divmod(whole, n) if n else (0, 0)
    return [share + (1 if i < extra else 0) for i in range(n)]


def _by_variant(vector: Vector, *keys: str) -> dict[str, dict[tuple[str, ...], float]]:
    grouped: dict[str, dict[tuple[str, ...], float]] = {}
    for labels, value in vector:
        key = tuple(labels.get(k, "") for k in keys)
        grouped.setdefault(labels.get("variant", ""), {})[key] = value
    return grouped


def _buckets(rows: Mapping[tuple[str, ...], float]) -> dict[float, float]:
    return {float(le): count for (le,), count in rows.items()}


def samples_from(results: Mapping[str, Vector], route: str, version: int | None,
                 now: float) -> tuple[list[RequestSample], list[OutcomeSample]]:
    """The samples the figures stand for (see the module's doc)."""
    requests = _by_variant(results.get("requests", []), "base_model", "model", "endpoint", "status")
    latency, ttft = _by_variant(results.get("latency", []), "le"), _by_variant(results.get("ttft", []), "le")
    structured = _by_variant(results.get("structured", []), "result")
    prompt, completion = _by_variant(results.get("prompt_tokens", [])), _by_variant(results.get("completion_tokens", []))
    samples: list[RequestSample] = []
    for variant, rows in sorted(requests.items()):
        # latency, TTFT and tokens are the successful requests' (in-process figures count theirs only)
        statuses = [(key, int(key[3])) for key, count in sorted(rows.items()) for _ in range(round(count))]
        statuses.sort(key=lambda row: row[1] >= 400)  # stable: successful requests first
        ok = sum(1 for _, status in statuses if status < 400)
        durations = bucket_values(_buckets(latency.get(variant, {})), ok)
        ttft_buckets = _buckets(ttft.get(variant, {}))
        ttfts = bucket_values(ttft_buckets, min(ok, round(max(ttft_buckets.values(), default=0.0))))
        results_of = [result for (result,), count in sorted(structured.get(variant, {}).items())
                      for _ in range(round(count))]
        prompts = _split(sum(prompt.get(variant, {}).values()), ok)
        completions = _split(sum(completion.get(variant, {}).values()), ok)
        for i, ((base_model, model, endpoint, _), status) in enumerate(statuses):
            samples.append(RequestSample(
                finished_at=now, base_model=base_model, model=model, route=route, variant=variant,
                endpoint=endpoint, status=status, duration_s=durations[i] if i < len(durations) else 0.0,
                ttft_s=ttfts[i] if i < len(ttfts) else None, prompt_tokens=prompts[i] if i < ok else 0,
                completion_tokens=completions[i] if i < ok else 0,
                structured_output=results_of[i] if i < len(results_of) else None, route_version=version or 0,
            ))
    return samples, _outcomes_from(results, route, version, now)


def _outcomes_from(results: Mapping[str, Vector], route: str, version: int | None, now: float) -> list[OutcomeSample]:
    """One outcome per triage decision (counted by its confidence observations), the flagged ones
    first; labels are not in Prometheus."""
    decisions = _by_variant(results.get("decisions", []), "field")
    sums = _by_variant(results.get("confidence", []), "field")
    flagged = _by_variant(results.get("needs_review", []))
    outcomes: list[OutcomeSample] = []
    for variant, per_field in sorted(decisions.items()):
        n = round(max(per_field.values(), default=0.0))
        review = min(n, round(sum(flagged.get(variant, {}).values())))
        confidence = tuple((field, sums.get(variant, {}).get((field,), 0.0) / count)
                           for (field,), count in sorted(per_field.items()) if count > 0)
        outcomes += [OutcomeSample(finished_at=now, route=route, variant=variant, shadow=False, labels=(),
                                   needs_review=i < review, confidence=confidence, route_version=version or 0)
                     for i in range(n)]
    return outcomes


class PrometheusSampleSource:
    """RouteSampleSource over Prometheus's HTTP API: blocking (the guard and the report call it
    off the event loop), each query bounded by `timeout_s`. Unreachable or refusing, it raises
    `figures_unavailable(...)`: the guard holds, the report answers 424."""

    figures_from: FiguresFrom = "prometheus"

    def __init__(self, url: str, window_s: float = 900.0, timeout_s: float = 2.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.window_s = window_s
        self.timeout_s = timeout_s
        self._client = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout_s), transport=transport)
        self.description = (
            f"Prometheus at {self.url}: every replica's primary requests of the route version (series labelled "
            "route_version). Counts (requests, errors, structured results, decisions, review flags, tokens) are "
            "exact; latency and TTFT come from histograms: values interpolated within buckets as histogram_quantile "
            "does, so a percentile is exact only to its bucket's bounds (e.g. a p95 anywhere between 1 s and 2.5 s), "
            "latency includes failed requests (the histogram has no status) and the bootstrap intervals treat the "
            "interpolated values as samples. Shadow traffic and label distributions are not in Prometheus: left out."
        )

    def close(self) -> None:
        self._client.close()

    def query(self, expr: str, at: float) -> Vector:
        try:
            response = self._client.get("/api/v1/query", params={"query": expr, "time": f"{at:.3f}"})
            body = response.json() if response.content else None
        except (httpx.HTTPError, ValueError) as exc:
            raise figures_unavailable(f"Prometheus at {self.url} did not answer: {exc!r}") from exc
        if response.status_code != 200 and not isinstance(body, dict):
            raise figures_unavailable(f"Prometheus at {self.url} answered HTTP {response.status_code}")
        return parse_vector(body)

    def route_window(self, route: str, window_s: float | None = None, now: float | None = None, *,
                     version: int | None = None) -> tuple[list[RequestSample], list[OutcomeSample]]:
        """The fleet's samples of one route (version) over the last `window_s` seconds (at most
        the configured window), as of `now`."""
        now = time.time() if now is None else now
        window = self.window_s if window_s is None else min(window_s, self.window_s)
        results = {name: self.query(expr, now) for name, expr in route_queries(route, version, window).items()}
        return samples_from(results, route, version, now)
