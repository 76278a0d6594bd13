"""H1 analyses on a real store from the built-in SD3 pipeline, checked against brute force.

Table 1 / Figure 2, the token identity of sinks and the index-0 overlap are recomputed here by loops
over the store's arrays (token roles through ``interp.summary.key_label``, an independent reading of
the token coordinates).
"""

from collections import Counter

import numpy as np
import pytest

import interp
from interp import record, stats, tracer
from interp.analysis import h1_dynamics, sink_identity
from interp.analysis.config import AnalysisConfig
from interp.analysis.context import Context
from interp.analysis.errors import StoreLacks
from interp.summary import key_label

CFG = AnalysisConfig(n_resamples=199)
PROMPTS = (("a photo of a cat", "single_object"), ("a red car and a blue bench", "color_attr"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("h1") / "obs.zarr"
    pipe = interp.pipelines.tiny("sd3")
    kw = {**interp.pipelines.tiny_call_kwargs("sd3"), "num_inference_steps": 3}
    for i, (prompt, tag) in enumerate(PROMPTS):
        with tracer.trace(pipe, prompt, seed=i, store=path, tag=tag, **kw):
            record("mass", "entropy", "query_topk", layers="all", queries="image", top=4)
            record("act_norms", layers="all", where="pre_out", ord="inf")
    return interp.open_store(path).load()


def png_ok(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_table1_and_figure2_match_brute_force(store, tmp_path):
    res = h1_dynamics.run(Context(store, CFG, tmp_path))
    table = res.tables[0]
    assert [p.name for p in res.files] == [
        "table01_h1_dynamics.md",
        "table01_h1_dynamics.csv",
        "figure02_h1_dynamics.png",
    ]
    assert png_ok(tmp_path / "figure02_h1_dynamics.png")
    assert len(table.rows) == store.sizes["site"]
    prompts = store.prompt.values.astype(object)
    for row in table.rows:
        site = row["site"]
        for key, var in (("max_mass", "max_mass"), ("entropy", "entropy"), ("query_topk", "query_topk")):
            a = store[var].sel(site=site).transpose("sample", "step", "call", "branch", "head").values
            per = []
            for s in range(a.shape[0]):
                steps = [np.nanmean(a[s, t]) for t in range(a.shape[1]) if np.isfinite(a[s, t]).any()]
                per.append(np.mean(steps))
            assert row[key] == pytest.approx(np.mean(per), rel=1e-6), (site, key)
            ci = stats.bootstrap_ci(np.array(per), **CFG.boot)
            assert (row[f"{key}_low"], row[f"{key}_high"]) == pytest.approx((ci.low, ci.high), rel=1e-6)
        assert row["max_mass_x_uniform"] == pytest.approx(row["max_mass"] * int(store.site_keys.sel(site=site)))
    md = (tmp_path / "table01_h1_dynamics.md").read_text()
    assert "top-5 conc. (query_topk)" in md and "max \\|AV\\| L∞, image rows" in md
    assert len(prompts) == 2


def role_class(label: str) -> str:
    if label.startswith("image patch"):
        return "image"
    fam = "CLIP" if label.startswith("CLIP") else "T5" if label.startswith("T5") else label.split()[0]
    for tag, role in (("[BOS]", "BOS"), ("[EOS]", "EOS"), ("[pad]", "pad")):
        if label.endswith(tag):
            return f"{fam} {role}"
    return f"{fam} content"


def test_sink_identity_matches_key_labels(store, tmp_path):
    res = sink_identity.run(Context(store, CFG, tmp_path))
    assert png_ok(tmp_path / "figure_sink_identity.png") and (tmp_path / "sink_identity_steps.csv").exists()
    rows = {r["site"]: r for r in res.tables[0].rows}
    layout = str(store.site_key_layout.values[0])
    branches = [str(b) for b in store.branch.values]
    for site in [str(s) for s in store.site.values]:
        counts: Counter = Counter()
        arg = store.argmax_key.sel(site=site).transpose("sample", "step", "call", "branch", "head").values
        same = total = 0
        for s in range(arg.shape[0]):
            for idx in np.ndindex(arg.shape[1:]):
                k = int(arg[(s, *idx)])
                if k < 0:
                    continue
                counts[role_class(key_label(store, s, layout, branches[idx[2]], k))] += 1
            for t in range(arg.shape[1] - 1):
                a, b = arg[s, t], arg[s, t + 1]
                ok = (a >= 0) & (b >= 0)
                same += int(((a == b) & ok).sum())
                total += int(ok.sum())
        n = sum(counts.values())
        for cls, c in counts.items():
            assert rows[site][f"share {cls}"] == pytest.approx(c / n), (site, cls)
        assert rows[site]["stable_steps"] == pytest.approx(same / total)


def test_index0_overlap_separates_image_patch_0_from_clip_bos(store, tmp_path):
    res = sink_identity.run_index0(Context(store, CFG, tmp_path))
    rows = {r["site"]: r for r in res.tables[0].rows}
    mod = store.key_modality.values[0, 0, 0].astype(object)
    assert mod[0] == "image"  # SD3's joint layout: image first, so key 0 is image patch (0, 0)
    for site, row in rows.items():
        assert row["key0_is"] == "image (0,0)"
        top = store.topk_keys.sel(site=site).values
        arg = top[..., 0]
        bos_idx = {
            (s, b): int(np.flatnonzero(store.key_is_bos.values[s, 0, b])[0])
            for s in range(store.sizes["sample"])
            for b in range(store.sizes["branch"])
        }
        hits_bos = hits0 = n = 0
        for idx in np.ndindex(arg.shape):
            if arg[idx] < 0:
                continue
            s, b = idx[0], idx[3]
            n += 1
            hits0 += int(arg[idx] == 0)
            hits_bos += int(bos_idx[(s, b)] in top[idx])
        assert row["argmax_index0"] == pytest.approx(hits0 / n)
        assert row["argmax_image_0_0"] == pytest.approx(hits0 / n)
        assert row["topK_has_clip_bos"] == pytest.approx(hits_bos / n)


def test_missing_inputs_are_named(store, tmp_path):
    with pytest.raises(StoreLacks, match="variable 'query_topk'.*record"):
        h1_dynamics.run(Context(store.drop_vars("query_topk"), CFG, tmp_path))
    with pytest.raises(StoreLacks, match="condition 'unedited'"):
        h1_dynamics.run(Context(store, AnalysisConfig(baseline="unedited"), tmp_path))
    with pytest.raises(StoreLacks, match="variable .argmax_key.*record"):
        sink_identity.run(Context(store.drop_vars(["topk_keys", "argmax_key"]), CFG, tmp_path))


@pytest.fixture(scope="module")
def two_schedules(tmp_path_factory):
    """A store whose baseline ran 2 steps next to a condition that ran 4 (written first: the step axis has 4)."""
    path = tmp_path_factory.mktemp("h1_steps") / "obs.zarr"
    pipe = interp.pipelines.tiny("sd3")
    kw = interp.pipelines.tiny_call_kwargs("sd3")
    for condition, steps in (("long", 4), ("baseline", 2)):
        with tracer.trace(
            pipe, "a photo of a cat", seed=0, store=path, condition=condition, **{**kw, "num_inference_steps": steps}
        ):
            record("mass", "entropy", "query_topk", layers=[0, 1], top=4)
    return interp.open_store(path).load()


def test_outputs_state_the_steps_the_baseline_ran_and_no_padded_step(two_schedules, tmp_path, monkeypatch):
    assert two_schedules.sizes["step"] == 4
    res = h1_dynamics.run(Context(two_schedules, CFG, tmp_path))
    note = res.tables[0].notes[0]
    assert "2 steps (condition 'baseline')" in note and "4 steps" not in note
    figures = []
    save = sink_identity.style.save

    def keep(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(sink_identity.style, "save", keep)
    res = sink_identity.run(Context(two_schedules, CFG, tmp_path))
    assert "2 steps" in res.tables[0].notes[0]
    ticks = [t.get_text() for t in figures[0].axes[1].get_xticklabels()]
    assert ticks and "nan" not in " ".join(ticks), ticks
    assert ticks[-1] == "1.00"  # t/T of the baseline's last step
    steps = __import__("pandas").read_csv(tmp_path / "sink_identity_steps.csv")
    assert set(steps["step"]) == {0, 1} and np.isfinite(steps["t_over_T"]).all()
