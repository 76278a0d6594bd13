"""Effect sizes and the t-based mean difference: identities with scipy, Hedges' unbiasedness by simulation."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from interp import stats as S


def test_cohens_dz_times_sqrt_n_is_the_paired_t_statistic():
    rng = np.random.default_rng(0)
    base = rng.normal(size=33)
    edited = base + rng.normal(0.4, 1.2, size=33)
    es = S.effect_size(edited, base)
    assert es.name == "cohen_dz" and es.n == 33
    assert es.value * math.sqrt(33) == pytest.approx(float(sps.ttest_rel(edited, base).statistic), rel=1e-12)
    assert es.sd == pytest.approx(float(np.std(edited - base, ddof=1)))


@pytest.mark.parametrize("df", [2, 5, 9, 30, 200])
def test_hedges_correction_exact_gamma_form(df):
    ref = math.exp(math.lgamma(df / 2) - math.lgamma((df - 1) / 2)) / math.sqrt(df / 2)
    j = S.hedges_correction(df)
    assert j == pytest.approx(ref, rel=1e-12)
    # the textbook approximation 1 - 3 / (4 df - 1) is off by O(1 / df^2) (about 0.03 / df^2)
    assert j == pytest.approx(1 - 3 / (4 * df - 1), abs=0.05 / df**2)


def test_hedges_gz_is_unbiased_and_dz_is_not():
    """20000 simulated samples of n=10 with true d_z = 0.5 (standard error of the means ~0.003)."""
    rng = np.random.default_rng(1)
    d = rng.normal(0.5, 1.0, size=(20000, 10))
    dz = S.cohens_dz_axis(d, axis=1)
    gz = S.hedges_correction(9) * dz
    assert abs(gz.mean() - 0.5) < 0.012
    assert dz.mean() - 0.5 > 0.03
    row = S.effect_size(d[0], None, hedges=True)
    assert row.name == "hedges_gz" and row.value == pytest.approx(gz[0], rel=1e-12)


def test_mean_difference_ci_matches_ttest_rel_interval():
    rng = np.random.default_rng(2)
    base = rng.normal(size=28)
    edited = base + rng.normal(-0.2, 0.7, size=28)
    for level in (0.9, 0.95, 0.99):
        md = S.mean_difference(edited, base, level=level)
        ci = sps.ttest_rel(edited, base).confidence_interval(level)
        assert (md.low, md.high) == pytest.approx((float(ci.low), float(ci.high)), rel=1e-12)
        assert md.estimate == pytest.approx(float(np.mean(edited - base)))


def test_paired_differences_policies():
    e = np.array([1.0, np.nan, 3.0, 4.0])
    b = np.array([0.5, 1.0, np.nan, 1.0])
    np.testing.assert_array_equal(S.paired_differences(e, b), [0.5, 3.0])
    out = S.paired_differences(e, b, nan_policy="propagate")
    assert out.shape == (4,) and np.isnan(out[[1, 2]]).all()
    with pytest.raises(ValueError, match="nan_policy='raise'"):
        S.paired_differences(e, b, nan_policy="raise")
    with pytest.raises(ValueError, match="misaligned"):
        S.paired_differences(e, b[:3], nan_policy="propagate")
    with pytest.raises(ValueError, match="nan_policy"):
        S.paired_differences(e, b, nan_policy="ignore")
