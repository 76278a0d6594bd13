"""The step clock on the loops people run (issue 16): extra denoiser calls per step (SD3 skip-layer
guidance, Flux true CFG), a second-order scheduler (Heun), img2img with ``strength`` (the loop starts
part-way into the schedule) and a scheduler swapped by the user.

The reference is an independent forward pre-hook on the denoiser that logs every call's timestep in
the order the loop makes them, and ``scheduler.step`` counted by the test itself; a trace must label
call ``c`` of step ``s`` exactly as that log says, and observation must keep the output bit-identical.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    FlowMatchHeunDiscreteScheduler,
    StableDiffusion3Img2ImgPipeline,
)

import interp
from interp import mask_topk, record, tracer
from interp.clock import ClockError

PROMPT = "a photo of a red bench"


def call_log(pipe, **kw) -> tuple[torch.Tensor, list[tuple[int, float]]]:
    """Plain run: output and (scheduler steps completed before the call, timestep) of every denoiser call."""
    log: list[tuple[int, float]] = []
    steps = [0]
    scheduler = pipe.scheduler
    original = scheduler.step

    def step(*a, **k):
        steps[0] += 1
        return original(*a, **k)

    def pre(module, args, kwargs):
        log.append((steps[0], float(kwargs["timestep"].reshape(-1)[0])))

    scheduler.step = step
    handle = pipe.transformer.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        out = pipe(prompt=PROMPT, generator=torch.Generator("cpu").manual_seed(0), **kw).images
    finally:
        handle.remove()
        del scheduler.step
    return out, log


def expected_labels(log, start: int = 0) -> dict[tuple[int, int], float]:
    labels: dict[tuple[int, int], float] = {}
    calls: dict[int, int] = {}
    for done, t in log:
        s = start + done
        c = calls[s] = calls.get(s, -1) + 1
        labels[(s, c)] = t
    return labels


def traced(pipe, plan=None, **kw):
    with tracer.trace(pipe, PROMPT, seed=0, **kw) as t:
        (plan or (lambda: record("mass", "entropy", layers="all")))()
    return t


@pytest.fixture(scope="module")
def sd3():
    return interp.pipelines.tiny("sd3")


SD3_KW = dict(interp.pipelines.tiny_call_kwargs("sd3"), output_type="latent")
SLG = dict(skip_guidance_layers=[1], skip_layer_guidance_start=0.0, skip_layer_guidance_stop=1.0)


def test_skip_layer_guidance_calls_are_calls_of_their_step(sd3):
    kw = dict(SD3_KW, **SLG)
    ref, log = call_log(sd3, **kw)
    t = traced(sd3, **kw)
    assert torch.equal(t.output.images, ref)
    n = kw["num_inference_steps"]
    assert t.clock.received == expected_labels(log)
    # diffusers runs the skip-layer call where step > n * start (strictly): steps 1..n-1
    assert sorted(t.clock.received) == [(0, 0)] + [(s, c) for s in range(1, n) for c in (0, 1)]
    assert t.stats.call.values.tolist() == [0, 1]
    # call 1 is the skip-layer call: cond rows only, block 1 skipped (no record there), block 2 observed
    c1 = t.stats.isel(call=1, step=slice(1, None))
    assert np.isnan(c1.sel(branch="uncond").max_mass.values).all()
    assert np.isfinite(c1.sel(branch="cond", site="transformer_blocks.2.attn").max_mass.values).all()


def test_flux_true_cfg_extra_call_is_call_1_of_its_step():
    pipe = interp.pipelines.tiny("flux")
    kw = dict(interp.pipelines.tiny_call_kwargs("flux"), output_type="latent", true_cfg_scale=2.0)
    kw["negative_prompt"] = "blurry"
    ref, log = call_log(pipe, **kw)
    n = kw["num_inference_steps"]
    t = traced(pipe, **kw)
    assert torch.equal(t.output.images, ref)
    assert {k: v / 1000 for k, v in t.clock.received.items()} == expected_labels(log)
    assert sorted(t.clock.received) == [(s, c) for s in range(n) for c in (0, 1)]
    assert set(t.stats.branch.values.tolist()) == {"cond", "uncond"}


def test_heun_each_solver_stage_is_a_step(sd3):
    """Heun (second order): the scheduler's table repeats the inner timesteps and the loop runs 2N - 1
    iterations for N inference steps; each is a step (one scheduler.step), with its own label."""
    original = sd3.scheduler
    sd3.scheduler = FlowMatchHeunDiscreteScheduler.from_config(original.config)
    try:
        n = 3
        kw = dict(SD3_KW, num_inference_steps=n)
        ref, log = call_log(sd3, **kw)
        t = traced(sd3, lambda: (record("mass", layers="all"), mask_topk(layer=1, k=1, steps=(2, 2))), **kw)
        t_obs = traced(sd3, **kw)
        table = sd3.scheduler.timesteps.double().numpy()
    finally:
        sd3.scheduler = original
    assert torch.equal(t_obs.output.images, ref)
    assert len(log) == 2 * n - 1 == len(table)
    assert t.stats.step.values.tolist() == list(range(2 * n - 1))
    np.testing.assert_array_equal(t.stats.timestep.values, table)
    assert t.stats.timestep.values[1] == t.stats.timestep.values[2]  # corrector and predictor of one time
    assert t.clock.received == expected_labels(log)
    n_keys = t.stats.edit_n_keys.isel(edit=0, call=0).sel(site="transformer_blocks.1.attn").values
    assert (n_keys[2] == 1).all() and (np.delete(n_keys, 2, axis=0) == -1).all()


def test_img2img_with_strength_starts_part_way_into_the_schedule(sd3):
    pipe = StableDiffusion3Img2ImgPipeline.from_pipe(sd3)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    n = 4
    kw = dict(SD3_KW, num_inference_steps=n, image=image, strength=0.5)
    ref, log = call_log(pipe, **kw)
    start = n - len(log)
    assert start == 2
    t = traced(pipe, lambda: (record("mass", layers="all"), mask_topk(layer=1, k=1, steps=(3, 3))), **kw)
    obs = traced(pipe, **kw)
    assert torch.equal(obs.output.images, ref)
    assert obs.clock.received == expected_labels(log, start)
    np.testing.assert_array_equal(obs.stats.timestep.values[start:], pipe.scheduler.timesteps[start:].double().numpy())
    mm = obs.stats.max_mass.isel(call=0).values
    assert np.isnan(mm[:start]).all() and np.isfinite(mm[start:]).all()  # steps the loop skipped: no data
    n_keys = t.stats.edit_n_keys.isel(edit=0, call=0).sel(site="transformer_blocks.1.attn").values
    assert (n_keys[3] == 1).all() and (n_keys[:3] == -1).all()


def test_a_scheduler_swapped_between_traces_is_followed(sd3):
    original = sd3.scheduler
    try:
        for shift in (1.0, 6.0):
            sd3.scheduler = FlowMatchEulerDiscreteScheduler.from_config(original.config, shift=shift)
            ref, log = call_log(sd3, **SD3_KW)
            t = traced(sd3, **SD3_KW)
            assert torch.equal(t.output.images, ref)
            assert t.clock.received == expected_labels(log)
            np.testing.assert_array_equal(t.stats.timestep.values, sd3.scheduler.timesteps.double().numpy())
    finally:
        sd3.scheduler = original


def test_a_scheduler_swapped_during_the_loop_is_refused(sd3):
    original = sd3.scheduler

    def swap(p, i, t, tensors):
        if i == 1:
            p.scheduler = FlowMatchEulerDiscreteScheduler.from_config(original.config)
        return tensors

    try:
        with pytest.raises(ClockError, match="replaced during the trace"):
            traced(sd3, callback_on_step_end=swap, **SD3_KW)
    finally:
        sd3.scheduler = original
