"""Difference of differences (sink vs matched control): agreement with scipy on the per-pair contrast."""

import numpy as np
import pytest
from scipy import stats as sps

from interp import stats as S


def _runs(seed: int, n: int = 40, sink_shift: float = -0.3, control_shift: float = -0.1):
    rng = np.random.default_rng(seed)
    base = rng.normal(0.3, 0.05, size=n)  # a CLIP-T-like score
    sink = base + rng.normal(sink_shift, 0.2, size=n)
    control = base + rng.normal(control_shift, 0.2, size=n)
    return sink, control, base


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_raw_scores_with_baseline_match_scipy(alternative):
    sink, control, base = _runs(0)
    res = S.difference_of_differences(sink, control, base, alternative=alternative, n_resamples=999, seed=4)
    d = (sink - base) - (control - base)
    t = sps.ttest_rel(sink, control, alternative=alternative)
    w = sps.wilcoxon(d, alternative=alternative)
    assert res.ttest.pvalue == pytest.approx(float(t.pvalue), rel=1e-9)
    assert res.wilcoxon.pvalue == pytest.approx(float(w.pvalue), rel=1e-9)
    ref = sps.bootstrap((d,), np.mean, n_resamples=999, rng=np.random.default_rng(4))
    assert (res.ci.low, res.ci.high) == pytest.approx(
        (float(ref.confidence_interval.low), float(ref.confidence_interval.high)), rel=1e-12
    )
    assert res.estimate == pytest.approx(d.mean())
    assert res.sink_effect == pytest.approx(np.mean(sink - base))
    assert res.control_effect == pytest.approx(np.mean(control - base))


def test_direction_one_sided():
    """Sink lowers the score more than control: 'less' is significant, 'greater' is not; with
    absolute=True the sink's larger magnitude is 'greater'."""
    sink, control, base = _runs(1, n=60)
    less = S.difference_of_differences(sink, control, base, alternative="less", n_resamples=500)
    greater = S.difference_of_differences(sink, control, base, alternative="greater", n_resamples=500)
    mag = S.difference_of_differences(sink, control, base, alternative="greater", absolute=True, n_resamples=500)
    assert less.ttest.pvalue < 0.01 < 0.99 < greater.ttest.pvalue
    assert less.ttest.pvalue + greater.ttest.pvalue == pytest.approx(1.0)
    assert mag.ttest.pvalue < 0.01
    d_abs = np.abs(sink - base) - np.abs(control - base)
    assert mag.ttest.pvalue == pytest.approx(float(sps.ttest_1samp(d_abs, 0, alternative="greater").pvalue))


def test_effects_given_directly_and_ratio_ci():
    rng = np.random.default_rng(2)
    sink_lpips = rng.gamma(6.0, 0.05, size=50)  # distances to the baseline image
    ctrl_lpips = rng.gamma(2.0, 0.025, size=50)
    res = S.difference_of_differences(sink_lpips, ctrl_lpips, ratio=True, n_resamples=800, seed=8)
    ref = sps.bootstrap(
        (sink_lpips, ctrl_lpips),
        lambda a, b, axis=-1: a.mean(axis) / b.mean(axis),
        paired=True,
        n_resamples=800,
        rng=np.random.default_rng(8),
    )
    assert res.ratio.estimate == pytest.approx(sink_lpips.mean() / ctrl_lpips.mean())
    assert (res.ratio.low, res.ratio.high) == pytest.approx(
        (float(ref.confidence_interval.low), float(ref.confidence_interval.high)), rel=1e-12
    )
    assert res.ttest.pvalue < 1e-6


def test_clustered_contrast_uses_prompt_means():
    rng = np.random.default_rng(3)
    prompts = np.repeat(np.arange(15), 3)
    sink, control = rng.normal(0.2, 1, size=45), rng.normal(0, 1, size=45)
    res = S.difference_of_differences(sink, control, clusters=prompts, n_resamples=400, seed=1)
    d_prompt = (sink - control).reshape(15, 3).mean(axis=1)
    assert res.ttest.n == 15 and res.n == 45 and res.n_clusters == 15
    ref = sps.ttest_1samp(d_prompt, 0, alternative="greater")
    assert res.ttest.pvalue == pytest.approx(float(ref.pvalue))
    assert res.ci == S.cluster_bootstrap_ci(sink - control, prompts, n_resamples=400, seed=1)


def test_clustered_ratio_ci_is_of_the_pooled_ratio_it_reports():
    """Prompts with unequal numbers of pairs: the ratio CI resamples prompts with all their pairs, and its
    statistic is the pooled mean(sink) / mean(control), so the estimate printed beside it (the pooled
    ratio) is the one the interval is about (an equal-weight ratio of per-prompt means was not)."""
    rng = np.random.default_rng(4)
    sizes = np.array([1, 1, 1, 2, 2, 3, 8, 12, 20, 30])  # a few prompts with many pairs, as in the study
    prompts = np.repeat(np.arange(sizes.size), sizes)
    heavy = np.repeat(sizes >= 8, sizes)
    sink = np.where(heavy, rng.gamma(2.0, 0.01, prompts.size), rng.gamma(8.0, 0.05, prompts.size))
    control = rng.gamma(2.0, 0.01, prompts.size)
    res = S.difference_of_differences(sink, control, ratio=True, clusters=prompts, n_resamples=2000, seed=3)
    assert res.ratio.estimate == pytest.approx(sink.mean() / control.mean(), rel=1e-12)
    assert res.ratio.low <= res.ratio.estimate <= res.ratio.high


def test_nan_in_any_of_three_drops_the_pair_and_misalignment_raises():
    sink, control, base = _runs(4)
    base[3], sink[7], control[11] = np.nan, np.nan, np.nan
    res = S.difference_of_differences(sink, control, base, n_resamples=200)
    keep = np.ones(40, bool)
    keep[[3, 7, 11]] = False
    assert res.n == 37
    assert res.ttest.pvalue == pytest.approx(
        float(sps.ttest_rel(sink[keep], control[keep], alternative="greater").pvalue)
    )
    with pytest.raises(ValueError, match="misaligned"):
        S.difference_of_differences(sink, control[:-1], base)
