"""Bad inputs raise clear errors across interp.stats: empty, misaligned, all-NaN, inf, alpha/level range."""

import numpy as np
import pytest

from interp import stats as S

X = np.random.default_rng(0).normal(size=20)
Y = np.random.default_rng(1).normal(size=20)

PAIRED = {
    "paired_differences": lambda e, b: S.paired_differences(e, b),
    "mean_difference": lambda e, b: S.mean_difference(e, b),
    "effect_size": lambda e, b: S.effect_size(e, b),
    "paired_ttest": lambda e, b: S.paired_ttest(e, b),
    "wilcoxon": lambda e, b: S.wilcoxon_signed_rank(e, b),
    "paired_bootstrap_ci": lambda e, b: S.paired_bootstrap_ci(e, b, n_resamples=50),
    "tost_paired": lambda e, b: S.tost_paired(e, b, 0.5),
    "difference_of_differences": lambda e, b: S.difference_of_differences(e, b, n_resamples=50),
}


@pytest.mark.parametrize("name", list(PAIRED))
def test_misaligned_lengths(name):
    with pytest.raises(ValueError, match="misaligned"):
        PAIRED[name](X, Y[:-1])


@pytest.mark.parametrize("name", list(PAIRED))
def test_empty(name):
    with pytest.raises(ValueError, match="empty"):
        PAIRED[name](np.array([]), np.array([]))


@pytest.mark.parametrize("name", list(PAIRED))
def test_all_nan(name):
    with pytest.raises(ValueError, match="all-NaN"):
        PAIRED[name](np.full(20, np.nan), Y)


@pytest.mark.parametrize("name", list(PAIRED))
def test_infinite_values(name):
    bad = X.copy()
    bad[4] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        PAIRED[name](bad, Y)


@pytest.mark.parametrize("name", list(PAIRED))
def test_two_dimensional_and_non_numeric(name):
    with pytest.raises(ValueError, match="1-D"):
        PAIRED[name](np.ones((4, 5)), np.ones((4, 5)))
    with pytest.raises(TypeError, match="numeric"):
        PAIRED[name](["a"] * 20, Y)


def test_one_sample_functions():
    for fn in (
        lambda v: S.bootstrap_ci(v, n_resamples=50),
        S.one_sample_ttest,
        lambda v: S.cluster_bootstrap_ci(v, np.arange(v.size), n_resamples=50),
    ):
        with pytest.raises(ValueError, match="empty"):
            fn(np.array([]))
        with pytest.raises(ValueError, match="no non-NaN|all-NaN"):
            fn(np.full(5, np.nan))
        with pytest.raises(ValueError, match="at least 2"):
            fn(np.array([1.0, np.nan]))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.05, 1.5, 95])
def test_alpha_and_level_outside_unit_interval(bad):
    with pytest.raises(ValueError, match="alpha"):
        S.tost_paired(X, Y, 0.5, alpha=bad)
    with pytest.raises(ValueError, match="alpha"):
        S.adjust_pvalues([0.01, 0.2], alpha=bad)
    with pytest.raises(ValueError, match="alpha"):
        S.by_group(np.zeros(20), S.paired_ttest, X, Y, alpha=bad)
    for fn in (
        lambda: S.paired_bootstrap_ci(X, Y, level=bad),
        lambda: S.bootstrap_ci(X, level=bad),
        lambda: S.cluster_bootstrap_ci(X, np.arange(20), level=bad),
        lambda: S.paired_ttest(X, Y, level=bad),
        lambda: S.mean_difference(X, Y, level=bad),
        lambda: S.difference_of_differences(X, Y, level=bad),
        lambda: S.dose_trend(np.ones((4, 3)), [1, 2, 3], level=bad),
    ):
        with pytest.raises(ValueError, match="level"):
            fn()


def test_option_values_are_checked():
    with pytest.raises(ValueError, match="alternative"):
        S.paired_ttest(X, Y, alternative="bigger")
    with pytest.raises(ValueError, match="method"):
        S.paired_bootstrap_ci(X, Y, method="basic")
    with pytest.raises(ValueError, match="n_resamples"):
        S.bootstrap_ci(X, n_resamples=0)
    with pytest.raises(ValueError, match="statistic"):
        S.bootstrap_ci(X, statistic="mode")
    with pytest.raises(ValueError, match="nan_policy"):
        S.paired_ttest(X, Y, nan_policy="propagate")
    with pytest.raises(ValueError, match="clusters has 19 labels"):
        S.paired_ttest(X, Y, clusters=np.arange(19))
    with pytest.raises(ValueError, match="NaN labels"):
        S.cluster_bootstrap_ci(X, np.r_[np.arange(19.0), np.nan])
    with pytest.raises(ValueError, match="only with statistic='mean_difference'"):
        S.paired_bootstrap_ci(X, Y, statistic=lambda a, b, axis=-1: a.mean(axis), clusters=np.arange(20))
