"""Percentile and BCa interval endpoints from a bootstrap distribution (used by the clustered bootstrap).

Written by hand because ``scipy.stats.bootstrap`` computes these only inside its own resampling
loop, which cannot resample clusters. The formulas follow scipy's ``_bca_interval`` and
Efron & Tibshirani (1993), sections 14.3 and 15.4, so that with one observation per cluster the
clustered bootstrap reproduces ``scipy.stats.bootstrap`` exactly (tested):

* ``z0 = Phi^-1(p)``, with ``p = (#{theta_b < theta_hat} + #{theta_b <= theta_hat}) / (2 B)``
  (the "mean" kind of percentile-of-score, robust to ties);
* acceleration ``a = sum(U^3) / (6 * sum(U^2)^(3/2))``, ``U_i = (m - 1) * (mean(theta_(.)) - theta_(i))``
  from the m leave-one-out (jackknife) values ``theta_(i)``;
* tail levels ``alpha_j = Phi(z0 + (z0 + z_j) / (1 - a (z0 + z_j)))`` for
  ``z_j = Phi^-1(alpha), Phi^-1(1 - alpha)``, ``alpha = (1 - level) / 2``;
* endpoints: linear-interpolation quantiles (numpy's default, scipy's ``stats.quantile`` default).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri


def interval(
    theta_b: np.ndarray,
    theta_hat: float,
    level: float,
    method: str,
    jackknife: np.ndarray | None = None,
) -> tuple[float, float]:
    """``(low, high)`` of a two-sided interval at ``level`` from the bootstrap values ``theta_b``.

    A constant bootstrap distribution (constant data) yields the degenerate interval
    ``(theta_b[0], theta_b[0])`` for every method.
    """
    if np.all(theta_b == theta_b[0]):
        return float(theta_b[0]), float(theta_b[0])
    alpha = (1.0 - level) / 2.0
    if method == "percentile":
        probs = np.array([alpha, 1.0 - alpha])
    elif method == "bca":
        if jackknife is None:
            raise ValueError("BCa needs the jackknife values of the statistic")
        probs = bca_levels(theta_b, theta_hat, jackknife, alpha)
    else:
        raise ValueError(f"method must be 'percentile' or 'bca', got {method!r}")
    low, high = np.quantile(theta_b, probs)
    return float(low), float(high)


def bca_levels(theta_b: np.ndarray, theta_hat: float, jackknife: np.ndarray, alpha: float) -> np.ndarray:
    """The two BCa-adjusted tail probabilities (see the module docstring)."""
    b = theta_b.size
    p = (np.count_nonzero(theta_b < theta_hat) + np.count_nonzero(theta_b <= theta_hat)) / (2.0 * b)
    z0 = float(ndtri(p))
    u = (jackknife.size - 1) * (jackknife.mean() - jackknife)
    den = np.sum(u**2) ** 1.5
    a_hat = float(np.sum(u**3) / (6.0 * den)) if den > 0 else float("nan")
    if not (np.isfinite(z0) and np.isfinite(a_hat)):
        raise ValueError(
            "the BCa interval is undefined for these data (the original statistic lies outside the "
            "bootstrap distribution or the jackknife values are all equal); use method='percentile'"
        )
    z = ndtri(np.array([alpha, 1.0 - alpha]))
    num = z0 + z
    return ndtr(z0 + num / (1.0 - a_hat * num))
