"""Causal edits on the built-in SD3 pipeline: scope in time, noise floor, verification, replay, errors."""

import numpy as np
import pytest
import torch

import interp
from interp import mask_keys, mask_random, mask_topk, noop_edit, record, replace_values, tracer
from interp.edits import Operation, Selector, edit
from interp.plan import PlanError

STEPS = 4
KW = dict(num_inference_steps=STEPS, output_type="pt", max_sequence_length=32)
PROMPT = "a photo of a red bench"


@pytest.fixture(scope="module")
def pipe():
    return interp.pipelines.tiny("sd3")


def latents_of(pipe, plan_fn=None, seed=0, **kw):
    lat = []

    def cb(p, i, t, tensors):
        lat.append(tensors["latents"].clone())
        return tensors

    if plan_fn is None:
        out = pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(seed), callback_on_step_end=cb, **KW, **kw)
        return out.images, lat, None
    with tracer.trace(pipe, PROMPT, seed=seed, callback_on_step_end=cb, **KW, **kw) as t:
        plan_fn()
    return t.output.images, lat, t


@pytest.mark.parametrize("slg", [False, True])
def test_edit_at_step_s_changes_latents_first_at_s(pipe, slg):
    extra = dict(skip_guidance_layers=[1], skip_layer_guidance_start=0.0, skip_layer_guidance_stop=1.0) if slg else {}
    _, ref, _ = latents_of(pipe, **extra)
    s = 2
    _, lat, t = latents_of(pipe, lambda: mask_topk(layer=0.5, k=3, steps=(s, s)), **extra)
    for i in range(s):
        assert torch.equal(lat[i], ref[i]), f"step {i} changed before the edit"
    assert not torch.equal(lat[s], ref[s])
    n_keys = t.stats.edit_n_keys.isel(edit=0).sel(site="transformer_blocks.2.attn")
    assert (n_keys.isel(step=s, call=0).values == 3).all()
    assert (n_keys.isel(step=slice(0, s)).values == -1).all()
    if slg:  # the skip-layer call of step s is edited too (block 2 runs in it)
        assert (n_keys.isel(step=s, call=1).sel(branch="cond").values == 3).all()


def test_phase_window_edits_exactly_its_steps_in_every_trace(pipe):
    for _ in range(2):  # no state carried from one trace to the next
        _, _, t = latents_of(pipe, lambda: mask_topk(layer=1, k=1, phase=(0.3, 0.7)))
        n = t.stats.edit_n_keys.isel(edit=0, call=0).sel(site="transformer_blocks.1.attn").values
        tt = t.stats.t_over_T.values
        inside = (tt >= 0.3) & (tt <= 0.7)
        assert inside.tolist() == [False, True, True, False]
        assert (n[inside] == 1).all() and (n[~inside] == -1).all()


@pytest.mark.parametrize(
    "plan_fn",
    [
        lambda: mask_topk(layer=1, k=2, eta=1.0),
        lambda: mask_topk(layer=1, k=0),
        lambda: mask_topk(layer=1, k=2, steps=(10, 20)),
        lambda: mask_topk(layer=1, k=2, branch="cond", heads=[0], steps=(0, 0), queries="text", calls=[5]),
    ],
    ids=["eta1", "empty", "steps_out_of_range", "call_out_of_scope"],
)
def test_edits_that_change_nothing_are_bit_identical(pipe, plan_fn):
    img, ref, _ = latents_of(pipe)
    img2, lat, _ = latents_of(pipe, plan_fn)
    assert all(torch.equal(a, b) for a, b in zip(lat, ref, strict=True))
    assert torch.equal(img, img2)


def test_noise_floor_edit_runs_through_the_kernel_and_records(pipe):
    _, _, t = latents_of(pipe, lambda: noop_edit(layer=1, k=1))
    e = t.stats.isel(edit=0, call=0).sel(site="transformer_blocks.1.attn")
    np.testing.assert_allclose(e.edit_mass_after.values, e.edit_mass_before.values, rtol=1e-5)
    assert (e.edit_n_keys.values == 1).all()


def test_verification_and_before_after_records(pipe):
    def plan():
        record("mass", "mass_full", "entropy", layers=[1, 2], view="both", queries="all")
        mask_topk(layer=2, k=2, by="all")

    _, _, t = latents_of(pipe, plan)
    ds = t.stats.isel(call=0)
    e = ds.isel(edit=0).sel(site="transformer_blocks.2.attn")
    assert (e.edit_mass_after.values == 0).all()  # eta = 0: exactly nothing left
    keys = e.edit_keys.values  # (step, branch, head, rank)
    before = ds.sel(site="transformer_blocks.2.attn").topk_keys_before.values[..., :2]
    assert np.array_equal(np.sort(keys, -1), np.sort(before, -1))  # online selection = the record before the edit
    mass_before = ds.sel(site="transformer_blocks.2.attn").mass_per_key_before.values
    mass_after = ds.sel(site="transformer_blocks.2.attn").mass_per_key.values
    got = np.take_along_axis(mass_before, keys, -1).sum(-1)
    np.testing.assert_allclose(e.edit_mass_before.values, got, rtol=1e-5)
    assert (np.take_along_axis(mass_after, keys, -1) == 0).all()
    np.testing.assert_allclose(mass_after.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        e.edit_entropy_after.values, ds.sel(site="transformer_blocks.2.attn").entropy.values, rtol=1e-5
    )
    other = ds.sel(site="transformer_blocks.1.attn")  # an unedited site: before == after
    np.testing.assert_array_equal(other.max_mass.values, other.max_mass_before.values)


