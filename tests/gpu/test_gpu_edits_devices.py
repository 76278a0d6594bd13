"""Every edit preset on CUDA, offloaded pipelines and pipelines moved between devices and dtypes (issue 16).

Each edit is checked where it says it acts: the latents before its first step are bit-identical to the
plain run, its records say it selected keys in its scope (``edit_n_keys``) and nothing outside it, and a
score edit with eta = 0 leaves exactly no mass on the keys it names (``edit_mass_after``). Fixed keys
(``mask_keys``) are compared with the same trace on the CPU. The tiny SD3 pipeline is built in code and
moved to the GPU (fast). Offload (``enable_model_cpu_offload``, ``enable_sequential_cpu_offload``) and
device / dtype moves between traces keep observation bit-identical to the plain pipeline in the same
configuration. ``DEVICE`` can be overridden (``INTERP_GPU_TEST_DEVICE=cpu``) to check the tests'
logic on a machine without a GPU; the ``gpu`` marker still skips them there by default.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import interp
from interp import mask_keys, mask_random, mask_topk, patch, record, replace_values, tracer

pytestmark = pytest.mark.gpu
DEVICE = os.environ.get("INTERP_GPU_TEST_DEVICE", "cuda")
STEPS = 4
EDIT_STEP = 2
KW = dict(num_inference_steps=STEPS, output_type="latent", max_sequence_length=32, guidance_scale=5.0)
PROMPT = "a photo of a red bench"
SITE = "transformer_blocks.1.attn"
OBSERVE = ("mass", "entropy", "mass_topk", "act_norms")


@pytest.fixture(scope="module")
def pipe():
    return interp.pipelines.tiny("sd3").to(DEVICE)


def run(pipe, plan_fn=None, prompt=PROMPT, **kw):
    """(output latents, latents after each step, trace or None) of one generation."""
    lat: list[torch.Tensor] = []

    def cb(p, i, t, tensors):
        lat.append(tensors["latents"].detach().cpu().clone())
        return tensors

    args = dict(KW, callback_on_step_end=cb, **kw)
    if plan_fn is None:
        out = pipe(prompt, generator=torch.Generator("cpu").manual_seed(0), **args)
        return out.images, lat, None
    with tracer.trace(pipe, prompt, seed=0, **args) as t:
        plan_fn()
    return t.output.images, lat, t


def assert_acts_from(lat, ref, step: int) -> None:
    for i in range(step):
        assert torch.equal(lat[i], ref[i]), f"step {i} changed before the edit's first step {step}"
    assert not torch.equal(lat[-1], ref[-1]), "the edit changed nothing"


def edit_records(t, site=SITE):
    return t.stats.isel(edit=0, call=0).sel(site=site)


PRESETS = {
    "mask_keys": lambda: mask_keys(layer=1, keys=["clip_bos", "image:0,0"], steps=(EDIT_STEP, STEPS - 1)),
    "mask_random": lambda: mask_random(layer=1, k=2, seed=3, steps=(EDIT_STEP, STEPS - 1)),
    "mask_random_modality": lambda: mask_random(layer=1, k=2, seed=3, match="modality", steps=(EDIT_STEP, STEPS - 1)),
    "mask_random_token_class": lambda: mask_random(
        layer=1, k=2, seed=3, match="token_class", steps=(EDIT_STEP, STEPS - 1)
    ),
    "mask_random_mass": lambda: mask_random(layer=1, k=2, seed=3, match="mass", steps=(EDIT_STEP, STEPS - 1)),
    "replace_values_zero": lambda: replace_values(layer=1, k=1, mode="zero", steps=(EDIT_STEP, STEPS - 1)),
    "replace_values_mean": lambda: replace_values(layer=1, k=1, mode="mean", steps=(EDIT_STEP, STEPS - 1)),
    "replace_values_lerp": lambda: replace_values(layer=1, k=1, mode="lerp", alpha=0.5, steps=(EDIT_STEP, STEPS - 1)),
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_acts_exactly_in_its_scope_on_the_device(pipe, name):
    _, ref, _ = run(pipe)
    img, lat, t = run(pipe, PRESETS[name])
    assert img.device.type == torch.device(DEVICE).type
    assert_acts_from(lat, ref, EDIT_STEP)
    e = edit_records(t)
    n = e.edit_n_keys.values  # (step, branch, head)
    assert (n[:EDIT_STEP] == -1).all(), "keys recorded outside the edit's steps"
    assert (n[EDIT_STEP:] >= 1).all(), "no keys selected inside the edit's steps"
    if name.startswith("mask_"):  # score path, eta = 0: exactly no mass left on the named keys
        after = e.edit_mass_after.values[EDIT_STEP:]
        assert np.all(after[np.isfinite(after)] == 0)
    assert list(t.stats.site.values) == [SITE], "an edit on block 1 recorded another site"


def test_fixed_keys_are_the_same_keys_as_on_the_cpu(pipe):
    cpu = interp.pipelines.tiny("sd3")
    _, _, on_cpu = run(cpu, PRESETS["mask_keys"])
    _, _, on_dev = run(pipe, PRESETS["mask_keys"])
    a, b = edit_records(on_cpu).edit_keys.values, edit_records(on_dev).edit_keys.values
    assert np.array_equal(a, b)
    assert set(b[EDIT_STEP, 0, 0].tolist()) == {0, 256}  # clip BOS is the first text key after 256 image keys


def test_random_controls_are_reproducible_and_match_their_constraint(pipe):
    _, _, a = run(pipe, PRESETS["mask_random_modality"])
    _, _, b = run(pipe, PRESETS["mask_random_modality"])
    ka, kb = edit_records(a).edit_keys.values, edit_records(b).edit_keys.values
    assert np.array_equal(ka, kb)
    _, _, top = run(pipe, lambda: mask_topk(layer=1, k=2, steps=(EDIT_STEP, STEPS - 1)))
    kt = edit_records(top).edit_keys.values
    n_img = 256  # at the first edited step both runs are on the plain trajectory: the same top-k set
    assert np.array_equal((ka[EDIT_STEP] < n_img).sum(-1), (kt[EDIT_STEP] < n_img).sum(-1))


def test_replay_selects_the_online_keys_on_the_device(pipe, tmp_path):
    store = tmp_path / "base.zarr"
    with tracer.trace(pipe, PROMPT, seed=0, store=store, **KW):
        record("mass", layers=[1], top=3)
    _, ref, _ = run(pipe)
    _, lat_on, online = run(pipe, lambda: mask_topk(layer=1, k=2, steps=(EDIT_STEP, STEPS - 1)))
    _, lat_re, replayed = run(pipe, lambda: mask_topk(layer=1, k=2, replay=str(store), steps=(EDIT_STEP, STEPS - 1)))
    assert_acts_from(lat_re, ref, EDIT_STEP)
    a, b = edit_records(online).edit_keys.values, edit_records(replayed).edit_keys.values
    # at the edit's first step both trajectories are still the baseline's: the same keys
    assert np.array_equal(np.sort(a[EDIT_STEP], -1), np.sort(b[EDIT_STEP], -1))


@pytest.mark.parametrize("target", ["values", "output"])
def test_patch_from_the_same_run_is_bit_identical_and_from_another_prompt_acts(pipe, target):
    img0, ref, _ = run(pipe)
    with tracer.trace(pipe, PROMPT, seed=0, **KW) as same:
        record("capture", layers=[1])
    assert torch.equal(same.output.images, img0)
    img, lat, _ = run(pipe, lambda: patch(source=same, layer=1, target=target))
    assert torch.equal(img, img0)
    with tracer.trace(pipe, "a photo of two green dogs", seed=0, **KW) as other:
        record("capture", layers=[1])
    _, lat2, _ = run(pipe, lambda: patch(source=other, layer=1, target=target, steps=(EDIT_STEP, STEPS - 1)))
    assert_acts_from(lat2, ref, EDIT_STEP)


# --- offload and device moves ------------------------------------------------------------------------
def observed(pipe, **kw):
    with tracer.trace(pipe, PROMPT, seed=0, **dict(KW, **kw)) as t:
        record(*OBSERVE, layers="all")
    return t


@pytest.mark.parametrize("offload", ["enable_model_cpu_offload", "enable_sequential_cpu_offload"])
def test_offloaded_pipeline_observation_is_bit_identical_and_edits_apply(offload):
    if DEVICE != "cuda":
        pytest.skip("offload needs an accelerator")
    p = interp.pipelines.tiny("sd3")
    getattr(p, offload)()
    img0, ref, _ = run(p)
    t = observed(p)
    assert torch.equal(t.output.images, img0)
    assert (t.stats.max_mass.values > 0).all()
    _, lat, e = run(p, lambda: mask_topk(layer=1, k=1, steps=(EDIT_STEP, STEPS - 1)))
    assert_acts_from(lat, ref, EDIT_STEP)
    assert (edit_records(e).edit_n_keys.values[EDIT_STEP:] == 1).all()


def test_a_pipeline_moved_between_devices_and_dtypes_between_traces():
    p = interp.pipelines.tiny("sd3")
    configs = [
        ("cpu", torch.float32),
        (DEVICE, torch.float32),
        ("cpu", torch.float32),  # fp32 moves are lossless: the first trace again
        (DEVICE, torch.bfloat16),
        ("cpu", torch.bfloat16),
    ]
    stats = []
    for device, dtype in configs:
        p = p.to(device, dtype)
        img0, ref, _ = run(p)
        t = observed(p)
        assert torch.equal(t.output.images, img0), f"observation changed the output on {device} {dtype}"
        assert t.output.images.device.type == torch.device(device).type
        assert t.stats.step.values.tolist() == list(range(STEPS))
        _, lat, _ = run(p, lambda: mask_topk(layer=1, k=1, steps=(EDIT_STEP, STEPS - 1)))
        assert_acts_from(lat, ref, EDIT_STEP)
        stats.append(t.stats.max_mass.values)
    np.testing.assert_array_equal(stats[0], stats[2])  # back where it started: the same records
    np.testing.assert_allclose(stats[0], stats[1], rtol=1e-3, atol=1e-4)  # fp32 on another device
