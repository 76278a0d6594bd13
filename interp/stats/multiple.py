"""Multiple-comparison corrections: Holm (FWER) and Benjamini-Hochberg (FDR).

Why by hand: statsmodels' ``multipletests`` (the reference the tests compare against) does not
handle NaN p-values (measured with statsmodels 0.15: Holm counts a NaN in the family size m,
Benjamini-Hochberg returns NaN for every p-value), and a family here is often ragged (a
condition missing for a layer leaves a NaN). The two step procedures are a few lines
each; NaN p-values are left out of the family (m counts only finite p-values) and stay NaN.

Formulas, with ``p_(1) <= ... <= p_(m)`` the sorted finite p-values:

* Holm step-down: ``q_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``.
* Benjamini-Hochberg step-up: ``q_(i) = min_{j >= i} min(1, m p_(j) / j)``.

Rejection is ``q <= alpha`` for both (the convention of statsmodels' ``multipletests``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interp.stats._checks import check_alpha

_METHODS = ("holm", "bh")


@dataclass(frozen=True)
class Adjusted:
    """Adjusted p-values of one family, in the input order.

    ``pvalues`` the raw p-values, ``adjusted`` the corrected ones, ``reject`` whether
    ``adjusted <= alpha`` (False where the p-value is NaN), ``method`` ``"holm"`` or ``"bh"``,
    ``m`` the family size (finite p-values only).
    """

    pvalues: tuple[float, ...]
    adjusted: tuple[float, ...]
    reject: tuple[bool, ...]
    method: str
    alpha: float
    m: int


def _as_pvalues(pvalues: object) -> np.ndarray:
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1-D, got shape {p.shape}")
    if p.size == 0:
        raise ValueError("pvalues is empty")
    finite = p[~np.isnan(p)]
    if finite.size == 0:
        raise ValueError("pvalues are all NaN")
    if np.any((finite < 0) | (finite > 1)):
        raise ValueError("pvalues must lie in [0, 1]")
    return p


def holm(pvalues: object) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN kept in place, excluded from m)."""
    p = _as_pvalues(pvalues)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = q.size
    order = np.argsort(q, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * q[order])
    adj = np.empty(m)
    adj[order] = np.maximum.accumulate(scaled)
    out[ok] = adj
    return out


def benjamini_hochberg(pvalues: object) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (NaN kept in place, excluded from m)."""
    p = _as_pvalues(pvalues)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = q.size
    order = np.argsort(q, kind="stable")
    scaled = q[order] * m / np.arange(1, m + 1)
    adj = np.empty(m)
    adj[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out[ok] = adj
    return out


def adjust_pvalues(pvalues: object, method: str = "holm", *, alpha: float = 0.05) -> Adjusted:
    """Correct a family of p-values: ``method="holm"`` (FWER) or ``"bh"`` (FDR), alpha 0.05."""
    alpha = check_alpha(alpha)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    p = _as_pvalues(pvalues)
    adj = holm(p) if method == "holm" else benjamini_hochberg(p)
    reject = np.where(np.isnan(adj), False, adj <= alpha)
    return Adjusted(
        pvalues=tuple(float(v) for v in p),
        adjusted=tuple(float(v) for v in adj),
        reject=tuple(bool(r) for r in reject),
        method=method,
        alpha=alpha,
        m=int((~np.isnan(p)).sum()),
    )
