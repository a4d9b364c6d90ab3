"""Differences between two samples with a confidence interval (for A/B route reports).

Pure functions, numpy only (no scipy): the normal quantile comes from the standard library.

- Rates (error rate, structured-output validity): `proportion_difference`, Newcombe's hybrid score
  interval ("method 10" of Newcombe 1998, Statistics in Medicine 17:873-890), built from the two
  Wilson score intervals. It behaves well for small samples and for rates near 0 or 1, where the
  textbook Wald interval collapses to zero width or leaves [-1, 1].
- Latency, TTFT, token counts: `bootstrap_difference`, a percentile bootstrap of
  statistic(b) - statistic(a), each side resampled independently with replacement, vectorised and
  deterministic for a seed. Percentiles are resampled through the order statistics' Beta
  distributions (exact, O(resamples) after one sort), means through a multinomial over distinct
  values or an index matrix in bounded chunks (O(resamples x n) for continuous values).

Every difference is b - a: with a = the control variant, a positive estimate means the other
variant's figure is higher.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

Statistic = Literal["p50", "p95", "mean"]

_QUANTILES: dict[str, float] = {"p50": 0.5, "p95": 0.95}

# Largest matrix of resampled indices or counts built at once (4M entries: 16-32 MB, plus the
# gathered float values of the same shape).
_CHUNK_ELEMENTS = 4_000_000


class Interval(BaseModel):
    """A point estimate with a two-sided confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float = Field(gt=0, lt=1)

    def excludes_zero(self) -> bool:
        """True when the interval lies entirely above or below 0 (the difference is significant)."""
        return self.low > 0 or self.high < 0


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of one proportion (without continuity correction)."""
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n ({n}), not {successes}")
    z = _z(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 or n successes one bound is exactly 0 or 1; computing it leaves rounding residue.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == n else min(1.0, centre + half_width)
    return low, high


def proportion_difference(successes_a: int, n_a: int, successes_b: int, n_b: int,
                          confidence: float = 0.95) -> Interval | None:
    """p_b - p_a with Newcombe's hybrid score interval (method 10); None if a sample is empty.

    With Wilson intervals (l_a, u_a) and (l_b, u_b) and d = p_b - p_a:
        low  = d - sqrt((p_b - l_b)^2 + (u_a - p_a)^2)
        high = d + sqrt((u_b - p_b)^2 + (p_a - l_a)^2)
    """
    for successes, n in ((successes_a, n_a), (successes_b, n_b)):
        if n < 0 or not 0 <= successes <= max(n, 0):
            raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    _z(confidence)  # validates confidence even when a sample is empty
    if n_a == 0 or n_b == 0:
        return None
    p_a, p_b = successes_a / n_a, successes_b / n_b
    low_a, high_a = wilson_interval(successes_a, n_a, confidence)
    low_b, high_b = wilson_interval(successes_b, n_b, confidence)
    difference = p_b - p_a
    low = difference - math.sqrt((p_b - low_b) ** 2 + (high_a - p_a) ** 2)
    high = difference + math.sqrt((high_b - p_b) ** 2 + (p_a - low_a) ** 2)
    return Interval(estimate=difference, low=max(-1.0, low), high=min(1.0, high), confidence=confidence)


def _statistic(values: np.ndarray, statistic: Statistic) -> float:
    """The statistic of one sample (percentiles interpolate linearly, as stats.percentile)."""
    if statistic == "mean":
        return float(values.mean())
    return float(np.percentile(values, _QUANTILES[statistic] * 100))


def _chunks(total: int, row_size: int) -> list[tuple[int, int]]:
    step = max(1, _CHUNK_ELEMENTS // max(row_size, 1))
    return [(start, min(start + step, total)) for start in range(0, total, step)]


def _resampled_quantile(values: np.ndarray, q: float, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of the q-quantile in O(resamples), without building the resamples.

    Resampling n values with replacement draws indices I = floor(n * U) of the sorted sample, U
    uniform on (0, 1). floor is monotone, so the j-th smallest resampled value is
    sorted[floor(n * U_(j))], where U_(j), the j-th order statistic of n uniforms, is
    Beta(j, n - j + 1) distributed; the next one is U_(j+1) = U_(j) + (1 - U_(j)) * Beta(1, n - j).
    The linear interpolation between the two ranks around (n - 1) * q is then numpy's default
    percentile of the resample: the same distribution as resampling explicitly, exactly.
    """
    ordered = np.sort(values)
    n = len(ordered)
    position = (n - 1) * q
    k = math.floor(position)  # 0-based rank below the position; 1-based rank j = k + 1
    fraction = position - k
    u_low = rng.beta(k + 1, n - k, size=resamples)
    low = ordered[np.minimum((u_low * n).astype(np.int64), n - 1)]
    if fraction == 0 or k + 1 >= n:
        return low
    u_high = u_low + (1 - u_low) * rng.beta(1, n - k - 1, size=resamples)
    high = ordered[np.minimum((u_high * n).astype(np.int64), n - 1)]
    return low + (high - low) * fraction


