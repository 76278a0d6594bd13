"""Dose trend across budgets: per-row slopes vs linregress, t-test vs ttest_1samp, Page's L vs scipy."""

import numpy as np
import pytest
from scipy import stats as sps

from interp import stats as S

BUDGETS = np.array([1, 5, 10, 20, 50])


def _dose(seed: int, n: int = 30, slope: float = 0.15):
    rng = np.random.default_rng(seed)
    prompt = rng.normal(0, 1, size=(n, 1))
    return prompt + slope * np.log(BUDGETS)[None, :] + rng.normal(0, 0.3, size=(n, BUDGETS.size))


@pytest.mark.parametrize("log_budget", [True, False])
def test_unit_slopes_match_linregress_including_nan_cells(log_budget):
    y = _dose(0)
    y[2, 1] = np.nan
    y[5, [0, 3, 4]] = np.nan
    y[7, :4] = np.nan  # one point left: no slope
    x = np.log(BUDGETS) if log_budget else BUDGETS.astype(float)
    slopes = S.unit_slopes(y, BUDGETS, log_budget=log_budget)
    for i in range(y.shape[0]):
        ok = ~np.isnan(y[i])
        if ok.sum() < 2:
            assert np.isnan(slopes[i])
        else:
            assert slopes[i] == pytest.approx(sps.linregress(x[ok], y[i, ok]).slope, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_slope_trend_is_ttest_of_slopes(alternative):
    y = _dose(1)
    res = S.dose_trend(y, BUDGETS, alternative=alternative, n_resamples=500, seed=2)
    slopes = [sps.linregress(np.log(BUDGETS), row).slope for row in y]
    ref = sps.ttest_1samp(slopes, 0.0, alternative=alternative)
    assert res.test.pvalue == pytest.approx(float(ref.pvalue), rel=1e-9)
    assert res.estimate == pytest.approx(np.mean(slopes), rel=1e-12)
    ref_ci = sps.bootstrap((np.array(slopes),), np.mean, n_resamples=500, rng=np.random.default_rng(2))
    assert (res.ci.low, res.ci.high) == pytest.approx(
        (float(ref_ci.confidence_interval.low), float(ref_ci.confidence_interval.high)), rel=1e-10
    )
    assert res.n == 30 and res.budgets == tuple(float(b) for b in BUDGETS)


def test_slope_trend_detects_a_trend_and_not_its_absence():
    assert S.dose_trend(_dose(3, slope=0.15), BUDGETS, n_resamples=200).test.pvalue < 1e-4
    null = S.dose_trend(_dose(3, slope=0.0), BUDGETS, n_resamples=200)
    assert null.test.pvalue > 0.01 and null.ci.low < 0 < null.ci.high


def _page_l_brute_force(rows, predicted):
    ranks = np.array([sps.rankdata(r) for r in rows])
    return float(np.sum(predicted * ranks.sum(axis=0)))


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_page_matches_scipy_and_brute_force(alternative):
    y = _dose(4, n=12, slope=0.1 if alternative == "greater" else -0.1)
    y[3, 2] = np.nan  # the row is dropped
    res = S.dose_trend(y, BUDGETS, method="page", alternative=alternative, n_resamples=300)
    rows = np.delete(y, 3, axis=0)
    predicted = np.arange(1, 6) if alternative == "greater" else np.arange(5, 0, -1)
    ref = sps.page_trend_test(rows, predicted_ranks=predicted)
    assert res.test.statistic == float(ref.statistic) == _page_l_brute_force(rows, predicted)
    assert res.test.pvalue == pytest.approx(float(ref.pvalue), rel=1e-12)
    assert res.n == 11 and res.test.pvalue < 0.05
    rho = [sps.spearmanr(BUDGETS, r).statistic for r in rows]
    assert res.estimate == pytest.approx(np.mean(rho), rel=1e-12)


def test_page_budget_order_not_column_order():
    """Columns given in shuffled budget order must give the same Page test."""
    y = _dose(5, n=15)
    perm = np.array([3, 0, 4, 1, 2])
    a = S.dose_trend(y, BUDGETS, method="page", alternative="greater", n_resamples=100)
    b = S.dose_trend(y[:, perm], BUDGETS[perm], method="page", alternative="greater", n_resamples=100)
    assert a.test.statistic == b.test.statistic and a.test.pvalue == b.test.pvalue
    c = S.dose_trend(y[:, perm], BUDGETS[perm], n_resamples=100)
    assert c.estimate == pytest.approx(S.dose_trend(y, BUDGETS, n_resamples=100).estimate, rel=1e-12)


def test_clustered_slopes_average_seeds_per_prompt():
    y = _dose(6, n=24)
    prompts = np.repeat(np.arange(8), 3)
    res = S.dose_trend(y, BUDGETS, clusters=prompts, n_resamples=100)
    per_prompt = S.unit_slopes(y, BUDGETS).reshape(8, 3).mean(axis=1)
    assert res.n == 8
    assert res.test.pvalue == pytest.approx(float(sps.ttest_1samp(per_prompt, 0).pvalue), rel=1e-10)


def test_trend_input_errors():
    y = _dose(7)
    with pytest.raises(ValueError, match="one-sided"):
        S.dose_trend(y, BUDGETS, method="page")
    with pytest.raises(ValueError, match="2-D"):
        S.dose_trend(y[0], BUDGETS)
    with pytest.raises(ValueError, match="one entry per column"):
        S.dose_trend(y, BUDGETS[:4])
    with pytest.raises(ValueError, match="positive budgets"):
        S.dose_trend(y, np.array([0, 5, 10, 20, 50]))
    with pytest.raises(ValueError, match="distinct budgets"):
        S.dose_trend(y, np.full(5, 3.0))
    with pytest.raises(ValueError, match="all-NaN"):
        S.dose_trend(np.full_like(y, np.nan), BUDGETS)
    with pytest.raises(ValueError, match="method"):
        S.dose_trend(y, BUDGETS, method="jonckheere")
