"""Observe one layer: where attention mass goes at the middle block of the built-in SD3 pipeline.

Run from anywhere: ``python tutorials/observe_a_layer.py`` (seconds on CPU, no download). It writes
``tutorial_out/observe.zarr`` under the current folder. Shown in docs/howto/observe.md.
"""

import shutil
from pathlib import Path

import numpy as np
import torch

import interp
from interp import record, tracer
from interp.summary import key_label

STORE = Path("tutorial_out/observe.zarr")
shutil.rmtree(STORE, ignore_errors=True)

# 1. A pipeline. tiny("sd3") is the real StableDiffusion3Pipeline built from small configs with random
#    weights (no download); interp.pipelines.load("stabilityai/stable-diffusion-3-medium-diffusers")
#    loads the real model the same way for the same code below.
pipe = interp.pipelines.tiny("sd3")
kwargs = interp.pipelines.tiny_call_kwargs("sd3")  # {"num_inference_steps": 4, "guidance_scale": 5.0, ...}

# 2. A trace: the body declares the plan, the pipeline runs when the block exits.
#    layers=0.5 is the middle block (block 12 of SD3-medium's 24, block 2 of this 4-block model).
with tracer.trace(pipe, "a photo of a cat", seed=0, store=STORE, **kwargs) as t:
    record("mass", "mass_full", "entropy", "query_topk", layers=0.5, queries="image", top=4, k=5)

ds = t.stats  # an xarray.Dataset of this trace (no sample axis)
site = str(ds.site.values[0])
n_keys = int(ds.site_keys.sel(site=site))
print(f"site {site}: {int(ds.site_heads.sel(site=site))} heads, {n_keys} keys; dims of max_mass: {ds.max_mass.dims}")

# 3. Read it. One denoiser call per step here (call=0); "cond" is the prompt's CFG branch.
cond = ds.sel(site=site, branch="cond").isel(call=0)
for step in ds.step.values:
    row = cond.sel(step=step)
    mm = float(row.max_mass.mean("head"))  # the paper reports the mean over heads (and branches)
    print(
        f"step {step} (t/T = {float(ds.t_over_T.sel(step=step)):.2f}, sigma = {float(ds.sigma.sel(step=step)):.3f}): "
        f"MaxMass {mm:.4f} = {mm * n_keys:5.1f} x uniform, entropy {float(row.entropy.mean('head')):.3f} nats, "
        f"top-5 per-query concentration {float(row.query_topk.mean('head')):.3f}"
    )

# Incoming mass is a distribution over keys (it sums to 1 per head), and max_mass is its maximum.
mass = ds.mass_per_key.sel(site=site)
assert np.allclose(mass.sum("key"), 1.0, atol=1e-5)
assert np.allclose(mass.max("key"), ds.max_mass.sel(site=site))

# 4. Who is the dominant key? The store labels every key (image patch with row/col, or a CLIP / T5
#    token with its string and BOS / EOS / padding flags).
store = interp.open_store(STORE)  # lazily, through dask; one sample per trace
layout = str(store.site_key_layout.sel(site=site).values)
last = store.isel(sample=0, step=-1, call=0).sel(site=site, branch="cond")
for head in range(int(store.site_heads.sel(site=site))):
    key = int(last.argmax_key.isel(head=head))
    print(f"last step, head {head}: dominant key {key} = {key_label(store, 0, layout, 'cond', key)}")

# 5. Observation never changes the image: the same seed without a trace gives the same pixels.
plain = pipe("a photo of a cat", generator=torch.Generator("cpu").manual_seed(0), **kwargs).images[0]
assert np.array_equal(np.asarray(plain), np.asarray(t.image))
print("image identical to the plain pipeline's:", True)
