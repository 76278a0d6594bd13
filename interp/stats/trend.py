"""Dose trend across edit budgets (e.g. k in {1, 5, 10, 20, 50} keys removed).

Data: a matrix ``values[unit, budget]``, one row per prompt (or prompt x seed, with
``clusters``), one column per budget, every row measured at every budget with the same seed
(a repeated-measures design).

Methods:

* ``"slope"`` (default; the "summary statistics" approach to repeated measures, Matthews et al.
  1990, BMJ 300:230): fit each row's least-squares slope of the value on ``log(budget)``
  (natural log; ``log_budget=False`` for the raw budget), then test the mean slope against 0
  with a one-sample t-test over rows and give a seeded bootstrap CI of the mean slope. Per-row
  slope ``b = sum (x - xbar)(y - ybar) / sum (x - xbar)^2`` over the row's non-NaN budgets (a row
  needs 2 distinct budgets); it equals ``scipy.stats.linregress(x, y).slope`` (tested). The
  estimate is in units of the value per e-fold of the budget.
* ``"page"``: Page's L test for an ordered alternative (Page 1963, ``scipy.stats.page_trend_test``)
  on complete rows, with predicted ranks the budget order (``alternative="greater"``: value
  increases with budget; ``"less"``: decreases). It is one-sided by construction, so
  ``"two-sided"`` is refused. Estimate: the mean per-row Spearman correlation between budget and
  value (rows with constant values are left out of the mean), with a bootstrap CI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from interp.stats._checks import as_labels, check_alternative, check_level, check_min_n, check_nan_policy
from interp.stats.bootstrap import bootstrap_ci
from interp.stats.clustered import cluster_means
from interp.stats.results import BootstrapCI, TestResult


@dataclass(frozen=True)
class TrendResult:
    """Result of :func:`dose_trend`.

    ``method`` ``"slope"`` or ``"page"``; ``estimate`` mean slope (per e-fold of budget when
    ``log_budget``) or mean Spearman rho; ``test`` the t-test over rows or Page's L test;
    ``ci`` the bootstrap CI of ``estimate``; ``n`` rows (or clusters) used; ``budgets`` the budget
    values in column order.
    """

    method: str
    estimate: float
    test: TestResult
    ci: BootstrapCI
    n: int
    budgets: tuple[float, ...]
    log_budget: bool


def _inputs(values: object, budgets: object, log_budget: bool) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(values, dtype=np.float64)
    k = np.asarray(budgets, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"values must be 2-D (unit, budget), got shape {y.shape}")
    if k.ndim != 1 or k.shape[0] != y.shape[1]:
        raise ValueError(f"budgets must be 1-D with one entry per column of values ({y.shape[1]}), got shape {k.shape}")
    if y.shape[0] == 0:
        raise ValueError("values has no rows")
    if np.unique(k).size < 2:
        raise ValueError("a trend needs at least 2 distinct budgets")
    if not np.all(np.isfinite(k)):
        raise ValueError("budgets must be finite")
    if np.isinf(y).any():
        raise ValueError("values contains infinite values (NaN is the only accepted missing marker)")
    if log_budget:
        if np.any(k <= 0):
            raise ValueError("log_budget=True needs positive budgets")
        k = np.log(k)
    return y, k


def unit_slopes(values: object, budgets: object, *, log_budget: bool = True) -> np.ndarray:
    """Least-squares slope of each row of ``values`` on ``log(budgets)`` (or ``budgets``).

    NaN entries are skipped per row; a row with fewer than 2 distinct non-NaN budgets gives NaN.
    """
    y, x = _inputs(values, budgets, log_budget)
    w = ~np.isnan(y)
    xw = np.where(w, x[None, :], 0.0)
    yw = np.where(w, y, 0.0)
    cnt = w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        xbar = xw.sum(axis=1) / cnt
        ybar = yw.sum(axis=1) / cnt
        dx = np.where(w, x[None, :] - xbar[:, None], 0.0)
        sxx = (dx**2).sum(axis=1)
        sxy = (dx * np.where(w, y - ybar[:, None], 0.0)).sum(axis=1)
        slope = sxy / sxx
    return np.where(sxx > 0, slope, np.nan)


def _spearman_rows(y: np.ndarray, k: np.ndarray) -> np.ndarray:
    ry = sps.rankdata(y, axis=1)
    rk = sps.rankdata(k)
    ry = ry - ry.mean(axis=1, keepdims=True)
    rk = rk - rk.mean()
    den = np.sqrt((ry**2).sum(axis=1) * (rk**2).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (ry * rk).sum(axis=1) / den, np.nan)


def dose_trend(
    values: object,
    budgets: object,
    *,
    method: str = "slope",
    log_budget: bool = True,
    alternative: str = "two-sided",
    level: float = 0.95,
    ci_method: str = "bca",
    n_resamples: int = 9999,
    seed: int = 0,
    clusters: object | None = None,
    nan_policy: str = "omit",
) -> TrendResult:
    """Test for a monotone dose trend of ``values[unit, budget]`` across ``budgets``.

    Args:
        values: 2-D array, one row per unit (prompt, or prompt x seed with ``clusters``).
        budgets: 1-D budgets in column order (positive when ``log_budget``).
        method: ``"slope"`` (default) or ``"page"``, see the module docstring.
        log_budget: regress on ``log(budget)`` (default) or on the budget.
        alternative: for ``"slope"`` any of ``"two-sided"`` (default), ``"greater"``, ``"less"``;
            for ``"page"`` only ``"greater"`` or ``"less"``.
        level, ci_method, n_resamples, seed: of the bootstrap CI of the estimate.
        clusters: optional prompt label per row: per-row slopes/correlations are averaged per
            prompt before testing and the CI resamples prompts (``"slope"`` only).
        nan_policy: ``"omit"`` (default: NaN cells are skipped for slopes; rows with any NaN are
            dropped for Page) or ``"raise"``.
    """
    check_alternative(alternative)
    level = check_level(level)
    check_nan_policy(nan_policy)
    if method not in ("slope", "page"):
        raise ValueError(f"method must be 'slope' or 'page', got {method!r}")
    y, _ = _inputs(values, budgets, log_budget)
    k = np.asarray(budgets, dtype=np.float64)
    if nan_policy == "raise" and np.isnan(y).any():
        raise ValueError(f"values contains {int(np.isnan(y).sum())} NaN cells and nan_policy='raise'")
    boot = {"method": ci_method, "level": level, "n_resamples": n_resamples, "seed": seed}
    if method == "slope":
        slopes = unit_slopes(y, k, log_budget=log_budget)
        ok = ~np.isnan(slopes)
        if not ok.any():
            raise ValueError("no row has 2 distinct non-NaN budgets (all-NaN input?)")
        slopes = slopes[ok]
        units = slopes
        if clusters is not None:
            labels = as_labels(clusters, y.shape[0], "clusters")[ok]
            units, _ = cluster_means(slopes, labels)
        check_min_n(units.size, 2, "the slope trend test (rows)")
        with np.errstate(divide="ignore", invalid="ignore"):
            res = sps.ttest_1samp(units, 0.0, alternative=alternative)
            tci = res.confidence_interval(level)
        est = float(np.mean(units))
        test = TestResult(
            "slope t",
            float(res.statistic),
            float(res.pvalue),
            alternative,
            int(units.size),
            est,
            float(res.df),
            float(tci.low),
            float(tci.high),
            level,
        )
        ci = bootstrap_ci(units, **boot)
        return TrendResult("slope", est, test, ci, int(units.size), tuple(float(b) for b in k), log_budget)

    if alternative == "two-sided":
        raise ValueError(
            "Page's L test is one-sided: pass alternative='greater' (values increase with "
            "budget) or 'less' (values decrease)"
        )
    if clusters is not None:
        raise ValueError("clusters are not supported with method='page'; average seeds per prompt first")
    rows = y[~np.isnan(y).any(axis=1)]
    check_min_n(rows.shape[0], 2, "Page's test (complete rows)")
    order = sps.rankdata(k)  # predicted rank of each column: increasing with budget
    if alternative == "less":
        order = order.max() + 1 - order
    res = sps.page_trend_test(rows, predicted_ranks=order)
    rho = _spearman_rows(rows, k)
    rho = rho[~np.isnan(rho)]
    check_min_n(rho.size, 2, "the Spearman estimate (non-constant rows)")
    est = float(np.mean(rho))
    test = TestResult("page L", float(res.statistic), float(res.pvalue), alternative, int(rows.shape[0]), est)
    ci = bootstrap_ci(rho, **boot)
    return TrendResult("page", est, test, ci, int(rows.shape[0]), tuple(float(b) for b in k), log_budget)