def test_controls_reproducible_in_a_trace_and_differ_across_steps(pipe):
    def plan():
        mask_random(layer=1, k=2, seed=3, match="modality", queries="image")

    _, _, a = latents_of(pipe, plan)
    _, _, b = latents_of(pipe, plan)
    ka = a.stats.edit_keys.isel(edit=0, call=0).sel(site="transformer_blocks.1.attn").values
    kb = b.stats.edit_keys.isel(edit=0, call=0).sel(site="transformer_blocks.1.attn").values
    assert np.array_equal(ka, kb)
    assert not np.array_equal(ka[0], ka[1])
    _, _, c = latents_of(pipe, plan, seed=1)
    kc = c.stats.edit_keys.isel(edit=0, call=0).sel(site="transformer_blocks.1.attn").values
    assert not np.array_equal(ka, kc)


def test_replay_on_the_baseline_trajectory_selects_the_online_keys(pipe, tmp_path):
    store = tmp_path / "base.zarr"
    with tracer.trace(pipe, PROMPT, seed=0, store=store, **KW):
        record("mass", layers=[1], top=3)
    forced = Operation("score", eta=1.0, force_kernel=True)
    with tracer.trace(pipe, PROMPT, seed=0, **KW) as online:
        edit(Selector("topk", k=3), forced, layer=1)
    with tracer.trace(pipe, PROMPT, seed=0, **KW) as replayed:
        edit(Selector("replay", k=3, source=str(store)), forced, layer=1)
    a = online.stats.edit_keys.isel(edit=0).values
    b = replayed.stats.edit_keys.isel(edit=0).values
    assert np.array_equal(np.sort(a, -1), np.sort(b, -1))
    with pytest.raises(PlanError, match="not this trace's"), tracer.trace(pipe, "a dog", seed=0, **KW):
        mask_topk(layer=1, k=1, replay=str(store))
    with pytest.raises(PlanError, match="seed 0, not 5"), tracer.trace(pipe, PROMPT, seed=5, **KW):
        mask_topk(layer=1, k=1, replay=str(store))
    with pytest.raises(PlanError, match="fewer than k=4"), tracer.trace(pipe, PROMPT, seed=0, **KW):
        mask_topk(layer=1, k=4, replay=str(store))


def test_value_and_fixed_key_edits_run(pipe):
    def plan():
        replace_values(layer=1, k=1, mode="lerp", alpha=0.5)
        mask_keys(layer=2, keys=["clip_bos", "image:0,0"])

    img0, _, _ = latents_of(pipe)
    img, _, t = latents_of(pipe, plan)
    assert not torch.equal(img0, img)
    fixed = t.stats.edit_keys.sel(edit=1, site="transformer_blocks.2.attn").isel(step=0, call=0).values
    assert set(fixed[0, 0].tolist()) == {0, 256}


@pytest.mark.parametrize(
    "plan_fn, match",
    [
        (lambda: mask_topk(layer=1, k=400), "exceeds"),
        (lambda: mask_topk(layer=1, k=120, modality="text"), "exceeds the 109 text keys"),
        (lambda: mask_topk(layer=1, k=1, eta=2.0), "eta must be in"),
        (lambda: mask_topk(layer=1, k=1, steps=(3, 1)), "inverted"),
        (lambda: replace_values(layer=1, mode="median"), "unknown value mode"),
        (lambda: mask_topk(layer=1, k=1, heads=[9]), "has 4 heads"),
        (lambda: mask_topk(layer=77, k=1), "unknown site index"),
    ],
)
def test_bad_edits_fail_before_generation(pipe, plan_fn, match):
    calls = []
    handle = pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(PlanError, match=match), tracer.trace(pipe, PROMPT, **KW):
            plan_fn()
    finally:
        handle.remove()
    assert calls == []


def test_edit_outside_trace_raises():
    with pytest.raises(RuntimeError, match="inside `with tracer.trace"):
        mask_topk(layer=1, k=1)


@pytest.mark.parametrize("target", ["values", "output"])
def test_patching_from_the_same_run_is_bit_identical_and_from_another_prompt_is_not(pipe, target):
    from interp import patch

    img0, ref, _ = latents_of(pipe)
    with tracer.trace(pipe, PROMPT, seed=0, **KW) as source:
        record("capture", layers=[1, 2])
    assert torch.equal(source.output.images, img0)
    img, lat, _ = latents_of(pipe, lambda: patch(source=source, layer=1, target=target))
    assert torch.equal(img, img0) and all(torch.equal(a, b) for a, b in zip(lat, ref, strict=True))
    with tracer.trace(pipe, "a photo of two green dogs", seed=0, **KW) as other:
        record("capture", layers=1)
    img2, _, t = latents_of(pipe, lambda: patch(source=other, layer=1, target=target, queries="image"))
    assert not torch.equal(img2, img0)
    with pytest.raises(PlanError, match="did not capture"), tracer.trace(pipe, PROMPT, **KW):
        patch(source=other, layer=2)
