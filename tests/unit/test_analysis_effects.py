"""Paired effects against brute force and interp.stats / statsmodels, on a SYNTHETIC store."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from interp import stats
from interp.analysis.config import AnalysisConfig
from interp.analysis.context import Context
from interp.analysis.data import load, metric_variables
from interp.analysis.effects import adjust, effect_table, noise_floor, paired_effect
from tests.fixtures.analysis_store import synthetic_store

CFG = AnalysisConfig(n_resamples=499, fid_resamples=10)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    path = tmp_path_factory.mktemp("syn") / "syn.zarr"
    synthetic_store(path, n_prompts=8, seeds_per_prompt=2)
    return Context(load(path), CFG, tmp_path_factory.mktemp("out"))


def brute_pairs(ctx, metric, cond, ref):
    """(prompt, seed) -> value for each condition, looked up row by row."""
    ds = ctx.ds
    prompt, seed, cond_of = ds.prompt.values, ds.seed.values, ds.condition.values
    values = ds[metric].values
    vals = {}
    for i in range(ds.sizes["sample"]):
        vals[(str(prompt[i]), int(seed[i]), str(cond_of[i]))] = float(values[i])
    keys = sorted({(p, s) for p, s, c in vals if c == cond} & {(p, s) for p, s, c in vals if c == ref})
    e = np.array([vals[(p, s, cond)] for p, s in keys])
    b = np.array([vals[(p, s, ref)] for p, s in keys])
    return e, b, np.array([p for p, _ in keys], dtype=object)


def test_metric_discovery(ctx):
    assert metric_variables(ctx.ds) == ["score_clip_t", "score_imagereward", "score_hps", "lpips_vs_baseline"]
    extra = ctx.ds.assign(
        score_clipscore=2.5 * ctx.ds.score_clip_t, scored_clip_t=ctx.ds.score_clip_t > 0, score_vqa=ctx.ds.score_hps
    )
    assert metric_variables(extra) == [*metric_variables(ctx.ds)[:3], "score_vqa", "lpips_vs_baseline"]
    assert "score_clipscore" in metric_variables(extra.drop_vars("score_clip_t"))


def test_paired_effect_equals_stats_on_brute_force_pairs(ctx):
    e, b, prompts = brute_pairs(ctx, "score_clip_t", "sink_k1", "baseline")
    eff = paired_effect(ctx, "score_clip_t", "sink_k1", analysis="t")
    assert eff.n == e.size == 16 and eff.n_prompts == 8
    assert eff.estimate == pytest.approx(np.mean(e - b), abs=1e-15)
    ci = stats.paired_bootstrap_ci(e, b, clusters=prompts, **CFG.boot)  # prompts have 2 seeds: clustered
    assert (eff.low, eff.high) == pytest.approx((ci.low, ci.high), abs=1e-15)
    assert eff.pvalue == pytest.approx(stats.paired_ttest(e, b, clusters=prompts).pvalue, rel=1e-12)
    assert eff.mean_reference == pytest.approx(b.mean()) and eff.mean_condition == pytest.approx(e.mean())


def test_distance_metric_is_tested_against_the_noop_floor(ctx):
    e, _, prompts = brute_pairs(ctx, "lpips_vs_baseline", "sink_k1", "baseline")
    f, _, _ = brute_pairs(ctx, "lpips_vs_baseline", "noop_kernel", "baseline")
    eff = paired_effect(ctx, "lpips_vs_baseline", "sink_k1", analysis="t")
    assert eff.kind == "distance" and eff.estimate == pytest.approx(e.mean())
    assert eff.pvalue == pytest.approx(stats.paired_ttest(e, f, clusters=prompts).pvalue, rel=1e-12)
    assert eff.mean_reference == pytest.approx(f.mean())


def test_noise_floor_is_the_noop_effect(ctx):
    fl = noise_floor(ctx, "score_hps", analysis="t")
    e, b, _ = brute_pairs(ctx, "score_hps", "noop_kernel", "baseline")
    assert fl.condition == "noop_kernel" and fl.estimate == pytest.approx(np.mean(e - b))


def test_adjust_matches_statsmodels():
    p = [0.01, 0.2, np.nan, 0.03, 0.5, 0.001]
    got = adjust(p, "holm")
    ok = [x for x in p if not np.isnan(x)]
    want = multipletests(ok, method="holm")[1]
    assert np.isnan(got[2]) and np.allclose([g for g in got if not np.isnan(g)], want)
    got_bh = adjust(p, "bh")
    assert np.allclose([g for g in got_bh if not np.isnan(g)], multipletests(ok, method="fdr_bh")[1])


def test_effect_table_adjusts_one_family_and_puts_the_floor_first(ctx):
    metrics = ["score_clip_t", "score_hps"]
    table, effects = effect_table(
        ctx, name="t", title="t", conditions=["sink_k1", "random_k1"], metrics=metrics, analysis="t"
    )
    assert table.rows[0]["condition"] == "noise floor: noop_kernel"
    raw = [effects[(c, m)].pvalue for c in ("sink_k1", "random_k1") for m in metrics]
    want = multipletests(raw, method="holm")[1]
    got = [r[f"{m}_p_adj"] for r in table.rows[1:] for m in metrics]
    assert np.allclose(got, want)
    md = table.to_markdown()
    assert "Δ CLIP-T (cosine) [CI]" in md and "noise floor" in md.lower()
