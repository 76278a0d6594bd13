"""Sink vs matched control: the one-sided difference of differences.

Question: is the sink edit's effect larger than the effect of its matched control edit (random
keys at equal budget, say) on the same prompt and seed?

Per pair ``i`` (same prompt and seed for all three runs):

    d_i = (sink_i - base_i) - (control_i - base_i)        (= sink_i - control_i for raw scores)

or, when the inputs are already effects against the baseline (an LPIPS distance to the baseline
image, a delta CLIP-T), ``d_i = sink_i - control_i``. With ``absolute=True`` the magnitudes are
compared, ``d_i = |sink effect_i| - |control effect_i|`` (for signed metrics where "larger" means
"further from the baseline in either direction").

Reported: a one-sided paired t-test of ``mean(d)`` (H1 ``mean(d) > 0`` for the default
``alternative="greater"``), the Wilcoxon signed-rank test with the same alternative, and a
two-sided seeded bootstrap CI of ``mean(d)`` (prompt-clustered when ``clusters`` is given, in
which case the tests run on per-prompt means). Optionally (``ratio=True``) a paired bootstrap CI of
the ratio of mean effects ``mean(sink effect) / mean(control effect)`` (the "x times larger"
headline); it is only meaningful when the control's mean effect is clearly away from 0.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from interp.stats._checks import as_1d, as_labels, check_alternative, check_level, check_nan_policy
from interp.stats.bootstrap import bootstrap_ci, paired_bootstrap_ci
from interp.stats.clustered import cluster_sums
from interp.stats.results import BootstrapCI, TestResult
from interp.stats.significance import one_sample_ttest, wilcoxon_signed_rank


@dataclass(frozen=True)
class ContrastResult:
    """Result of :func:`difference_of_differences`.

    ``estimate`` mean of ``d``; ``ttest`` / ``wilcoxon`` the one-sided tests; ``ci`` the bootstrap
    CI of the mean of ``d``; ``sink_effect`` / ``control_effect`` the mean effects; ``ratio`` the
    bootstrap CI of their ratio (``None`` unless requested); ``n`` pairs used, ``n_clusters``
    prompts (``None`` if unclustered).
    """

    estimate: float
    ttest: TestResult
    wilcoxon: TestResult
    ci: BootstrapCI
    sink_effect: float
    control_effect: float
    ratio: BootstrapCI | None
    n: int
    n_clusters: int | None


def _ratio_of_means(s: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(s, axis=axis) / np.mean(c, axis=axis)


def difference_of_differences(
    sink: object,
    control: object,
    baseline: object | None = None,
    *,
    alternative: str = "greater",
    absolute: bool = False,
    ratio: bool = False,
    method: str = "bca",
    level: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    clusters: object | None = None,
    nan_policy: str = "omit",
) -> ContrastResult:
    """One-sided test and bootstrap CI of (sink effect) - (control effect), paired per prompt/seed.

    Args:
        sink, control: 1-D per-pair scores of the sink-edited and the control-edited runs, or
            their effects against the baseline when ``baseline`` is ``None``.
        baseline: 1-D per-pair baseline scores (optional, see above).
        alternative: ``"greater"`` (default: the sink effect is larger), ``"less"`` or
            ``"two-sided"``.
        absolute: compare magnitudes ``|effect|``.
        ratio: also bootstrap ``mean(sink effect) / mean(control effect)``.
        method, level, n_resamples, seed: of the bootstrap CIs (BCa, 0.95, 9999, 0 by default).
        clusters: optional prompt labels: tests on per-prompt means, CIs resample prompts.
        nan_policy: ``"omit"`` (default: a pair with any NaN among the three is dropped) or
            ``"raise"``.
    """
    check_alternative(alternative)
    level = check_level(level)
    check_nan_policy(nan_policy)
    s = as_1d(sink, "sink")
    c = as_1d(control, "control")
    arrays = {"sink": s, "control": c}
    if baseline is not None:
        arrays["baseline"] = as_1d(baseline, "baseline")
    lengths = {k: v.shape[0] for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"paired inputs are misaligned: lengths {lengths}; pairs must be matched one-to-one")
    complete = ~np.any([np.isnan(v) for v in arrays.values()], axis=0)
    if nan_policy == "raise" and not complete.all():
        raise ValueError(f"{int((~complete).sum())} pairs contain NaN and nan_policy='raise'")
    if not complete.any():
        raise ValueError("no complete pairs: every pair has a NaN member (all-NaN input?)")
    s_eff, c_eff = s[complete], c[complete]
    if baseline is not None:
        b = arrays["baseline"][complete]
        s_eff, c_eff = s_eff - b, c_eff - b
    if absolute:
        s_eff, c_eff = np.abs(s_eff), np.abs(c_eff)
    d = s_eff - c_eff
    labels = None if clusters is None else as_labels(clusters, s.shape[0], "clusters")[complete]
    boot = {"method": method, "level": level, "n_resamples": n_resamples, "seed": seed}
    ttest = one_sample_ttest(d, 0.0, alternative=alternative, level=level, clusters=labels)
    ttest = dataclasses.replace(ttest, test="paired t (sink - control)")
    wil = wilcoxon_signed_rank(d, alternative=alternative, clusters=labels)
    ci = bootstrap_ci(d, clusters=labels, **boot)
    ratio_ci = None
    if ratio:
        if labels is not None:  # prompts are the resampled units, with all their pairs: the ratio of the
            # per-prompt *sums* is the pooled mean(sink) / mean(control) (the estimate reported beside
            # it); a ratio of per-prompt means would weight prompts equally, another statistic
            s_u, _, _ = cluster_sums(s_eff, labels)
            c_u, _, _ = cluster_sums(c_eff, labels)
        else:
            s_u, c_u = s_eff, c_eff
        ratio_ci = paired_bootstrap_ci(s_u, c_u, statistic=_ratio_of_means, **boot)
    return ContrastResult(
        estimate=float(np.mean(d)),
        ttest=ttest,
        wilcoxon=wil,
        ci=ci,
        sink_effect=float(np.mean(s_eff)),
        control_effect=float(np.mean(c_eff)),
        ratio=ratio_ci,
        n=int(d.size),
        n_clusters=None if labels is None else ci.n_clusters,
    )
