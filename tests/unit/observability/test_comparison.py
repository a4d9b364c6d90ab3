"""service/observability/comparison.py: two-proportion and bootstrap intervals, hand-checked."""

from __future__ import annotations

import numpy as np
import pytest

from service.observability.comparison import (
    Interval,
    _resampled_quantile,
    bootstrap_difference,
    proportion_difference,
    wilson_interval,
)

# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (score interval without
# continuity correction): (x1, n1, x2, n2) -> p1 - p2, 95% low, high. Our function returns
# p_b - p_a, so a = (x2, n2) and b = (x1, n1).
NEWCOMBE_METHOD_10 = [
    ((56, 70, 48, 80), 0.2000, 0.0524, 0.3339),
    ((9, 10, 3, 10), 0.6000, 0.1705, 0.8090),
    ((6, 7, 2, 7), 0.5714, 0.0582, 0.8062),
    ((5, 56, 0, 29), 0.0893, -0.0381, 0.1926),
    ((0, 10, 0, 20), 0.0000, -0.1611, 0.2775),
    ((10, 10, 0, 20), 1.0000, 0.6791, 1.0000),
]


@pytest.mark.parametrize(("counts", "estimate", "low", "high"), NEWCOMBE_METHOD_10)
def test_proportion_difference_reproduces_newcombe(counts, estimate, low, high) -> None:
    x1, n1, x2, n2 = counts
    interval = proportion_difference(x2, n2, x1, n1)
    assert interval is not None
    assert interval.estimate == pytest.approx(estimate, abs=5e-5)
    assert interval.low == pytest.approx(low, abs=5e-4)
    assert interval.high == pytest.approx(high, abs=5e-4)
    assert interval.confidence == 0.95


def test_proportion_difference_is_antisymmetric() -> None:
    forward = proportion_difference(48, 80, 56, 70)
    backward = proportion_difference(56, 70, 48, 80)
    assert forward is not None and backward is not None
    assert backward.estimate == pytest.approx(-forward.estimate)
    assert backward.low == pytest.approx(-forward.high)
    assert backward.high == pytest.approx(-forward.low)


def test_wilson_interval_hand_checked() -> None:
    # 48/80 = 0.6, z = 1.96: centre (0.6 + 1.96^2/160) / (1 + 1.96^2/80) = 0.62401 / 1.04802 = 0.59542,
    # half width 1.96 * sqrt(0.24/80 + 1.96^2/25600) / 1.04802 = 0.10496 -> 0.4905 to 0.7004
    low, high = wilson_interval(48, 80)
    assert low == pytest.approx(0.4905, abs=5e-4)
    assert high == pytest.approx(0.7004, abs=5e-4)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0


def test_proportion_difference_confidence_widens_the_interval() -> None:
    narrow = proportion_difference(48, 80, 56, 70, confidence=0.80)
    wide = proportion_difference(48, 80, 56, 70, confidence=0.99)
    assert narrow is not None and wide is not None
    assert wide.low < narrow.low < narrow.estimate < narrow.high < wide.high
    assert wide.confidence == 0.99


def test_proportion_difference_empty_and_invalid() -> None:
    assert proportion_difference(0, 0, 3, 10) is None
    assert proportion_difference(3, 10, 0, 0) is None
    with pytest.raises(ValueError):
        proportion_difference(11, 10, 3, 10)
    with pytest.raises(ValueError):
        proportion_difference(-1, 10, 3, 10)
    with pytest.raises(ValueError):
        proportion_difference(1, 10, 3, 10, confidence=1.0)


def test_interval_excludes_zero() -> None:
    assert Interval(estimate=0.2, low=0.05, high=0.33, confidence=0.95).excludes_zero()
    assert Interval(estimate=-0.2, low=-0.33, high=-0.05, confidence=0.95).excludes_zero()
    assert not Interval(estimate=0.1, low=-0.01, high=0.2, confidence=0.95).excludes_zero()


# --------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------

RNG = np.random.default_rng(42)
LATENCIES = RNG.lognormal(mean=0.0, sigma=0.4, size=300)


@pytest.mark.parametrize("statistic", ["p50", "p95", "mean"])
def test_bootstrap_identical_samples_contain_zero(statistic) -> None:
    interval = bootstrap_difference(LATENCIES, LATENCIES.copy(), statistic)
    assert interval is not None
    assert interval.estimate == 0.0
    assert interval.low < 0 < interval.high


