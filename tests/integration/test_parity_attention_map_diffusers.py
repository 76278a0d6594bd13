"""Parity with the peer: attention-map-diffusers 1.0 (a dev extra) and interp on the same built-in
pipelines, for the families both support: attention maps and incoming mass agree at every step and call.

Conventions aligned: the peer's ``image->text`` relation is interp's ``queries="image", keys="text"``
(every head: ``heads="all"``); its records come per denoiser call in order, its batch rows are the
pipeline's (``[uncond, cond]`` for batched CFG); incoming mass over the image queries is the peer's map
averaged over its query axis. SANA's linear self-attention (the peer's ``image->image`` relation on
``attn1``) is compared with ``interp.kernels.linear``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch

import interp
from interp import record, tracer
from interp.adapters.sana import SanaAdapter, linear_qk
from interp.kernels.linear import linear_attention_map, linear_mass

amd = pytest.importorskip("attention_map_diffusers")

PROMPT = "a photo of a red bench"
# family -> (site, CFG rows per call: batched [uncond, cond] or one branch per call, cond first)
FAMILIES = {
    "sd3": ("transformer_blocks.1.attn", "batched"),
    "flux": ("transformer_blocks.1.attn", "calls"),
    "chroma": ("transformer_blocks.1.attn", "calls"),
    "flux2": ("transformer_blocks.1.attn", "calls"),
    "flux2-klein": ("transformer_blocks.0.attn", "calls"),
    "sana": ("transformer_blocks.1.attn2", "batched"),
    "hunyuanvideo15": ("transformer_blocks.0.attn", "calls"),
}
# the peer names a video transformer's latent stream "video" (interp: modality "image")
RELATION = {"hunyuanvideo15": "video->text"}


def peer_records(pipe, kw, relation, layer):
    with amd.AttentionCapture(pipe, relations=relation, layers="all", timesteps="all", heads="all", mode="exact") as c:
        out = pipe(prompt=PROMPT, output_type="pt", generator=torch.Generator("cpu").manual_seed(0), **kw)
    by_step = defaultdict(list)  # (step) -> records of this layer in call order
    for r in c.compute().records:
        if r.layer_id == f"transformer.{layer}":
            by_step[r.step_index].append(r)
    return (out.images if hasattr(out, "images") else out.frames), by_step


@pytest.mark.parametrize("name", list(FAMILIES))
def test_maps_and_incoming_mass_agree_with_attention_map_diffusers(name):
    pipe = interp.pipelines.tiny(name)
    kw = interp.pipelines.tiny_call_kwargs(name) | {"num_inference_steps": 2}
    if name == "flux":
        kw |= {"true_cfg_scale": 2.0, "negative_prompt": "blurry"}
    site, cfg = FAMILIES[name]
    images, by_step = peer_records(pipe, kw, RELATION.get(name, "image->text"), site)
    with tracer.trace(pipe, PROMPT, seed=0, output_type="pt", **kw) as t:
        record("maps", layers=[site], queries="image", keys="text")
        record("mass_full", layers=[site], queries="image")
    ours_out = t.output.images if hasattr(t.output, "images") else t.output.frames
    assert torch.equal(ours_out, images)  # both observe the same generation
    ds = t.stats.sel(site=site)
    assert sorted(by_step) == list(range(ds.sizes["step"]))
    text = ds.sel(layout=str(ds.site_key_layout.values), branch="cond").key_modality.values == "text"
    for step, records in by_step.items():
        assert len(records) == ds.sizes["call"]
        for call, r in enumerate(records):
            peer = r.data.float().numpy()  # (batch, heads, image queries, text keys)
            branches = ["uncond", "cond"] if cfg == "batched" else (["cond"] if call == 0 else ["uncond"])
            for b, branch in enumerate(branches):
                ours = ds.attn_map.isel(step=step, call=call).sel(branch=branch).values
                nh, nq, nk = peer.shape[1:]
                np.testing.assert_allclose(ours[:nh, :nq, :nk], peer[b], rtol=1e-5, atol=1e-7)
                mass = ds.mass_per_key.isel(step=step, call=call).sel(branch=branch).values[:nh]
                np.testing.assert_allclose(mass[:, : len(text)][:, text], peer[b].mean(1), rtol=1e-5, atol=1e-8)


def test_sana_linear_attention_agrees_with_attention_map_diffusers():
    pipe = interp.pipelines.tiny("sana")
    kw = interp.pipelines.tiny_call_kwargs("sana") | {"num_inference_steps": 2}
    path = SanaAdapter.linear_sites(pipe)[0]
    attn = pipe.transformer.get_submodule(path)
    inputs = []
    handle = attn.register_forward_hook(
        lambda m, a, kwa, o: inputs.append(a[0] if a else kwa["hidden_states"]), with_kwargs=True
    )
    try:
        _, by_step = peer_records(pipe, kw, "image->image", path)
    finally:
        handle.remove()
    assert sorted(by_step) == [0, 1]
    for step, (r,) in sorted(by_step.items()):
        q, k = linear_qk(attn, inputs[step])
        rows = torch.arange(q.shape[2])
        ours = linear_attention_map(
            q, k, query_rows=rows, key_cols=torch.arange(k.shape[2]), heads=torch.arange(q.shape[1])
        )
        peer = r.data.float()
        torch.testing.assert_close(ours, peer, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(linear_mass(q, k, query_rows=rows), peer.mean(2), rtol=1e-4, atol=1e-8)
