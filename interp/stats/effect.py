"""Standardised effect sizes for paired data.

Design: one formula per function, on the per-unit differences of :func:`interp.stats.paired_units`.

* Cohen's ``d_z = mean(d) / sd(d)`` with ``sd`` the sample standard deviation (ddof=1), the
  standardised mean of the differences (Cohen 1988; Lakens 2013, eq. 6). ``d_z * sqrt(n)`` is the
  paired t statistic.
* Hedges' small-sample correction ``g_z = J(df) * d_z`` with the exact factor
  ``J(df) = Gamma(df / 2) / (sqrt(df / 2) * Gamma((df - 1) / 2))``, ``df = n - 1``
  (Hedges 1981; approximately ``1 - 3 / (4 df - 1)``), which makes ``g_z`` unbiased for the
  population value under normality (tested by simulation).

For a confidence interval of either, bootstrap it: ``bootstrap_ci(d, statistic=cohens_dz_axis)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from interp.stats._checks import check_min_n
from interp.stats.paired import paired_units


def hedges_correction(df: float) -> float:
    """Exact small-sample bias-correction factor ``J(df)`` (df > 1)."""
    if df <= 1:
        raise ValueError(f"Hedges' correction needs df > 1, got {df}")
    return float(np.exp(gammaln(df / 2.0) - gammaln((df - 1.0) / 2.0)) / np.sqrt(df / 2.0))


def cohens_dz_axis(d: np.ndarray, axis: int = -1) -> np.ndarray:
    """Vectorized ``mean(d) / sd(d, ddof=1)`` along ``axis`` (a statistic for ``bootstrap_ci``)."""
    return np.mean(d, axis=axis) / np.std(d, axis=axis, ddof=1)


@dataclass(frozen=True)
class EffectSize:
    """A standardised paired effect size.

    ``name`` is ``"cohen_dz"`` or ``"hedges_gz"``; ``value`` the effect size; ``mean`` and ``sd``
    (ddof=1) the differences' moments it was computed from; ``n`` the number of units.
    """

    name: str
    value: float
    mean: float
    sd: float
    n: int


def effect_size(
    edited: object,
    baseline: object | None = None,
    *,
    hedges: bool = False,
    clusters: object | None = None,
    nan_policy: str = "omit",
) -> EffectSize:
    """Cohen's ``d_z`` (default) or Hedges' ``g_z`` (``hedges=True``) of ``edited - baseline``.

    ``baseline=None`` means ``edited`` already holds differences. With ``clusters`` the
    differences are averaged per prompt first. Constant nonzero differences give ``+-inf``;
    all-zero differences give NaN (0 / 0).
    """
    d = paired_units(edited, baseline, clusters=clusters, nan_policy=nan_policy)
    n = d.size
    check_min_n(n, 3 if hedges else 2, "hedges_gz" if hedges else "cohen_dz")
    mean = float(np.mean(d))
    sd = float(np.std(d, ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(np.float64(mean) / np.float64(sd))
    if hedges:
        return EffectSize("hedges_gz", value * hedges_correction(n - 1), mean, sd, n)
    return EffectSize("cohen_dz", value, mean, sd, n)
