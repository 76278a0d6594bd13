"""Seeded bootstrap confidence intervals (percentile and BCa) through ``scipy.stats.bootstrap``.

Design: scipy does the resampling and the interval; this module fixes the conventions (seeded
``numpy.random.default_rng(seed)``, two-sided, level 0.95, BCa by default as in scipy, NaN pairs
omitted), handles the degenerate cases scipy answers with NaN, and returns a frozen
:class:`~interp.stats.results.BootstrapCI` that records everything needed to reproduce it.

Paired data: the bootstrap of a statistic of the differences (the mean difference) resamples the
vector ``d = edited - baseline``; that is the same resampling as scipy's ``paired=True`` (scipy
bootstraps the shared index vector with the same draws; tested). A statistic that is not a
function of ``d`` alone (a ratio of means, say) goes through ``scipy.stats.bootstrap(...,
paired=True)``. When a prompt has several seeds, pass ``clusters`` to resample prompts instead
(:mod:`interp.stats.clustered`, hand-written because scipy cannot).

One method for every paired accuracy or score difference the project prints: :func:`paired_difference_ci`
(BCa, 9999 resamples, seed 0 unless told otherwise; prompt-clustered when a prompt has several seeds)
is what ``interp demo`` and the analyses' effect tables (Table 8 and the others) both call, so one
set of pairs gets one interval wherever it is shown, printed with its method
(:meth:`~interp.stats.results.BootstrapCI.describe`).

Constant data (e.g. a no-op edit whose differences are all exactly 0) give the degenerate interval
``[c, c]`` for both methods: the bootstrap distribution is a point mass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats as sps

from interp.stats._checks import (
    as_1d,
    as_labels,
    check_level,
    check_min_n,
    check_nan_policy,
    drop_nan,
    paired_mask,
)
from interp.stats.clustered import cluster_bootstrap_ci
from interp.stats.results import BootstrapCI

_NAMED = {"mean": np.mean, "median": np.median}


def _statistic(statistic: str | Callable) -> Callable:
    if isinstance(statistic, str):
        if statistic not in _NAMED:
            raise ValueError(f"statistic must be one of {tuple(_NAMED)} or a callable, got {statistic!r}")
        return _NAMED[statistic]
    if not callable(statistic):
        raise TypeError(f"statistic must be a name or a callable, got {type(statistic).__name__}")
    return statistic


def _check(method: str, n_resamples: int) -> None:
    if method not in ("percentile", "bca"):
        raise ValueError(f"method must be 'percentile' or 'bca', got {method!r}")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")


def _run(
    data: tuple[np.ndarray, ...],
    fn: Callable,
    paired: bool,
    method: str,
    level: float,
    n_resamples: int,
    seed: int,
) -> tuple[float, float, float, float | None]:
    estimate = float(fn(*data, axis=-1))
    if all(np.all(d == d[0]) for d in data):
        return estimate, estimate, estimate, 0.0
    res = sps.bootstrap(
        data,
        fn,
        paired=paired,
        vectorized=True,
        n_resamples=int(n_resamples),
        confidence_level=level,
        method="BCa" if method == "bca" else "percentile",
        rng=np.random.default_rng(int(seed)),
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(
            f"the {method} interval is undefined for these data (scipy returned NaN; a degenerate "
            "bootstrap distribution); use method='percentile' or another statistic"
        )
    return estimate, low, high, float(res.standard_error)


def bootstrap_ci(
    values: object,
    *,
    statistic: str | Callable = "mean",
    method: str = "bca",
    level: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    clusters: object | None = None,
    nan_policy: str = "omit",
) -> BootstrapCI:
    """Two-sided bootstrap CI of a one-sample statistic.

    Args:
        values: 1-D sample (e.g. per-pair differences, or a per-prompt score).
        statistic: ``"mean"``, ``"median"`` or a vectorized callable ``f(x, axis=-1)`` as scipy
            expects (with ``clusters``: ``"mean"``, ``"cluster_mean"`` or ``f(x) -> float``).
        method: ``"bca"`` (default) or ``"percentile"``.
        level: confidence level, default 0.95 (``(1 - level) / 2`` in each tail).
        n_resamples: number of resamples (scipy's default 9999).
        seed: integer seed of ``numpy.random.default_rng``; reproduces the interval exactly.
        clusters: optional labels (prompt per observation): resample clusters, see
            :func:`interp.stats.cluster_bootstrap_ci`.
        nan_policy: ``"omit"`` (default, NaN dropped) or ``"raise"``.
    """
    level = check_level(level)
    _check(method, n_resamples)
    if clusters is not None:
        return cluster_bootstrap_ci(
            values,
            clusters,
            statistic=statistic,
            method=method,
            level=level,
            n_resamples=n_resamples,
            seed=seed,
            nan_policy=nan_policy,
        )
    x = drop_nan(as_1d(values, "values"), check_nan_policy(nan_policy), "values")
    check_min_n(x.size, 2, "the bootstrap")
    est, low, high, se = _run((x,), _statistic(statistic), False, method, level, n_resamples, seed)
    return BootstrapCI(est, low, high, level, method, int(x.size), int(n_resamples), int(seed), None, se)


def paired_bootstrap_ci(
    edited: object,
    baseline: object,
    *,
    statistic: str | Callable = "mean_difference",
    method: str = "bca",
    level: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    clusters: object | None = None,
    nan_policy: str = "omit",
) -> BootstrapCI:
    """Two-sided paired bootstrap CI (pairs resampled together).

    Args:
        edited, baseline: paired 1-D arrays; pairs with a NaN member are dropped (``"omit"``).
        statistic: ``"mean_difference"`` (default: mean of ``edited - baseline``) or a vectorized
            callable ``f(edited, baseline, axis=-1)`` (e.g. a ratio of means), bootstrapped with
            ``scipy.stats.bootstrap(paired=True)``.
        clusters: optional prompt labels: resample prompts with all their seeds (only with
            ``"mean_difference"``; the statistic is then the pooled mean difference).
        method, level, n_resamples, seed, nan_policy: as in :func:`bootstrap_ci`.
    """
    level = check_level(level)
    check_nan_policy(nan_policy)
    _check(method, n_resamples)
    e = as_1d(edited, "edited")
    b = as_1d(baseline, "baseline")
    mask = paired_mask(e, b, nan_policy)
    if clusters is not None:
        if statistic != "mean_difference":
            raise ValueError("clusters are supported only with statistic='mean_difference'")
        labels = as_labels(clusters, e.shape[0], "clusters")[mask]
        return cluster_bootstrap_ci(
            e[mask] - b[mask],
            labels,
            statistic="mean",
            method=method,
            level=level,
            n_resamples=n_resamples,
            seed=seed,
        )
    e, b = e[mask], b[mask]
    check_min_n(e.size, 2, "the paired bootstrap")
    if statistic == "mean_difference":
        est, low, high, se = _run((e - b,), np.mean, False, method, level, n_resamples, seed)
    elif callable(statistic):
        est, low, high, se = _run((e, b), statistic, True, method, level, n_resamples, seed)
    else:
        raise ValueError(f"statistic must be 'mean_difference' or a callable, got {statistic!r}")
    return BootstrapCI(est, low, high, level, method, int(e.size), int(n_resamples), int(seed), None, se)


def paired_difference_ci(
    edited: object,
    baseline: object,
    *,
    prompts: object | None = None,
    method: str = "bca",
    level: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> BootstrapCI:
    """The CI of the mean paired difference ``edited - baseline`` used everywhere a paired effect is printed.

    ``prompts``: the prompt of each pair; when a prompt occurs more than once (several seeds), prompts
    are resampled with all their seeds (:func:`cluster_bootstrap_ci`), else pairs are resampled.
    Defaults: BCa, 9999 resamples, seed 0 (``interp analyze``'s defaults)."""
    clusters = None
    if prompts is not None:
        labels = np.asarray(prompts)
        clusters = labels if np.unique(labels).size < labels.size else None
    return paired_bootstrap_ci(
        edited, baseline, clusters=clusters, method=method, level=level, n_resamples=n_resamples, seed=seed
    )
