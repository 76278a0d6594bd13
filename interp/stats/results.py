"""Result records shared by the modules of :mod:`interp.stats`.

Design: results are frozen dataclasses of plain Python scalars (no numpy scalars, no arrays), so
they compare with ``==``, print readably, serialise with ``dataclasses.asdict`` into a CSV row, and
cannot be mutated by an analysis after the fact. Module-specific results (equivalence, trend,
difference of differences, ...) live in their modules and nest these two.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BootstrapCI:
    """A bootstrap confidence interval.

    Attributes:
        estimate: the statistic on the original (non-resampled) data.
        low, high: the interval's bounds (equal to ``estimate`` when the data are constant: the
            bootstrap distribution is then a point mass and every method returns it).
        level: confidence level, e.g. 0.95 (two-sided: ``(1 - level) / 2`` in each tail).
        method: ``"percentile"`` or ``"bca"``.
        n: number of observations used (after NaN removal).
        n_resamples: number of bootstrap resamples.
        seed: the integer seed of ``numpy.random.default_rng``; the same seed and data reproduce
            the interval exactly.
        n_clusters: number of clusters (prompts) resampled by the prompt-clustered bootstrap, or
            ``None`` for the ordinary bootstrap of independent observations.
        standard_error: standard deviation (ddof=1) of the bootstrap distribution.
    """

    estimate: float
    low: float
    high: float
    level: float
    method: str
    n: int
    n_resamples: int
    seed: int
    n_clusters: int | None = None
    standard_error: float | None = None

    def contains(self, value: float) -> bool:
        """Whether ``low <= value <= high``."""
        return self.low <= value <= self.high

    def describe(self) -> str:
        """The method in words, for printing next to the interval: ``95% BCa bootstrap CI (9999 resamples,
        seed 0)``, with ``prompt-clustered`` when prompts were resampled."""
        method = "BCa" if self.method == "bca" else self.method
        clustered = f", prompt-clustered over {self.n_clusters} prompts" if self.n_clusters is not None else ""
        return (
            f"{self.level * 100:g}% {method} bootstrap CI ({self.n_resamples} resamples, seed {self.seed}{clustered})"
        )


@dataclass(frozen=True)
class TestResult:
    """A hypothesis test.

    Attributes:
        test: name of the test, e.g. ``"paired t"``, ``"wilcoxon signed-rank"``.
        statistic: the test statistic as scipy reports it.
        pvalue: the p-value for ``alternative``.
        alternative: ``"two-sided"``, ``"greater"`` or ``"less"`` (of edited - baseline vs 0,
            or of the tested quantity vs its null value).
        n: number of independent units tested (pairs, or clusters when clustered).
        estimate: the effect estimate that goes with the test (mean difference for t-tests,
            Hodges-Lehmann pseudomedian for the signed-rank test, mean slope for trends).
        df: degrees of freedom where the test has them.
        low, high, level: confidence interval of ``estimate`` where the test provides one
            (t-based for t-tests; one-sided alternatives give an infinite bound, as in scipy).
    """

    __test__ = False  # not a pytest test class despite the name

    test: str
    statistic: float
    pvalue: float
    alternative: str
    n: int
    estimate: float
    df: float | None = None
    low: float | None = None
    high: float | None = None
    level: float | None = None
