"""One bootstrap method for paired differences: the demo's accuracy line and the analyses' effect tables
(Table 8 and the others) give the same interval for the same pairs, and say which method it is."""

import re

import numpy as np
import pytest
import xarray as xr
from scipy import stats as sps

from interp import stats as S
from interp.analysis.config import AnalysisConfig
from interp.analysis.context import Context
from interp.analysis.effects import effect_from_values, stats_note
from interp.demo import accuracy_line


def _accuracy_pairs(n: int = 24, seed: int = 3):
    """0/1 correctness of a baseline and an edit on ``n`` held-out captions (the demo's data)."""
    rng = np.random.default_rng(seed)
    base = (rng.random(n) < 0.5).astype(float)
    edited = np.where(rng.random(n) < 0.25, 1.0 - base, base)
    return edited, base, [f"caption {i}" for i in range(n)]


def test_paired_difference_ci_is_scipy_bca_of_the_mean_difference():
    edited, base, captions = _accuracy_pairs()
    ci = S.paired_difference_ci(edited, base, prompts=captions)
    ref = sps.bootstrap((edited - base,), np.mean, method="BCa", n_resamples=9999, rng=np.random.default_rng(0))
    assert (ci.low, ci.high) == (float(ref.confidence_interval.low), float(ref.confidence_interval.high))
    assert (ci.method, ci.n_resamples, ci.seed, ci.n_clusters) == ("bca", 9999, 0, None)
    assert ci.describe() == "95% BCa bootstrap CI (9999 resamples, seed 0)"


def test_repeated_prompts_resample_prompts():
    edited, base, _ = _accuracy_pairs(30)
    prompts = [f"p{i // 3}" for i in range(30)]
    ci = S.paired_difference_ci(edited, base, prompts=prompts, n_resamples=999)
    ref = S.cluster_bootstrap_ci(edited - base, prompts, method="bca", n_resamples=999, seed=0)
    assert (ci.low, ci.high, ci.n_clusters) == (ref.low, ref.high, 10)
    assert "prompt-clustered over 10 prompts" in ci.describe()


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_demo_and_effect_tables_give_one_interval_for_one_set_of_pairs(seed):
    edited, base, captions = _accuracy_pairs(seed=seed)
    line = accuracy_line(edited, base, captions)
    low, high = (float(v) for v in re.search(r"\[([-+][\d.]+), ([-+][\d.]+)\] over 24 pairs", line).groups())
    ctx = Context(xr.Dataset(), AnalysisConfig())  # interp analyze's defaults
    effect = effect_from_values(ctx, "score_organism", "A1", "baseline", edited, base, np.array(captions, dtype=object))
    assert (low, high) == (round(effect.low, 3) + 0.0, round(effect.high, 3) + 0.0)
    assert line.endswith("95% BCa bootstrap CI (9999 resamples, seed 0)")
    assert "95% BCa bootstrap CI of the mean difference" in stats_note(ctx)
