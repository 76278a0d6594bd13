"""Paired TOST agrees with statsmodels' ttost_paired and with the 1 - 2 alpha CI rule."""

import numpy as np
import pytest
from statsmodels.stats.weightstats import ttost_paired

from interp import stats as S


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("margin", [0.2, (-0.1, 0.4)])
def test_matches_statsmodels_ttost_paired(seed, margin):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=30)
    edited = base + rng.normal(0.05 * seed, 0.4, size=30)
    low, high = (-margin, margin) if np.isscalar(margin) else margin
    p, (t1, p1, df1), (t2, p2, df2) = ttost_paired(edited, base, low, high)
    ours = S.tost_paired(edited, base, margin)
    assert ours.pvalue == pytest.approx(float(p), rel=1e-10)
    assert (ours.statistic_low, ours.pvalue_low) == pytest.approx((float(t1), float(p1)), rel=1e-10)
    assert (ours.statistic_high, ours.pvalue_high) == pytest.approx((float(t2), float(p2)), rel=1e-10)
    assert ours.df == df1 == df2
    assert (ours.low, ours.high) == (low, high)


def test_equivalence_decision_equals_ci_inside_margin():
    rng = np.random.default_rng(5)
    decisions = set()
    for _ in range(40):
        d = rng.normal(rng.uniform(-0.3, 0.3), 0.5, size=25)
        res = S.tost_paired(d, None, 0.25, alpha=0.05)
        inside = res.ci_low > -0.25 and res.ci_high < 0.25
        assert res.equivalent == inside
        decisions.add(res.equivalent)
    assert decisions == {True, False}  # both outcomes exercised


def test_exact_noop_is_equivalent():
    base = np.random.default_rng(6).normal(size=20)
    res = S.tost_paired(base, base.copy(), 1e-3)
    assert res.equivalent and res.pvalue == 0.0


def test_margin_must_be_stated_and_valid():
    d = np.random.default_rng(7).normal(size=10)
    for bad in (0.0, -1.0, (0.2, -0.2), (0.1, 0.1), (0.0, np.inf), (1.0, 2.0, 3.0)):
        with pytest.raises(ValueError, match="margin"):
            S.tost_paired(d, None, bad)
    with pytest.raises(TypeError):
        S.tost_paired(d, None)  # no default margin
    with pytest.raises(ValueError, match="alpha"):
        S.tost_paired(d, None, 0.1, alpha=1.0)
