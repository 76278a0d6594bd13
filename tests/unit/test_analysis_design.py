"""Condition descriptions: families, references, equal-budget controls, eta series, design files."""

import json

import numpy as np
import pytest
import xarray as xr

from interp.analysis.design import Design, EditInfo
from interp.analysis.errors import StoreLacks
from tests.fixtures.analysis_store import SynthCondition, default_conditions, edit


def store_of(conds: list[SynthCondition], attrs: bool = True) -> xr.Dataset:
    """A store-shaped dataset with one sample per condition and, optionally, the sweep attribute."""
    entries = [
        {"name": c.name, "plan": list(c.edits), "sampler": {"steps": 4, **c.sampler}, "seed_offset": c.seed_offset}
        for c in conds
    ]
    ds = xr.Dataset(coords={"condition": ("sample", np.array([c.name for c in conds]))})
    if attrs:
        ds.attrs["sweep_conditions"] = json.dumps(entries)
    return ds


def test_families_and_references_of_the_default_design():
    d = Design.from_store(store_of(default_conditions()))
    fam = {i.name: i.family for i in d.infos}
    assert fam["baseline"] == "plain" and fam["seed_plus1"] == "plain" and fam["baseline_g2"] == "plain"
    assert fam["noop_kernel"] == "noop"
    assert fam["sink_k1"] == "sink" and fam["sink_union"] == "sink" and fam["sink_multi"] == "sink"
    assert fam["random_k1"] == "random" and fam["random_mass_k1"] == "random" and fam["bottom_k1"] == "bottomk"
    assert fam["values_lerp"] == "value"
    # the reference is the plan-free condition with the same sampler settings and seed offset
    assert d.reference("sink_k1") == "baseline"
    assert d.reference("sink_k1_g2") == "baseline_g2"
    assert d.noop() == "noop_kernel" and d.noop("baseline_g2") is None
    assert sorted(d.plain_variations()) == ["baseline_g2", "seed_plus1"]


def test_equal_budget_controls_differ_only_in_how_keys_are_chosen():
    d = Design.from_store(store_of(default_conditions()))
    assert sorted(d.controls("sink_k1")) == sorted(
        ["random_k1", "random_modality_k1", "random_token_class_k1", "random_mass_k1", "bottom_k1"]
    )
    assert d.controls("sink_k5") == ["random_k5"]
    # a different sampler is a different budget, and so is another eta or another layer
    assert "random_k1" not in d.controls("sink_k1_g2")
    assert d.controls("sink_k1_eta0.5") == []
    assert d.controls("sink_multi") == []


def test_differs_only_in_finds_the_eta_series():
    d = Design.from_store(store_of(default_conditions()))
    base = d.info("sink_k1")
    same = [i.name for i in d.infos if i.edits and base.differs_only_in(i, "eta")]
    assert sorted(same) == sorted(["sink_k1", "sink_k1_eta0.25", "sink_k1_eta0.5", "sink_k1_eta0.75"])
    assert not base.differs_only_in(d.info("sink_k1_g2"), "eta")  # other sampler


def test_edit_properties():
    e = EditInfo.from_plan_item(edit(k=3, eta=0.5, layers=[0.25, 0.75], phase=(0.0, 0.5), modality="text"))
    assert (e.k, e.eta, e.layer_list, e.window, e.key_modality) == (3, 0.5, (0.25, 0.75), ("phase", (0.0, 0.5)), "text")
    fixed = EditInfo.from_plan_item({"selector": {"kind": "keys", "keys": ["clip_bos", "t5_eos"]}})
    assert fixed.key_modality == "text"
    img = EditInfo.from_plan_item({"selector": {"kind": "keys", "keys": ["image:0,0"]}})
    assert img.key_modality == "image"
    assert "top-3 text" in e.describe() and "phase [0, 0.5]" in e.describe()


def test_real_edit_plans_parse(tmp_path):
    """The parser reads the JSON that interp's own edit presets and Plan.to_json write."""
    edits = pytest.importorskip("interp.edits")
    from interp.plan import close_plan, open_plan

    token = open_plan()
    try:
        edits.mask_topk(layer=12, k=5, eta=0.25, phase=(0.0, 0.3))
        edits.mask_random(layer=12, k=5, eta=0.25, phase=(0.0, 0.3), match="modality", seed=3)
        edits.noop_edit(layer=12)
    finally:
        plan = close_plan(token)
    items = json.loads(plan.to_json())
    infos = [EditInfo.from_plan_item(i) for i in items if i["type"] == "Edit"]
    assert [(i.selector, i.k, i.eta, i.match, i.phase) for i in infos[:2]] == [
        ("topk", 5, 0.25, None, (0.0, 0.3)),
        ("random", 5, 0.25, "modality", (0.0, 0.3)),
    ]
    assert infos[0].budget() == infos[1].budget()
    assert infos[2].is_noop and infos[2].force_kernel


def test_store_without_descriptions_and_design_file(tmp_path):
    conds = [SynthCondition("baseline"), SynthCondition("A1", (edit(k=1),))]
    d = Design.from_store(store_of(conds, attrs=False))
    assert [i.family for i in d.infos] == ["unknown", "unknown"]
    with pytest.raises(StoreLacks, match="condition description 'A1'.*--design"):
        d.require_described(["A1"], analysis="test")
    f = tmp_path / "design.json"
    f.write_text(json.dumps({"conditions": [{"name": "baseline", "plan": []}, {"name": "A1", "plan": [edit(k=1)]}]}))
    d2 = Design.from_store(store_of(conds, attrs=False), design_file=str(f))
    assert d2.info("A1").family == "sink" and d2.reference("A1") == "baseline"
    t = tmp_path / "design.toml"
    t.write_text(
        '[[conditions]]\nname = "baseline"\n[[conditions]]\nname = "A1"\n'
        'edits = [{selector = {kind = "random", k = 2}}]\n'
    )
    d3 = Design.from_store(store_of(conds, attrs=False), design_file=str(t))
    assert d3.info("A1").family == "random" and d3.info("A1").k == 2


def test_reference_without_matching_plain_condition_names_it():
    conds = [SynthCondition("baseline"), SynthCondition("sink_g2", (edit(),), sampler={"guidance_scale": 2.0})]
    d = Design.from_store(store_of(conds))
    with pytest.raises(StoreLacks, match="unedited condition with the sampler settings of 'sink_g2'"):
        d.reference("sink_g2")
