"""interp.stats t-tests and signed-rank test agree with scipy on fixed random inputs."""

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from interp import stats as S


def _pair(seed: int, n: int = 40, shift: float = 0.3):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=n)
    return base + rng.normal(shift, 1.0, size=n), base


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_ttest_matches_ttest_rel(alternative, seed):
    edited, base = _pair(seed)
    ours = S.paired_ttest(edited, base, alternative=alternative, level=0.9)
    ref = sps.ttest_rel(edited, base, alternative=alternative)
    ci = ref.confidence_interval(0.9)
    assert ours.statistic == pytest.approx(float(ref.statistic), rel=1e-12)
    assert ours.pvalue == pytest.approx(float(ref.pvalue), rel=1e-10)
    assert ours.df == ref.df
    assert (ours.low, ours.high) == pytest.approx((float(ci.low), float(ci.high)), rel=1e-12)
    assert ours.estimate == pytest.approx(np.mean(edited - base))
    assert ours.n == edited.size


@pytest.mark.parametrize("popmean", [0.0, 0.25, -1.0])
def test_one_sample_ttest_matches_ttest_1samp(popmean):
    x = np.random.default_rng(3).standard_t(5, size=25)
    for alt in ("two-sided", "greater", "less"):
        ours = S.one_sample_ttest(x, popmean, alternative=alt)
        ref = sps.ttest_1samp(x, popmean, alternative=alt)
        assert ours.statistic == pytest.approx(float(ref.statistic), rel=1e-12)
        assert ours.pvalue == pytest.approx(float(ref.pvalue), rel=1e-10)


def test_nan_pairs_are_dropped_pairwise():
    edited, base = _pair(4)
    edited[[1, 7]] = np.nan
    base[[7, 20]] = np.nan
    keep = ~(np.isnan(edited) | np.isnan(base))
    ours = S.paired_ttest(edited, base)
    ref = sps.ttest_rel(edited[keep], base[keep])
    assert ours.n == int(keep.sum()) == edited.size - 3
    assert ours.pvalue == pytest.approx(float(ref.pvalue), rel=1e-10)
    with pytest.raises(ValueError, match="nan_policy='raise'"):
        S.paired_ttest(edited, base, nan_policy="raise")


def test_clustered_ttest_runs_on_prompt_means():
    rng = np.random.default_rng(5)
    prompts = np.repeat(np.arange(12), 3)
    edited, base = rng.normal(size=36), rng.normal(size=36)
    d = (edited - base).reshape(12, 3).mean(axis=1)
    ours = S.paired_ttest(edited, base, clusters=prompts)
    ref = sps.ttest_1samp(d, 0.0)
    assert ours.n == 12
    assert ours.pvalue == pytest.approx(float(ref.pvalue), rel=1e-10)


@pytest.mark.parametrize(
    ("alternative", "zero_method", "method"),
    list(itertools.product(["two-sided", "greater", "less"], ["wilcox", "pratt", "zsplit"], ["auto", "approx"])),
)
def test_wilcoxon_matches_scipy(alternative, zero_method, method):
    rng = np.random.default_rng(6)
    base = rng.normal(size=30)
    edited = base + np.round(rng.normal(0.2, 1.0, size=30), 1)  # rounding makes ties and zeros
    edited[:3] = base[:3]
    ours = S.wilcoxon_signed_rank(edited, base, alternative=alternative, zero_method=zero_method, method=method)
    ref = sps.wilcoxon(edited, base, alternative=alternative, zero_method=zero_method, method=method)
    assert ours.statistic == pytest.approx(float(ref.statistic), rel=1e-12)
    assert ours.pvalue == pytest.approx(float(ref.pvalue), rel=1e-10)


def test_wilcoxon_exact_small_sample_matches_scipy():
    edited, base = _pair(7, n=12)
    ours = S.wilcoxon_signed_rank(edited, base)
    ref = sps.wilcoxon(edited, base, method="exact")
    assert ours.pvalue == pytest.approx(float(ref.pvalue), rel=1e-12)


def test_hodges_lehmann_is_median_of_walsh_averages():
    d = np.random.default_rng(8).normal(size=17)
    walsh = [(d[i] + d[j]) / 2 for i in range(d.size) for j in range(i, d.size)]
    assert S.hodges_lehmann(d) == pytest.approx(float(np.median(walsh)), rel=1e-14)
    edited, base = _pair(8)
    assert S.wilcoxon_signed_rank(edited, base).estimate == pytest.approx(S.hodges_lehmann(edited - base))


def test_xarray_inputs_are_accepted():
    xr = pytest.importorskip("xarray")
    edited, base = _pair(9)
    da_e = xr.DataArray(edited, dims="sample")
    da_b = xr.DataArray(base, dims="sample")
    assert S.paired_ttest(da_e, da_b) == S.paired_ttest(edited, base)
