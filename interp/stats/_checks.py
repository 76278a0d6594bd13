"""Input validation shared by every module of :mod:`interp.stats`.

Design: every public function turns its inputs into 1-D float64 numpy arrays here, so that the
statistics code below never sees lists, xarray DataArrays, pandas Series, bools or ints, and every
bad input fails *before* any computation with a message naming the argument.

Conventions enforced here (and stated in each public docstring):

* Paired data are given as ``(edited, baseline)``; the per-pair difference is ``edited - baseline``
  (the order of ``scipy.stats.ttest_rel(a, b)`` and statsmodels' ``ttost_paired(x1, x2)``).
* NaN means "missing". ``nan_policy="omit"`` (the default everywhere) drops every pair in which
  either member is NaN; ``"raise"`` raises on any NaN. ``"propagate"`` exists only for
  :func:`interp.stats.paired_differences`, which keeps positions aligned with labels.
  Infinite values are never missing data: they always raise.
* ``alpha`` must lie in the open interval (0, 1); so must a CI ``level``.
* ``alternative`` is one of scipy's ``"two-sided"``, ``"greater"``, ``"less"``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

NanPolicy = Literal["omit", "raise"]
Alternative = Literal["two-sided", "greater", "less"]

_ALTERNATIVES = ("two-sided", "greater", "less")


def as_1d(x: object, name: str) -> np.ndarray:
    """``x`` as a 1-D float64 array (xarray / pandas / lists accepted via ``np.asarray``)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be numeric array-like, got {type(x).__name__}: {exc}") from exc
    if arr.ndim == 0:
        raise ValueError(f"{name} must be 1-D, got a scalar")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains infinite values (NaN is the only accepted missing marker)")
    return arr


def as_labels(labels: object, n: int, name: str) -> np.ndarray:
    """Group/cluster labels as a 1-D array of length ``n`` (any sortable dtype)."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} labels but the data have {n} values")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN labels")
    return arr


def check_alpha(alpha: float, name: str = "alpha") -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {alpha}")
    return alpha


def check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level (confidence level) must lie in (0, 1), got {level}")
    return level


def check_alternative(alternative: str) -> str:
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    return alternative


def check_nan_policy(nan_policy: str, allowed: tuple[str, ...] = ("omit", "raise")) -> str:
    if nan_policy not in allowed:
        raise ValueError(f"nan_policy must be one of {allowed}, got {nan_policy!r}")
    return nan_policy


def check_min_n(n: int, minimum: int, what: str) -> None:
    if n < minimum:
        raise ValueError(f"{what} needs at least {minimum} non-missing values, got {n}")


def drop_nan(x: np.ndarray, nan_policy: str, name: str) -> np.ndarray:
    """Apply ``nan_policy`` to one sample; raise a clear error when nothing is left."""
    check_nan_policy(nan_policy)
    bad = np.isnan(x)
    if bad.any():
        if nan_policy == "raise":
            raise ValueError(f"{name} contains {int(bad.sum())} NaN values and nan_policy='raise'")
        x = x[~bad]
    if x.size == 0:
        raise ValueError(f"{name} has no non-NaN values")
    return x


def paired_mask(edited: np.ndarray, baseline: np.ndarray, nan_policy: str) -> np.ndarray:
    """Boolean mask of complete pairs, after checking alignment and ``nan_policy``."""
    if edited.shape != baseline.shape:
        raise ValueError(
            f"paired inputs are misaligned: edited has {edited.shape[0]} values, "
            f"baseline has {baseline.shape[0]}; pairs must be matched one-to-one"
        )
    complete = ~(np.isnan(edited) | np.isnan(baseline))
    if nan_policy == "raise" and not complete.all():
        raise ValueError(f"{int((~complete).sum())} pairs contain NaN and nan_policy='raise'")
    if not complete.any():
        raise ValueError("no complete pairs: every pair has a NaN member (all-NaN input?)")
    return complete
