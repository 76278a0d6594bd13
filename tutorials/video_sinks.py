"""Attention sinks in a video DiT: where the mass goes, frame by frame, on the built-in Wan pipeline.

Run from anywhere: ``python tutorials/video_sinks.py`` (seconds on CPU, no download). It writes
``tutorial_out/video.zarr`` under the current folder. Shown in docs/video.md.
"""

import shutil
from pathlib import Path

import numpy as np

import interp
from interp import mask_keys, record, tracer
from interp.summary import key_label

STORE = Path("tutorial_out/video.zarr")
shutil.rmtree(STORE, ignore_errors=True)

# 1. tiny("wan") is the real WanPipeline (UMT5, WanTransformer3DModel, AutoencoderKLWan) from small
#    configs; interp.pipelines.load("Wan-AI/Wan2.1-T2V-1.3B-Diffusers") loads the real one for the same code.
pipe = interp.pipelines.tiny("wan")
kwargs = interp.pipelines.tiny_call_kwargs("wan")  # 9 frames of 64 x 64 px -> 3 latent frames of 4 x 4 tokens

# 2. Record every block's self-attention (attn1: video keys) and cross-attention (attn2: UMT5 keys).
with tracer.trace(pipe, "a photo of a cat", seed=0, store=STORE, **kwargs) as t:
    record("mass", "mass_full", "entropy", layers="all", top=4)
video = t.output.frames[0]  # the generated video, one entry per frame
store = interp.open_store(STORE)
ds = store.isel(sample=0)

# 3. Video keys carry their latent frame: the incoming mass of the last self-attention, per frame.
site = "blocks.1.attn1"
keys = ds.sel(layout="video", branch="cond")
mass = ds.mass_per_key.sel(site=site, branch="cond", call=0).isel(step=-1).mean("head").values
frames = keys.key_image_frame.values
for f in np.unique(frames[frames >= 0]):
    print(f"{site}, last step: frame {f} receives {mass[frames == f].sum():.3f} of the incoming mass")
top = int(ds.topk_keys.sel(site=site, branch="cond", call=0).isel(step=-1, head=0, rank=0))
print("its top key (head 0):", key_label(store, 0, "video", "cond", top))

# 4. The cross-attention's sink among the text keys, by identity: suppress UMT5's </s> everywhere.
with tracer.trace(pipe, "a photo of a cat", seed=0, **kwargs) as edited:
    mask_keys(keys=["t5_eos"], layers="cross", name="no_eos")
after = edited.stats.edit_mass_after.isel(edit=0).values
print(f"</s> mass after the edit: {np.nanmax(after):.2e} (removed exactly)")
assert np.nanmax(after) < 1e-6
