"""Prompt-clustered bootstrap: resample prompts, keep all of a prompt's seeds.

Why by hand: ``scipy.stats.bootstrap`` resamples observations independently (or pairs of
observations with ``paired=True``); it has no notion of clusters. When each prompt is generated
with several seeds, the seeds of a prompt share the prompt's effect and are positively
correlated, so an observation-level bootstrap understates the variance (the tests show its 95%
interval covering far less than 95% of the time). The clustered (block) bootstrap draws G prompts
with replacement out of the G prompts and keeps every seed of each drawn prompt (Davison &
Hinkley 1997, section 3.8, "resampling clusters").

Conventions:

* Clusters are numbered in order of first appearance in ``clusters``.
* Resample indices are ``numpy.random.default_rng(seed).integers(0, G, size=(n_resamples, G))``,
  drawn in one call (see :func:`cluster_resample_indices`). These are the draws scipy makes for a
  one-sample bootstrap of G observations, so with one seed per prompt the clustered interval
  equals ``scipy.stats.bootstrap(..., rng=numpy.random.default_rng(seed))`` exactly, for both
  methods (tested).
* ``statistic="mean"`` is the pooled mean over all observations of the drawn prompts
  (``sum of drawn sums / sum of drawn counts``: each seed weighs equally); ``"cluster_mean"`` is
  the mean of the drawn prompts' means (each prompt weighs equally). They coincide when every
  prompt has the same number of seeds. A callable receives the concatenated 1-D observations of
  one resample and returns a float (a Python loop over resamples: slower).
* BCa uses the leave-one-*cluster*-out jackknife for the acceleration (see :mod:`interp.stats._bca`).
* NaN observations are dropped under ``nan_policy="omit"``; a prompt with no observation left
  disappears.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from interp.stats import _bca
from interp.stats._checks import as_1d, as_labels, check_level, check_min_n, check_nan_policy
from interp.stats.results import BootstrapCI

ClusterStatistic = str | Callable[[np.ndarray], float]


def cluster_codes(clusters: object) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, labels)``: integer code per observation (0..G-1 by first appearance), unique labels."""
    arr = np.asarray(clusters)
    if arr.ndim != 1:
        raise ValueError(f"clusters must be 1-D, got shape {arr.shape}")
    uniq, first, inverse = np.unique(arr, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # unique label positions in first-appearance order
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.reshape(-1)], uniq[order]


def cluster_sums(values: np.ndarray, clusters: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum and count of ``values`` per cluster, in first-appearance order; returns ``(sums, counts, labels)``."""
    x = np.asarray(values, dtype=np.float64)
    codes, labels = cluster_codes(clusters)
    if codes.shape[0] != x.shape[0]:
        raise ValueError(f"clusters has {codes.shape[0]} labels but values has {x.shape[0]} values")
    return np.bincount(codes, weights=x, minlength=labels.size), np.bincount(codes, minlength=labels.size), labels


def cluster_means(values: np.ndarray, clusters: object) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` per cluster, in first-appearance order; returns ``(means, labels)``."""
    sums, counts, labels = cluster_sums(values, clusters)
    return sums / counts, labels


def cluster_resample_indices(n_clusters: int, n_resamples: int, seed: int) -> np.ndarray:
    """The ``(n_resamples, n_clusters)`` cluster indices every clustered resampling here uses."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_clusters, size=(n_resamples, n_clusters))


def cluster_bootstrap_ci(
    values: object,
    clusters: object,
    *,
    statistic: ClusterStatistic = "mean",
    method: str = "bca",
    level: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    nan_policy: str = "omit",
) -> BootstrapCI:
    """Two-sided bootstrap CI of ``statistic`` resampling whole clusters (prompts).

    Args:
        values: 1-D observations (e.g. per-(prompt, seed) differences edited - baseline).
        clusters: 1-D labels of the same length (e.g. the prompt of each observation).
        statistic: ``"mean"`` (pooled), ``"cluster_mean"`` (mean of cluster means) or a callable
            on a 1-D array (see the module docstring).
        method: ``"percentile"`` or ``"bca"`` (default, as in scipy).
        level: confidence level, default 0.95.
        n_resamples: number of resamples B.
        seed: integer seed; the same seed and data give the same interval.
        nan_policy: ``"omit"`` (default) or ``"raise"``.

    Returns:
        :class:`BootstrapCI` with ``n`` observations and ``n_clusters`` clusters.
    """
    level = check_level(level)
    check_nan_policy(nan_policy)
    if method not in ("percentile", "bca"):
        raise ValueError(f"method must be 'percentile' or 'bca', got {method!r}")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    x = as_1d(values, "values")
    labels = as_labels(clusters, x.shape[0], "clusters")
    bad = np.isnan(x)
    if bad.any():
        if nan_policy == "raise":
            raise ValueError(f"values contains {int(bad.sum())} NaN values and nan_policy='raise'")
        x, labels = x[~bad], labels[~bad]
    if x.size == 0:
        raise ValueError("values has no non-NaN values")
    codes, uniq = cluster_codes(labels)
    g = uniq.size
    check_min_n(g, 2, "the clustered bootstrap (clusters)")
    idx = cluster_resample_indices(g, int(n_resamples), int(seed))
    theta_hat, theta_b, jack = _distribution(x, codes, g, idx, statistic, need_jackknife=method == "bca")
    low, high = _bca.interval(theta_b, theta_hat, level, method, jack)
    return BootstrapCI(
        estimate=theta_hat,
        low=low,
        high=high,
        level=level,
        method=method,
        n=int(x.size),
        n_resamples=int(n_resamples),
        seed=int(seed),
        n_clusters=int(g),
        standard_error=float(np.std(theta_b, ddof=1)) if theta_b.size > 1 else None,
    )


def _distribution(
    x: np.ndarray,
    codes: np.ndarray,
    g: int,
    idx: np.ndarray,
    statistic: ClusterStatistic,
    need_jackknife: bool,
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Original statistic, bootstrap distribution and (if needed) leave-one-cluster-out values."""
    sums = np.bincount(codes, weights=x, minlength=g)
    counts = np.bincount(codes, minlength=g).astype(np.float64)
    jack = None
    if statistic == "mean":
        theta_hat = float(x.mean())
        theta_b = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
        if need_jackknife:
            jack = (sums.sum() - sums) / (counts.sum() - counts)
    elif statistic == "cluster_mean":
        means = sums / counts
        theta_hat = float(means.mean())
        theta_b = means[idx].mean(axis=1)
        if need_jackknife:
            jack = (means.sum() - means) / (g - 1)
    elif callable(statistic):
        groups = [x[codes == c] for c in range(g)]
        theta_hat = float(statistic(x))
        theta_b = np.array([float(statistic(np.concatenate([groups[c] for c in row]))) for row in idx])
        if need_jackknife:
            jack = np.array([float(statistic(np.concatenate(groups[:c] + groups[c + 1 :]))) for c in range(g)])
    else:
        raise ValueError(f"statistic must be 'mean', 'cluster_mean' or a callable, got {statistic!r}")
    return theta_hat, theta_b, jack
