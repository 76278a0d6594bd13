"""Paired statistics for edit-vs-baseline comparisons (``interp.stats``).

Every comparison in the paper is paired: the edited run and the baseline run share prompt and
seed. The package reduces such data to per-unit differences ``edited - baseline`` and offers:

* differences and effects: :func:`paired_differences`, :func:`mean_difference` (t CI),
  :func:`effect_size` (Cohen's d_z, Hedges' g_z);
* seeded bootstrap CIs, percentile and BCa: :func:`bootstrap_ci`, :func:`paired_bootstrap_ci`
  (``scipy.stats.bootstrap``), :func:`paired_difference_ci` (the one method for every printed paired
  difference: the demo and the analyses' tables), :func:`cluster_bootstrap_ci` (resample prompts with all their
  seeds; hand-written, scipy cannot);
* tests: :func:`one_sample_ttest`, :func:`paired_ttest`, :func:`wilcoxon_signed_rank`;
  equivalence :func:`tost_paired` against a stated margin; :func:`difference_of_differences`
  (sink vs matched control, one-sided); :func:`dose_trend` across budgets;
* multiplicity: :func:`adjust_pvalues` (Holm, Benjamini-Hochberg);
* breakdowns: :func:`by_group`, :func:`to_records`; and :func:`simulate_coverage`.

Conventions everywhere: difference = ``edited - baseline``; tests two-sided unless
``alternative`` says otherwise; ``alpha`` 0.05 and CI ``level`` 0.95 by default, each checked to
lie in (0, 1); NaN marks a missing value and ``nan_policy="omit"`` (default) drops every pair with
a NaN member (``"raise"`` raises); misaligned lengths, empty or all-NaN inputs and infinite
values raise ``ValueError``; bootstrap resampling is seeded (``numpy.random.default_rng(seed)``,
default seed 0) and the seed is recorded in the result; results are frozen dataclasses.
With several seeds per prompt, pass ``clusters=prompt_labels``: tests then run on per-prompt
means and bootstrap CIs resample prompts. Inputs may be numpy arrays, lists, or xarray
DataArrays (converted with ``numpy.asarray``; align them first, e.g. with ``xarray.align``).
"""

from interp.stats.bootstrap import bootstrap_ci, paired_bootstrap_ci, paired_difference_ci
from interp.stats.clustered import cluster_bootstrap_ci, cluster_means, cluster_resample_indices
from interp.stats.contrast import ContrastResult, difference_of_differences
from interp.stats.coverage import CoverageResult, simulate_coverage
from interp.stats.effect import EffectSize, cohens_dz_axis, effect_size, hedges_correction
from interp.stats.equivalence import EquivalenceResult, tost_paired
from interp.stats.groups import GroupRow, by_group, result_pvalue, to_records
from interp.stats.multiple import Adjusted, adjust_pvalues, benjamini_hochberg, holm
from interp.stats.paired import MeanDifference, mean_difference, paired_differences, paired_units
from interp.stats.results import BootstrapCI, TestResult
from interp.stats.significance import hodges_lehmann, one_sample_ttest, paired_ttest, wilcoxon_signed_rank
from interp.stats.trend import TrendResult, dose_trend, unit_slopes

__all__ = [
    "Adjusted",
    "BootstrapCI",
    "ContrastResult",
    "CoverageResult",
    "EffectSize",
    "EquivalenceResult",
    "GroupRow",
    "MeanDifference",
    "TestResult",
    "TrendResult",
    "adjust_pvalues",
    "benjamini_hochberg",
    "bootstrap_ci",
    "by_group",
    "cluster_bootstrap_ci",
    "cluster_means",
    "cluster_resample_indices",
    "cohens_dz_axis",
    "difference_of_differences",
    "dose_trend",
    "effect_size",
    "hedges_correction",
    "hodges_lehmann",
    "holm",
    "mean_difference",
    "one_sample_ttest",
    "paired_bootstrap_ci",
    "paired_difference_ci",
    "paired_differences",
    "paired_ttest",
    "paired_units",
    "result_pvalue",
    "simulate_coverage",
    "to_records",
    "tost_paired",
    "unit_slopes",
    "wilcoxon_signed_rank",
]
