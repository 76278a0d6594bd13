"""Paired equivalence test: two one-sided t-tests (TOST) against a stated margin.

Why: "the CI contains 0" is not evidence of no effect (an underpowered study always shows it).
Equivalence is claimed only when the mean difference is shown to lie *inside* a margin
``(low, high)`` fixed before looking at the data (Schuirmann 1987; Lakens 2017).

Formulas, on ``d = edited - baseline`` (per pair, or per prompt with ``clusters``), with
``se = sd(d, ddof=1) / sqrt(n)``, ``df = n - 1``:

* lower test, H0: ``mean <= low``: ``t_low = (mean - low) / se``, ``p_low = P(T_df >= t_low)``;
* upper test, H0: ``mean >= high``: ``t_high = (mean - high) / se``, ``p_high = P(T_df <= t_high)``;
* TOST p-value ``p = max(p_low, p_high)``; equivalent at ``alpha`` iff ``p < alpha``, which is the
  same as the ``1 - 2 alpha`` two-sided t interval lying strictly inside ``(low, high)``.

This is what statsmodels' ``ttost_paired(edited, baseline, low, high)`` computes (tested).
There is no default margin: it is a scientific choice and must be stated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from interp.stats._checks import check_alpha, check_min_n
from interp.stats.paired import paired_units


@dataclass(frozen=True)
class EquivalenceResult:
    """Result of :func:`tost_paired`.

    ``low``/``high`` the equivalence margin; ``estimate`` the mean difference; ``statistic_low``,
    ``pvalue_low`` and ``statistic_high``, ``pvalue_high`` the two one-sided tests; ``pvalue`` the
    larger of the two; ``ci_low``/``ci_high`` the ``1 - 2 alpha`` t interval of the mean;
    ``equivalent`` whether ``pvalue < alpha``.
    """

    low: float
    high: float
    estimate: float
    statistic_low: float
    pvalue_low: float
    statistic_high: float
    pvalue_high: float
    pvalue: float
    df: float
    n: int
    alpha: float
    ci_low: float
    ci_high: float
    equivalent: bool


def _margin(margin: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(margin, tuple | list):
        if len(margin) != 2:
            raise ValueError(f"margin must be a positive number or a (low, high) pair, got {margin!r}")
        low, high = float(margin[0]), float(margin[1])
    else:
        m = float(margin)
        if not m > 0:
            raise ValueError(f"a symmetric margin must be positive, got {m}")
        low, high = -m, m
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"the margin needs finite low < high, got ({low}, {high})")
    return low, high


def tost_paired(
    edited: object,
    baseline: object | None,
    margin: float | tuple[float, float],
    *,
    alpha: float = 0.05,
    clusters: object | None = None,
    nan_policy: str = "omit",
) -> EquivalenceResult:
    """Paired TOST: is ``mean(edited - baseline)`` inside ``margin``?

    Args:
        edited, baseline: paired 1-D arrays (``baseline=None``: ``edited`` holds differences).
        margin: ``m > 0`` for ``(-m, m)``, or an explicit ``(low, high)`` with ``low < high``,
            in the units of the data.
        alpha: level of each one-sided test, default 0.05.
        clusters: optional prompt labels (differences averaged per prompt first).
        nan_policy: ``"omit"`` (default) or ``"raise"``.
    """
    alpha = check_alpha(alpha)
    low, high = _margin(margin)
    d = paired_units(edited, baseline, clusters=clusters, nan_policy=nan_policy)
    n = d.size
    check_min_n(n, 2, "the TOST")
    df = n - 1
    mean = float(np.mean(d))
    se = float(np.std(d, ddof=1) / np.sqrt(n))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_low = (mean - low) / np.float64(se)
        t_high = (mean - high) / np.float64(se)
    p_low = float(sps.t.sf(t_low, df))
    p_high = float(sps.t.cdf(t_high, df))
    half = float(sps.t.ppf(1.0 - alpha, df)) * se
    p = max(p_low, p_high)
    return EquivalenceResult(
        low=low,
        high=high,
        estimate=mean,
        statistic_low=float(t_low),
        pvalue_low=p_low,
        statistic_high=float(t_high),
        pvalue_high=p_high,
        pvalue=p,
        df=float(df),
        n=int(n),
        alpha=alpha,
        ci_low=mean - half,
        ci_high=mean + half,
        equivalent=bool(p < alpha),
    )
