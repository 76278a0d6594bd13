"""Coverage simulation: how often does an interval procedure cover a known truth?

Design: a procedure is any function ``interval(sample, seed) -> (low, high)`` (or a result with
``low``/``high`` attributes: :class:`BootstrapCI`, :class:`TestResult`, ``MeanDifference``);
a data generator is ``sample(rng) -> data``. Repetition ``r`` draws its data with a
``numpy.random.Generator`` spawned from ``SeedSequence(seed)`` and calls the procedure with the
integer seed ``seed * 1_000_003 + r`` (so bootstrap resamples differ across repetitions but the
whole simulation is reproducible). The rate comes with its Clopper-Pearson interval
(``scipy.stats.binomtest``) so a test can state how far from the nominal level it may be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from interp.stats._checks import check_level


@dataclass(frozen=True)
class CoverageResult:
    """``hits`` of ``n_reps`` intervals contained ``truth``; ``rate = hits / n_reps`` with its
    Clopper-Pearson interval ``[rate_low, rate_high]`` at ``level``; ``mean_width`` the average
    interval width."""

    n_reps: int
    hits: int
    rate: float
    rate_low: float
    rate_high: float
    level: float
    mean_width: float


def _bounds(ci: Any) -> tuple[float, float]:
    if hasattr(ci, "low") and hasattr(ci, "high"):
        return float(ci.low), float(ci.high)
    low, high = ci
    return float(low), float(high)


def simulate_coverage(
    interval: Callable[[Any, int], Any],
    sample: Callable[[np.random.Generator], Any],
    truth: float,
    *,
    n_reps: int,
    seed: int = 0,
    level: float = 0.95,
) -> CoverageResult:
    """Fraction of ``n_reps`` simulated data sets whose interval contains ``truth``.

    Args:
        interval: ``interval(data, seed) -> (low, high)`` or an object with ``low``/``high``.
        sample: ``sample(rng) -> data`` drawing one data set.
        truth: the true value of the estimated quantity.
        n_reps: number of repetitions (> 0).
        seed: master seed of the simulation.
        level: level of the Clopper-Pearson interval of the coverage rate (not of the intervals).
    """
    level = check_level(level)
    if int(n_reps) < 1:
        raise ValueError(f"n_reps must be positive, got {n_reps}")
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(int(n_reps))]
    hits = 0
    widths = np.empty(int(n_reps))
    for r, rng in enumerate(rngs):
        low, high = _bounds(interval(sample(rng), int(seed) * 1_000_003 + r))
        hits += int(low <= truth <= high)
        widths[r] = high - low
    ci = sps.binomtest(hits, int(n_reps)).proportion_ci(confidence_level=level, method="exact")
    return CoverageResult(
        int(n_reps), hits, hits / int(n_reps), float(ci.low), float(ci.high), level, float(widths.mean())
    )
