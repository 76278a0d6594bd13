"""The step clock at low precision and on long schedules (issue 16).

Flux casts the scheduler's timestep to the latents' dtype and divides it by 1000 there, so in bf16 /
fp16 the value the transformer receives is rounded twice, and at 100+ bf16 steps neighbouring timesteps
round to the same value. Labels must still be the loop's steps 0..n-1 (the clock counts
``scheduler.step``), and the received timestep is kept at the precision it was used. References are
independent of interp: the plain pipeline's output, and the timesteps the denoiser received captured by
a forward pre-hook of our own.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

import interp
from interp import mask_topk, record, tracer

PROMPT = "a photo of a red bench"


def received_by_denoiser(pipe, **kw) -> tuple[torch.Tensor, list[float]]:
    """The plain run's output and the timestep of every denoiser call, as the denoiser got it."""
    seen: list[float] = []

    def pre(module, args, kwargs):
        seen.append(float(kwargs["timestep"].reshape(-1)[0]))

    handle = pipe.transformer.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        out = pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(0), **kw).images
    finally:
        handle.remove()
    return out, seen


def check_timestep_received(stats, seen: list[float], dtype: torch.dtype) -> None:
    """The dataset's ``timestep_received`` is what the pre-hook saw (x1000), one call per step, and differs
    from the scheduler's ``timestep`` by the rounding of ``dtype`` (somewhere, and never by more)."""
    got = stats["timestep_received"]
    assert got.dims == ("step", "call") and got.dtype == np.float64
    assert got.attrs["received_dtype"] == str(dtype)
    assert got.sizes["call"] == 1
    np.testing.assert_array_equal(got.isel(call=0).values, np.array(seen, dtype=np.float64) * 1000)
    diff = np.abs(got.isel(call=0).values - stats.timestep.values)
    assert (diff > 0).any(), "no timestep was rounded: this check lost its point"
    eps = torch.finfo(dtype).eps
    assert (diff <= 4 * eps * (np.abs(stats.timestep.values) + 1000 * eps)).all()


@pytest.fixture(scope="module", params=[torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def flux(request):
    return interp.pipelines.tiny("flux", dtype=request.param)


def flux_kw(**extra):
    return dict(interp.pipelines.tiny_call_kwargs("flux"), output_type="latent", **extra)


def test_low_precision_flux_traces_with_the_loop_labels(flux):
    kw = flux_kw()
    ref, seen = received_by_denoiser(flux, **kw)
    n = kw["num_inference_steps"]
    with tracer.trace(flux, PROMPT, seed=0, **kw) as t:
        record("mass", "entropy", layers="all")
        mask_topk(layer=1, k=1, steps=(n - 1, n - 1))
    assert t.stats.step.values.tolist() == list(range(n))
    np.testing.assert_array_equal(t.stats.timestep.values, flux.scheduler.timesteps.double().numpy())
    # the received timestep is the denoiser's, at its precision (x1000: Flux divides by 1000), per (step, call)
    assert [t.clock.received[(s, 0)] for s in range(n)] == [v * 1000 for v in seen]
    assert t.stats.attrs["denoiser_timestep_dtype"] == str(flux.transformer.dtype)
    check_timestep_received(t.stats, seen, flux.transformer.dtype)
    n_keys = t.stats.edit_n_keys.isel(edit=0, call=0).sel(site="transformer_blocks.1.attn").values
    assert (n_keys[: n - 1] == -1).all() and (n_keys[n - 1] == 1).all()
    assert not torch.equal(t.output.images, ref)
    with tracer.trace(flux, PROMPT, seed=0, **kw) as obs:
        record("mass", "entropy", layers="all")
    assert torch.equal(obs.output.images, ref)


def test_a_120_step_bf16_schedule_has_colliding_timesteps_and_correct_labels():
    """FLUX.1-dev's 1024 px schedule (mu = max_shift = 1.15, 4096 image tokens) on the tiny model: the
    scheduler's shift is configured to what the full-size image would get."""
    pipe = interp.pipelines.tiny("flux", dtype=torch.bfloat16)
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, base_shift=1.15)
    n = 120
    kw = flux_kw(num_inference_steps=n, height=32, width=32)
    ref, seen = received_by_denoiser(pipe, **kw)
    assert len(set(seen)) < n, "the schedule no longer collides in bf16: this test lost its point"
    with tracer.trace(pipe, PROMPT, seed=0, **kw) as t:
        record("mass", layers=[0])
    assert torch.equal(t.output.images, ref)
    assert t.stats.step.values.tolist() == list(range(n))
    assert t.clock.n_calls == 1  # never a "second call" of the previous step
    assert sorted(t.clock.received) == [(s, 0) for s in range(n)]
    assert [t.clock.received[(s, 0)] for s in range(n)] == [v * 1000 for v in seen]
    assert np.isfinite(t.stats.max_mass.values).all()
    check_timestep_received(t.stats, seen, torch.bfloat16)
