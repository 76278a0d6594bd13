"""Holm and Benjamini-Hochberg agree with statsmodels' multipletests (and scipy's BH)."""

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from interp import stats as S

_SM = {"holm": "holm", "bh": "fdr_bh"}


def _families():
    rng = np.random.default_rng(0)
    yield rng.uniform(size=20)
    yield np.concatenate([rng.uniform(0, 0.01, size=6), rng.uniform(size=14)])
    yield np.array([0.01, 0.02, 0.02, 0.04, 0.04, 0.5, 1.0])  # ties
    yield rng.beta(0.3, 3.0, size=50)
    yield np.array([0.03])


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_matches_statsmodels(method):
    # statsmodels 0.15's Holm branch calls gc.collect(): 0.45-0.8 s per call in a process that has
    # imported torch (measured under pytest), so alpha = 0.1 is checked on one family only
    cases = [(p, 0.05) for p in _families()] + [(next(iter(_families())), 0.1)]
    for p, alpha in cases:
        reject, adjusted, *_ = multipletests(p, alpha=alpha, method=_SM[method])
        ours = S.adjust_pvalues(p, method, alpha=alpha)
        np.testing.assert_allclose(ours.adjusted, adjusted, rtol=1e-12, atol=0)
        assert ours.reject == tuple(bool(r) for r in reject)
        assert ours.m == p.size


def test_bh_matches_scipy_false_discovery_control():
    for p in _families():
        np.testing.assert_allclose(S.benjamini_hochberg(p), sps.false_discovery_control(p), rtol=1e-12)


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_nan_pvalues_are_left_out_of_the_family(method):
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.2, size=12)
    p_nan = p.copy()
    p_nan[[2, 9]] = np.nan
    ours = S.adjust_pvalues(p_nan, method)
    finite = ~np.isnan(p_nan)
    reject, adjusted, *_ = multipletests(p_nan[finite], method=_SM[method])
    np.testing.assert_allclose(np.asarray(ours.adjusted)[finite], adjusted, rtol=1e-12)
    assert np.isnan(np.asarray(ours.adjusted)[~finite]).all()
    assert not any(np.asarray(ours.reject)[~finite])
    assert ours.m == 10


def test_bad_pvalues_raise():
    with pytest.raises(ValueError, match="empty"):
        S.adjust_pvalues([])
    with pytest.raises(ValueError, match="all NaN"):
        S.adjust_pvalues([np.nan, np.nan])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        S.holm([0.1, 1.2])
    with pytest.raises(ValueError, match="method"):
        S.adjust_pvalues([0.1], "bonferroni")
    for alpha in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="alpha"):
            S.adjust_pvalues([0.1], alpha=alpha)
