"""The study of issue 23 end to end on a tiny copy of its recipe: sweep -> tables -> findings page.

The recipe's own conditions (a subset: the headline pair, the decisive control at k = 1 and 10, the
no-op), on the trained organism, 2 GenEval tags x 2 held-out captions x 1 seed, 2 steps. Checks: the
tables hold what the store holds (edited keys by word class counted directly from ``edit_keys``), the
``words=`` edits act exactly on the classes they name, the verification is measured (no-op bit-identical,
eta = 0 leaves no mass), units pair every condition with the baseline of the same caption line and
seed, the statistics are the ones the module states (against scipy on per-caption means, by hand for
TOST and Holm), and the page renders every condition from the computed results.
"""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import stats as sps

from interp.analysis import findings_cli
from interp.analysis.study_effects import Method, complete_units, holm, load_study
from interp.analysis.study_tables import reduce_store
from interp.analysis.token_identity import as_str, layout_classes, site_layouts
from interp.edits.words import CONTENT, NON_CONTENT, WORD_CLASSES
from interp.sweep import run as run_sweep

STUDY = Path(__file__).resolve().parents[2] / "traces" / "study"
sys.path.insert(0, str(STUDY))

import subset_config  # noqa: E402

CONDITIONS = [
    "noop",
    "top1",
    "random1_modality",
    "top10",
    "top10_content",
    "random10_content_modality",
    "top10_non_content",
    "random10_non_content_modality",
]
TAGS = ("color_attr", "counting")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    lines = [json.loads(x) for x in (STUDY / "heldout.jsonl").read_text().splitlines()]
    picked = [x for tag in TAGS for x in [y for y in lines if y["tag"] == tag][:2]]
    (root / "prompts.jsonl").write_text("".join(json.dumps(x) + "\n" for x in picked))
    config = subset_config.subset(seeds=1, steps=2, conditions=CONDITIONS)
    config["prompts"]["path"] = str(root / "prompts.jsonl")
    config["store"] = str(root / "study.zarr")
    run_sweep(config, progress=False, log=lambda s: None)
    reduce_store(root / "study.zarr", root / "tables.npz", block=7, progress=False)
    return root


def test_config_copy_round_trips(tmp_path):
    import tomllib

    data = subset_config.subset(per_tag=3, seeds=1, steps=4, conditions=["top1"])
    assert tomllib.loads(subset_config.dumps(data)) == data
    assert [c["name"] for c in data["conditions"]] == ["baseline", "top1"]
    with pytest.raises(SystemExit, match="unknown conditions"):
        subset_config.subset(conditions=["top2"])


def test_tables_count_what_the_store_holds(study):
    ds = xr.open_zarr(study / "study.zarr", consolidated=True)
    z = np.load(study / "tables.npz")
    assert ds.done.values.all() and z["sample"].size == ds.sizes["sample"] == 4 * (len(CONDITIONS) + 1)
    keys = np.asarray(ds.edit_keys.isel(edit=0, call=0).values)  # (sample, step, site, branch, head, rank)
    classes, lay = layout_classes(ds), site_layouts(ds)  # each site's keys in its own key layout
    for s in range(ds.sizes["sample"]):  # brute force: walk every edited key
        want = np.zeros(z["edited_classes"].shape[1:], np.int64)
        for t, site, b, h, r in zip(*np.nonzero(keys[s] >= 0), strict=True):
            want[b, site, t, classes[s, lay[site], b, keys[s, t, site, b, h, r]]] += 1
        np.testing.assert_array_equal(z["edited_classes"][s], want)
    assert (as_str(ds.condition.values) == z["condition"]).all()


def test_word_edits_act_on_the_named_classes(study):
    s = load_study([study / "tables.npz"])
    content = [WORD_CLASSES.index(c) for c in CONTENT]
    non = [WORD_CLASSES.index(c) for c in NON_CONTENT]
    for cond, allowed in (("top10_content", content), ("top10_non_content", non)):
        ed = s.edited[s.condition == cond]
        assert ed.sum() > 0
        others = [i for i in range(len(WORD_CLASSES)) if i not in allowed]
        assert ed[..., others].sum() == 0, cond
    ds = xr.open_zarr(study / "study.zarr", consolidated=True)
    keys = np.asarray(ds.edit_keys.isel(edit=0, call=0, step=0).values)  # step 0: latents still identical
    cond, unit = as_str(ds.condition.values), np.asarray(ds.prompt_index.values)
    cls, lay = layout_classes(ds), site_layouts(ds)
    for u in np.unique(unit):
        top = keys[(cond == "top10") & (unit == u)][0]
        sub = keys[(cond == "top10_content") & (unit == u)][0]
        row = np.flatnonzero((cond == "top10") & (unit == u))[0]
        of_key = cls[row][lay[:, None, None, None], np.arange(2)[None, :, None, None], np.clip(top, 0, None)]
        kept = (top >= 0) & np.isin(of_key, content)
        np.testing.assert_array_equal(np.sort(np.where(kept, top, -1), -1), np.sort(sub, -1))


