"""Paired differences and the t-based mean difference.

Design: the whole package reduces a paired comparison to one vector of per-unit differences,
``edited - baseline``, computed here. A *unit* is a pair (one prompt x seed) or, when ``clusters``
(prompt labels) are given, a prompt: the differences of its seeds are averaged first, so that the
prompt, not the seed, is the independent unit of every test (seeds of one prompt are correlated;
treating them as independent overstates n). Tests, TOST and effect sizes all call
:func:`paired_units`, so they share one NaN policy and one alignment check.

NaN policy: ``"omit"`` (default) drops every pair with a NaN member (and, when clustered, a prompt
none of whose pairs survive); ``"raise"`` raises. Misaligned lengths always raise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from interp.stats._checks import (
    as_1d,
    as_labels,
    check_level,
    check_min_n,
    check_nan_policy,
    paired_mask,
)
from interp.stats.clustered import cluster_means


def paired_differences(edited: object, baseline: object, *, nan_policy: str = "omit") -> np.ndarray:
    """Per-pair differences ``edited - baseline``.

    Args:
        edited, baseline: 1-D arrays of the same length, element ``i`` of each from the same
            prompt and seed (xarray DataArrays and lists are accepted and converted).
        nan_policy: ``"omit"`` drops pairs with a NaN member (the result is shorter);
            ``"propagate"`` keeps them as NaN (the result stays aligned with the inputs, e.g.
            with a tag array); ``"raise"`` raises if any pair has a NaN.

    Raises:
        ValueError: on misaligned lengths, empty or all-NaN input (except under ``"propagate"``,
            which never drops anything), infinite values.
    """
    check_nan_policy(nan_policy, ("omit", "raise", "propagate"))
    e = as_1d(edited, "edited")
    b = as_1d(baseline, "baseline")
    if nan_policy == "propagate":
        if e.shape != b.shape:
            paired_mask(e, b, "omit")  # raises the misalignment error
        return e - b
    mask = paired_mask(e, b, nan_policy)
    return e[mask] - b[mask]


def paired_units(
    edited: object,
    baseline: object | None = None,
    *,
    clusters: object | None = None,
    nan_policy: str = "omit",
) -> np.ndarray:
    """Differences per independent unit: per pair, or per cluster (mean over its pairs).

    With ``baseline=None``, ``edited`` is taken to be already a vector of differences (or any
    one-sample quantity) and only the NaN policy and clustering are applied.
    """
    check_nan_policy(nan_policy)
    e = as_1d(edited, "edited" if baseline is not None else "values")
    b = np.zeros_like(e) if baseline is None else as_1d(baseline, "baseline")
    mask = paired_mask(e, b, nan_policy)
    diff = e[mask] - b[mask]
    if clusters is None:
        return diff
    labels = as_labels(clusters, e.shape[0], "clusters")[mask]
    means, _ = cluster_means(diff, labels)
    return means


@dataclass(frozen=True)
class MeanDifference:
    """Mean of ``edited - baseline`` with its Student-t confidence interval.

    ``estimate = mean(d)``, ``se = sd(d, ddof=1) / sqrt(n)``, ``df = n - 1``,
    ``[low, high] = estimate -/+ t_{df, (1 + level) / 2} * se`` (two-sided).
    """

    estimate: float
    low: float
    high: float
    level: float
    se: float
    df: float
    n: int


def mean_difference(
    edited: object,
    baseline: object | None = None,
    *,
    level: float = 0.95,
    clusters: object | None = None,
    nan_policy: str = "omit",
) -> MeanDifference:
    """Mean paired difference with a two-sided t confidence interval (level 0.95 by default).

    Args:
        edited, baseline: paired 1-D arrays; ``baseline=None`` means ``edited`` already holds
            differences.
        level: confidence level in (0, 1).
        clusters: optional prompt labels; differences are averaged per prompt first, and n is the
            number of prompts.
        nan_policy: ``"omit"`` (default) or ``"raise"``.
    """
    level = check_level(level)
    d = paired_units(edited, baseline, clusters=clusters, nan_policy=nan_policy)
    n = d.size
    check_min_n(n, 2, "mean_difference")
    est = float(np.mean(d))
    se = float(np.std(d, ddof=1) / np.sqrt(n))
    df = n - 1
    half = float(sps.t.ppf(0.5 + level / 2, df)) * se
    return MeanDifference(est, est - half, est + half, level, se, float(df), n)
