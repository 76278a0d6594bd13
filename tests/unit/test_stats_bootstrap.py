"""Seeded bootstrap CIs: agreement with scipy.stats.bootstrap, exact reproduction, degenerate data."""

import numpy as np
import pytest
from scipy import stats as sps

from interp import stats as S


def _pair(seed: int, n: int = 35):
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, size=n)
    return base + rng.exponential(0.5, size=n) - 0.3, base


@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize("level", [0.9, 0.95])
def test_bootstrap_ci_matches_scipy(method, level):
    x = np.random.default_rng(0).lognormal(size=40)
    ours = S.bootstrap_ci(x, method=method, level=level, n_resamples=2000, seed=11)
    ref = sps.bootstrap(
        (x,),
        np.mean,
        method="BCa" if method == "bca" else "percentile",
        confidence_level=level,
        n_resamples=2000,
        rng=np.random.default_rng(11),
    )
    assert (ours.low, ours.high) == (float(ref.confidence_interval.low), float(ref.confidence_interval.high))
    assert ours.standard_error == pytest.approx(float(ref.standard_error))
    assert ours.estimate == pytest.approx(x.mean())
    assert (ours.level, ours.method, ours.n, ours.n_resamples, ours.seed) == (level, method, 40, 2000, 11)


def test_paired_mean_difference_is_scipy_paired_bootstrap():
    """Bootstrapping d = edited - baseline uses the same draws as scipy's paired=True resampling."""
    edited, base = _pair(1)
    for method in ("percentile", "bca"):
        ours = S.paired_bootstrap_ci(edited, base, method=method, n_resamples=1500, seed=5)
        ref = sps.bootstrap(
            (edited, base),
            lambda a, b, axis=-1: np.mean(a - b, axis=axis),
            paired=True,
            vectorized=True,
            method="BCa" if method == "bca" else "percentile",
            n_resamples=1500,
            rng=np.random.default_rng(5),
        )
        assert ours.low == pytest.approx(float(ref.confidence_interval.low), rel=1e-12)
        assert ours.high == pytest.approx(float(ref.confidence_interval.high), rel=1e-12)


def test_paired_callable_statistic_ratio_of_means():
    edited, base = _pair(2)

    def ratio(a, b, axis=-1):
        return np.mean(a, axis=axis) / np.mean(b, axis=axis)

    ours = S.paired_bootstrap_ci(edited, base, statistic=ratio, n_resamples=1000, seed=3)
    ref = sps.bootstrap((edited, base), ratio, paired=True, n_resamples=1000, rng=np.random.default_rng(3))
    assert (ours.low, ours.high) == (float(ref.confidence_interval.low), float(ref.confidence_interval.high))
    assert ours.estimate == pytest.approx(edited.mean() / base.mean())


def test_same_seed_reproduces_exactly_and_other_seeds_differ():
    edited, base = _pair(3)
    a = S.paired_bootstrap_ci(edited, base, n_resamples=999, seed=123)
    b = S.paired_bootstrap_ci(edited, base, n_resamples=999, seed=123)
    c = S.paired_bootstrap_ci(edited, base, n_resamples=999, seed=124)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    x = edited - base
    assert S.bootstrap_ci(x, method="percentile", n_resamples=999, seed=7) == S.bootstrap_ci(
        x, method="percentile", n_resamples=999, seed=7
    )


def test_median_statistic_and_nan_omitted():
    x = np.random.default_rng(4).normal(size=30)
    x_nan = np.concatenate([x, [np.nan, np.nan]])
    ours = S.bootstrap_ci(x_nan, statistic="median", method="percentile", n_resamples=800, seed=1)
    ref = sps.bootstrap((x,), np.median, method="percentile", n_resamples=800, rng=np.random.default_rng(1))
    assert ours.n == 30
    assert (ours.low, ours.high) == (float(ref.confidence_interval.low), float(ref.confidence_interval.high))


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_constant_differences_give_point_interval(method):
    base = np.linspace(0, 1, 20)
    ci = S.paired_bootstrap_ci(base, base, method=method, n_resamples=500)
    assert (ci.estimate, ci.low, ci.high) == (0.0, 0.0, 0.0)
    ci = S.bootstrap_ci(np.full(10, 2.5), method=method, n_resamples=500)
    assert (ci.low, ci.high) == (2.5, 2.5)


def test_bootstrap_interval_brackets_estimate_and_narrows_with_n():
    rng = np.random.default_rng(9)
    small = S.bootstrap_ci(rng.normal(size=20), n_resamples=999)
    large = S.bootstrap_ci(rng.normal(size=2000), n_resamples=999)
    assert small.low < small.estimate < small.high
    assert (large.high - large.low) < (small.high - small.low) / 5