def test_verification_is_measured(study):
    s = load_study([study / "tables.npz"])
    units = complete_units(s, CONDITIONS)
    base = s.image[units.rows["baseline"]]
    assert (s.image[units.rows["noop"]] == base).all()
    noop = units.rows["noop"]
    np.testing.assert_allclose(s.mass_after[noop], s.mass_before[noop], rtol=1e-5)
    top = units.rows["top1"]
    assert (s.mass_before[top] > 0).all() and (s.mass_after[top] == 0).all()
    assert np.isnan(s.mass_before[units.rows["baseline"]]).all()


def test_units_pair_the_same_caption_and_seed(study):
    s = load_study([study / "tables.npz"])
    units = complete_units(s, CONDITIONS)
    assert len(units) == 4
    for rows in units.rows.values():
        np.testing.assert_array_equal(s.seed[rows], s.seed[units.rows["baseline"]])
        np.testing.assert_array_equal(s.prompt[rows], units.prompt)
    # a unit one condition did not finish is left out of every comparison
    keep = np.ones(len(s), bool)
    keep[units.rows["top1"][0]] = False
    partial = type(s)(
        **{k: (v[keep] if isinstance(v, np.ndarray) and v.shape[:1] == (len(s),) else v) for k, v in s.__dict__.items()}
    )
    assert len(complete_units(partial, CONDITIONS)) == 3
    assert len(complete_units(partial, ["noop"])) == 4


def test_the_same_sample_twice_is_refused(study):
    with pytest.raises(ValueError, match="several table files"):
        load_study([study / "tables.npz", study / "tables.npz"])


def test_method_matches_scipy_and_hand_formulas():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(30), 2).astype(str)
    base = rng.integers(0, 2, 60).astype(float)
    edited = np.where(rng.random(60) < 0.2, 1 - base, base)
    m = Method(n_resamples=999, margin=0.1)
    e = m.difference(edited, base, clusters)
    d = (edited - base).reshape(30, 2).mean(1)  # per-caption means (clusters in order)
    assert e.estimate == pytest.approx(d.mean())
    assert e.p == pytest.approx(sps.ttest_rel(edited.reshape(30, 2).mean(1), base.reshape(30, 2).mean(1)).pvalue)
    se = d.std(ddof=1) / np.sqrt(30)
    p_tost = max(sps.t.sf((d.mean() + 0.1) / se, 29), sps.t.cdf((d.mean() - 0.1) / se, 29))
    assert e.tost_p == pytest.approx(p_tost)
    assert e.low <= e.estimate <= e.high
    adj = holm([e, m.difference(base, base, clusters), m.difference(1 - base, base, clusters)])
    assert adj[1].unchanged and np.isnan(adj[1].p_adj)
    ps = sorted([e.p, adj[2].p])
    assert sorted([adj[0].p_adj, adj[2].p_adj]) == pytest.approx([min(1, 2 * ps[0]), max(min(1, 2 * ps[0]), ps[1])])


def test_page_is_generated_from_the_results(study, tmp_path):
    out = tmp_path / "findings.md"
    findings_cli.main(
        [str(study / "tables.npz"), "--out", str(out), "--json", str(tmp_path / "f.json"), "--resamples", "199"]
    )
    page, res = out.read_text(), json.loads((tmp_path / "f.json").read_text())
    assert res["scale"]["units"] == 4 and res["scale"]["units_per_tag"] == {t: 2 for t in TAGS}
    assert ("top1", "random1_modality") in {(c["sink"], c["control"]) for c in res["contrasts"]}
    assert {c["sink"] for c in res["decisive"]} == {"top10_content", "top10_non_content"}
    for row in res["conditions"]:
        assert f"| {row['condition']} | {row['accuracy']:.3f} |" in page
    assert not re.search(r"\bnan\b", page.lower())
    for f in res["identity"]["follows_content"]:
        assert f["with_content"]["n"] + f["without_content"]["n"] == 4


def test_findings_command_reads_a_store(study, tmp_path):
    """``interp findings STORE`` reduces the store itself: the same page as from its tables."""
    from interp.cli import main

    common = ["--resamples", "99", "--no-lpips", "--label", "x"]
    assert main(["findings", str(study / "study.zarr"), "--out", str(tmp_path / "a.md"), *common]) == 0
    assert main(["findings", str(study / "tables.npz"), "--out", str(tmp_path / "b.md"), *common]) == 0
    assert (tmp_path / "a.md").read_text() == (tmp_path / "b.md").read_text()
    assert (tmp_path / "img" / "findings" / "accuracy_forest.png").is_file()