@pytest.mark.parametrize("statistic", ["p50", "p95", "mean"])
def test_bootstrap_shifted_samples_exclude_zero(statistic) -> None:
    shifted = LATENCIES + 0.5
    interval = bootstrap_difference(LATENCIES, shifted, statistic)
    assert interval is not None
    assert interval.estimate == pytest.approx(0.5)  # every statistic moves with a constant shift
    assert 0 < interval.low < 0.5 < interval.high
    assert interval.excludes_zero()
    reverse = bootstrap_difference(shifted, LATENCIES, statistic)
    assert reverse is not None and reverse.high < 0


def test_bootstrap_estimate_hand_checked() -> None:
    a = [1.0, 2.0, 3.0, 4.0, 5.0]  # p50 3, p95 4.8, mean 3
    b = [2.0, 4.0, 6.0, 8.0, 10.0]  # p50 6, p95 9.6, mean 6
    for statistic, expected in (("p50", 3.0), ("p95", 4.8), ("mean", 3.0)):
        interval = bootstrap_difference(a, b, statistic, resamples=500)
        assert interval is not None
        assert interval.estimate == pytest.approx(expected)
        assert interval.low <= interval.high


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    other = LATENCIES * 1.1
    first = bootstrap_difference(LATENCIES, other, "p95", seed=7)
    again = bootstrap_difference(LATENCIES, other, "p95", seed=7)
    different = bootstrap_difference(LATENCIES, other, "p95", seed=8)
    assert first == again
    assert different is not None and first is not None
    assert (different.low, different.high) != (first.low, first.high)
    assert different.estimate == first.estimate


def test_bootstrap_needs_two_values_per_side() -> None:
    assert bootstrap_difference([1.0], [1.0, 2.0], "p50") is None
    assert bootstrap_difference([1.0, 2.0], [], "mean") is None
    with pytest.raises(ValueError):
        bootstrap_difference([1.0, 2.0], [1.0, 2.0], "p99")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        bootstrap_difference([1.0, float("nan")], [1.0, 2.0], "p50")


def test_bootstrap_wider_with_higher_confidence() -> None:
    b = LATENCIES + 0.1
    narrow = bootstrap_difference(LATENCIES, b, "p50", confidence=0.8)
    wide = bootstrap_difference(LATENCIES, b, "p50", confidence=0.99)
    assert narrow is not None and wide is not None
    assert wide.low <= narrow.low and narrow.high <= wide.high


def test_bootstrap_mean_of_integer_counts() -> None:
    # Few distinct values go through the multinomial path: same estimate, sensible interval.
    tokens_a = np.repeat([10, 20, 30], 100)  # mean 20
    tokens_b = np.repeat([12, 22, 32], 100)  # mean 22
    interval = bootstrap_difference(tokens_a, tokens_b, "mean")
    assert interval is not None
    assert interval.estimate == pytest.approx(2.0)
    # standard error of each mean: sqrt(200/3 / 300) = 0.471; of the difference 0.667 -> +-1.31
    assert interval.low == pytest.approx(2 - 1.31, abs=0.15)
    assert interval.high == pytest.approx(2 + 1.31, abs=0.15)


@pytest.mark.parametrize(("n", "q"), [(2, 0.5), (7, 0.95), (40, 0.5), (41, 0.95)])
def test_order_statistic_resampling_matches_explicit_resampling(n, q) -> None:
    """The Beta order-statistic shortcut has the distribution of resampling explicitly."""
    values = np.random.default_rng(n).lognormal(0, 0.7, n)
    fast = _resampled_quantile(values, q, 40_000, np.random.default_rng(1))
    indices = np.random.default_rng(2).integers(0, n, size=(40_000, n))
    slow = np.percentile(values[indices], q * 100, axis=1)
    spread = values.max() - values.min()
    assert fast.mean() == pytest.approx(slow.mean(), abs=0.02 * spread)
    assert fast.std() == pytest.approx(slow.std(), abs=0.02 * spread)
    for level in (0.1, 0.5, 0.9):
        # discrete distributions: compare the CDFs at the explicit quantiles instead of the quantiles
        point = np.quantile(slow, level)
        assert (fast <= point).mean() == pytest.approx((slow <= point).mean(), abs=0.02)