def _resampled_mean(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of the mean, in bounded-memory chunks.

    Few distinct values (token counts): the resample is multinomial counts over the distinct
    values, O(distinct) per replicate. Otherwise an explicit (chunk, n) index matrix.
    """
    n = len(values)
    out = np.empty(resamples)
    distinct, counts = np.unique(values, return_counts=True)
    if len(distinct) * 4 <= n:
        for start, stop in _chunks(resamples, len(distinct)):
            drawn = rng.multinomial(n, counts / n, size=stop - start)
            out[start:stop] = drawn @ distinct / n
        return out
    index_type = np.int32 if n < 2**31 else np.int64
    for start, stop in _chunks(resamples, n):
        indices = rng.integers(0, n, size=(stop - start, n), dtype=index_type)
        out[start:stop] = values[indices].mean(axis=1)
    return out


def _resampled(values: np.ndarray, statistic: Statistic, resamples: int, rng: np.random.Generator) -> np.ndarray:
    if statistic == "mean":
        return _resampled_mean(values, resamples, rng)
    return _resampled_quantile(values, _QUANTILES[statistic], resamples, rng)


def bootstrap_difference(a: Sequence[float], b: Sequence[float], statistic: Statistic,
                         confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> Interval | None:
    """statistic(b) - statistic(a) with a percentile-bootstrap interval; None if a side has < 2 values.

    The estimate is the statistic's difference on the samples themselves; the interval is the
    (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of the resampled differences.
    """
    _z(confidence)
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    values_a = np.asarray(a, dtype=float)
    values_b = np.asarray(b, dtype=float)
    if values_a.ndim != 1 or values_b.ndim != 1:
        raise ValueError("a and b must be one-dimensional")
    if len(values_a) < 2 or len(values_b) < 2:
        return None
    if not (np.isfinite(values_a).all() and np.isfinite(values_b).all()):
        raise ValueError("a and b must hold finite numbers")
    if statistic not in _QUANTILES and statistic != "mean":
        raise ValueError(f"unknown statistic {statistic!r} (p50, p95 or mean)")
    rng = np.random.default_rng(seed)
    differences = _resampled(values_b, statistic, resamples, rng) - _resampled(values_a, statistic, resamples, rng)
    tail = (1 - confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    estimate = _statistic(values_b, statistic) - _statistic(values_a, statistic)
    return Interval(estimate=estimate, low=float(low), high=float(high), confidence=confidence)


def paired_proportion_difference(both: int, only_b: int, only_a: int, n: int,
                                 confidence: float = 0.95) -> Interval | None:
    """p_b - p_a for two proportions measured on the same n items, with Newcombe's score interval
    for paired data (method 10 of Newcombe 1998, Statistics in Medicine 17:2635-2650); None if n is 0.

    Counts: `both` items succeed for a and b, `only_b` for b alone, `only_a` for a alone. With the
    Wilson intervals (l_b, u_b), (l_a, u_a) and phi the (continuity-corrected) correlation of the
    pairs, d = p_b - p_a and
        low  = d - sqrt((p_b - l_b)^2 - 2 phi (p_b - l_b)(u_a - p_a) + (u_a - p_a)^2)
        high = d + sqrt((u_b - p_b)^2 - 2 phi (u_b - p_b)(p_a - l_a) + (p_a - l_a)^2)
    Positively correlated pairs (the same easy and hard items) narrow it below the unpaired interval.
    """
    neither = n - both - only_b - only_a
    if min(both, only_b, only_a, neither) < 0:
        raise ValueError(f"need non-negative counts summing to at most n ({n})")
    _z(confidence)
    if n == 0:
        return None
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    low_a, high_a = wilson_interval(both + only_a, n, confidence)
    low_b, high_b = wilson_interval(both + only_b, n, confidence)
    denominator = (both + only_b) * (only_a + neither) * (both + only_a) * (only_b + neither)
    crossed = both * neither - only_b * only_a
    if crossed > 0:
        crossed = max(crossed - n / 2, 0.0)
    phi = crossed / math.sqrt(denominator) if denominator else 0.0
    down_b, up_a = p_b - low_b, high_a - p_a
    up_b, down_a = high_b - p_b, p_a - low_a
    difference = p_b - p_a
    low = difference - math.sqrt(max(0.0, down_b**2 - 2 * phi * down_b * up_a + up_a**2))
    high = difference + math.sqrt(max(0.0, up_b**2 - 2 * phi * up_b * down_a + down_a**2))
    return Interval(estimate=difference, low=max(-1.0, low), high=min(1.0, high), confidence=confidence)
