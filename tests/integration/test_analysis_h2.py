"""Every H2 analysis on a SYNTHETIC store with the edit, sweep and metric variable names.

The store is a labelled test fixture (``tests/fixtures/analysis_store.py``: random numbers with chosen
effects), written with ``to_zarr`` and opened like a sweep store. Each analysis must write its table
(and figure); selected numbers are recomputed here by brute force; and a store that lacks an input
must be refused with a message naming it. The lead's end-to-end test on a real sweep store comes later.
"""

import numpy as np
import pytest

from interp import stats
from interp.analysis import ANALYSES, AnalysisConfig, StoreLacks, run_analyses
from interp.analysis.data import load
from interp.analysis.fid import fid
from tests.fixtures.analysis_store import SynthCondition, default_conditions, synthetic_store

CFG = AnalysisConfig(n_resamples=199, fid_resamples=20, n_qualitative=2)
H1 = {"h1_dynamics", "sink_identity", "index0_overlap"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("h2") / "synthetic.zarr"
    synthetic_store(path, n_prompts=6)
    return load(path)


@pytest.fixture(scope="module")
def outcomes(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return out, {o.analysis.name: o for o in run_analyses(store, out, cfg=CFG)}


def png_ok(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_every_h2_analysis_writes_its_tables_and_figures(outcomes):
    out, res = outcomes
    assert set(res) == {a.name for a in ANALYSES}
    for name, o in res.items():
        if name in H1:  # an edit sweep without observation records
            assert o.status == "skipped" and "lacks" in o.message, (name, o.message)
            continue
        assert o.status == "ok", (name, o.message)
        figures = [p for p in o.result.files if p.suffix == ".png"]
        wanted = sum(label.startswith("Figure") for label in o.analysis.outputs)
        assert len(figures) == wanted, name
        assert all(png_ok(p) for p in figures), name
        tables = [p for p in o.result.files if p.suffix == ".md"]
        assert len(tables) >= sum(label.startswith("Table") for label in o.analysis.outputs), name
        for t in tables:
            text = t.read_text()
            assert text.startswith("## ") and "(no rows)" not in text, t
    index = (out / "index.md").read_text()
    assert "SYNTHETIC" in index and "skipped" in index


def values(store, var, cond):
    """prompt -> value of ``var`` for ``cond`` (one seed per prompt in this fixture)."""
    sel = store.condition.values.astype(object) == cond
    return dict(zip(store.prompt.values[sel].astype(object), np.asarray(store[var].values)[sel], strict=True))


def row_of(outcome, key, value, table=0):
    return next(r for r in outcome.result.tables[table].rows if r.get(key) == value)


def test_table2_delta_is_the_mean_paired_difference(store, outcomes):
    _, res = outcomes
    s, b = values(store, "score_clip_t", "sink_k5"), values(store, "score_clip_t", "baseline")
    row = row_of(res["interventions"], "condition", "sink_k5")
    assert row["score_clip_t"] == pytest.approx(np.mean([s[p] - b[p] for p in s]))
    assert res["interventions"].result.tables[0].rows[0]["condition"] == "noise floor: noop_kernel"


def test_table7_ratio_is_mean_lpips_sink_over_random(store, outcomes):
    _, res = outcomes
    s, r = values(store, "lpips_vs_baseline", "sink_k1"), values(store, "lpips_vs_baseline", "random_k1")
    row = row_of(res["dissociation"], "sink", "sink_k1")
    keys = sorted(s)
    assert row["ratio"] == pytest.approx(np.mean([s[p] for p in keys]) / np.mean([r[p] for p in keys]))
    assert row["ratio_low"] < row["ratio"] < row["ratio_high"]


def test_table4_removed_mass_matches_bookkeeping(store, outcomes):
    _, res = outcomes
    row = row_of(res["verification"], "condition", "sink_k1_eta0.5")
    e = list(store.edit.values.astype(object)).index("sink_k1_eta0.5")
    sel = np.flatnonzero(store.condition.values.astype(object) == "sink_k1_eta0.5")
    site = list(store.site.values.astype(object)).index(row["site"])
    before = store.edit_mass_before.values[sel, e][:, :, :, site].astype(np.float64)
    after = store.edit_mass_after.values[sel, e][:, :, :, site].astype(np.float64)
    per = [np.nanmean(before[i] - after[i]) for i in range(sel.size)]
    assert row["removed"] == pytest.approx(np.mean(per), rel=1e-6)
    expected = 0.5 * before / (1 - 0.5 * before)
    assert row["after_max_deviation"] == pytest.approx(np.nanmax(np.abs(after - expected)), abs=1e-12)


def test_table11_slope_is_the_mean_per_pair_slope(store, outcomes):
    _, res = outcomes
    series = ["sink_k1_eta0.75", "sink_k1_eta0.5", "sink_k1_eta0.25", "sink_k1"]
    base = values(store, "score_hps", "baseline")
    cols = [values(store, "score_hps", c) for c in series]
    eff = np.array([[c[p] - base[p] for c in cols] for p in sorted(base)])
    slopes = stats.unit_slopes(eff, [0.25, 0.5, 0.75, 1.0], log_budget=False)
    row = next(r for r in res["dose"].result.tables[1].rows if r["metric"] == "score_hps")
    assert row["slope"] == pytest.approx(np.mean(slopes))


def test_table18_fid_and_table17_identity(store, outcomes):
    _, res = outcomes
    sel = store.condition.values.astype(object)
    prompts = store.prompt.values.astype(object)
    feats = np.asarray(store.inception_pool3.values)

    def f(cond):
        idx = {p: i for i, p in enumerate(prompts) if sel[i] == cond}
        return np.array([feats[idx[p]] for p in sorted(idx)])

    row = row_of(res["fid"], "condition", "sink_k1")
    assert row["fid"] == pytest.approx(fid(f("sink_k1"), f("baseline")), rel=1e-9)
    noop = res["noop"].result.tables[0].rows[0]
    img = np.asarray(store.image.values, dtype=int)
    a = {p: img[i] for i, p in enumerate(prompts) if sel[i] == "noop_kernel"}
    b = {p: img[i] for i, p in enumerate(prompts) if sel[i] == "baseline"}
    same = np.mean([np.array_equal(a[p], b[p]) for p in a])
    assert noop["identical_images"] == pytest.approx(same)
    assert noop["max_pixel_diff"] == max(int(np.abs(a[p] - b[p]).max()) for p in a)


def test_table14_tags_partition_the_pairs(outcomes):
    _, res = outcomes
    rows = res["tags"].result.tables[0].rows
    assert sum(r["n_pairs"] for r in rows) == 6 and len({r["tag"] for r in rows}) == 6


def test_missing_inputs_are_named(store, tmp_path):
    keep = [c for c in default_conditions() if c.name not in ("noop_kernel", "random_k1", "random_k5", "random_k10")]
    no_noop = tmp_path / "no_noop.zarr"
    synthetic_store(no_noop, n_prompts=3, conditions=keep)
    with pytest.raises(StoreLacks, match=r"noop: the store lacks condition 'a no-op edit \(noop_edit"):
        run_analyses(no_noop, tmp_path / "o1", ["table17"], CFG)
    with pytest.raises(StoreLacks, match="dissociation: the store lacks condition 'random control"):
        run_analyses(no_noop, tmp_path / "o1", ["table7"], CFG)
    with pytest.raises(StoreLacks, match="dissociation: the store lacks metric 'lpips_vs_baseline'.*interp score"):
        run_analyses(store.drop_vars("lpips_vs_baseline"), tmp_path / "o2", ["dissociation"], CFG)
    scoreless = store.drop_vars([v for v in store.data_vars if str(v).startswith(("score_", "lpips"))])
    with pytest.raises(StoreLacks, match="interventions: the store lacks metric"):
        run_analyses(scoreless, tmp_path / "o3", ["table2"], CFG)
    with pytest.raises(StoreLacks, match="verification: the store lacks edit bookkeeping variable 'edit_mass_before'"):
        run_analyses(store.drop_vars(["edit_mass_before"]), tmp_path / "o4", ["table4"], CFG)
    with pytest.raises(StoreLacks, match="fid: the store lacks Inception features"):
        run_analyses(store.drop_vars("inception_pool3"), tmp_path / "o5", ["table18"], CFG)
    plain = store.copy()
    plain.attrs = {}
    with pytest.raises(StoreLacks, match="interventions: the store lacks condition description.*--design"):
        run_analyses(plain, tmp_path / "o6", ["table2"], CFG)


def test_several_seeds_per_prompt_resample_prompts(tmp_path):
    conds = [c for c in default_conditions() if c.name in ("baseline", "noop_kernel", "sink_k1", "random_k1")]
    path = tmp_path / "seeds.zarr"
    synthetic_store(path, n_prompts=4, seeds_per_prompt=3, conditions=conds)
    ds = load(path)
    [o] = run_analyses(ds, tmp_path / "o", ["table3"], CFG)
    row = o.result.tables[0].rows[0]
    assert row["score_clip_t_n"] == 12  # 4 prompts x 3 seeds, tests on the 4 prompt means
    al_prompts = ds.prompt.values.astype(object)[ds.condition.values.astype(object) == "sink_k1"]
    assert len(set(al_prompts)) == 4
    sink, rnd, base = (values_by(ds, "score_clip_t", c) for c in ("sink_k1", "random_k1", "baseline"))
    keys = sorted(sink)
    d = np.array([(sink[k] - base[k]) - (rnd[k] - base[k]) for k in keys])
    clusters = np.array([k[0] for k in keys], dtype=object)
    want = stats.difference_of_differences(d, np.zeros_like(d), alternative="less", clusters=clusters, **CFG.boot)
    assert row["score_clip_t_did"] == pytest.approx(want.estimate)
    assert row["score_clip_t_p"] == pytest.approx(want.ttest.pvalue, rel=1e-9)


def values_by(ds, var, cond):
    sel = ds.condition.values.astype(object) == cond
    keys = zip(ds.prompt.values[sel].astype(object), ds.seed.values[sel], strict=True)
    return dict(zip(keys, np.asarray(ds[var].values)[sel], strict=True))


def test_synthetic_conditions_are_labelled(store):
    assert store.attrs["synthetic"] == "true" and "SYNTHETIC" in store.attrs["synthetic_note"]
    assert isinstance(default_conditions()[0], SynthCondition)
