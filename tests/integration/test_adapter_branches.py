"""Adapters label each CFG branch's keys from that branch's own text (SDXL's zeroed uncond included)."""

import interp
from interp import record, tracer


def test_sdxl_empty_positive_prompt_keeps_its_tokens_and_the_zeroed_uncond_is_labelled():
    pipe = interp.pipelines.tiny("sdxl")
    kw = dict(interp.pipelines.tiny_call_kwargs("sdxl"), num_inference_steps=1)
    with tracer.trace(pipe, "", seed=0, **kw) as t:
        record("mass", layers="cross")
    lay = t.stats.sel(layout="clip")
    cond = {str(e) for e in lay.sel(branch="cond").key_encoder.values if str(e)}
    uncond = {str(e) for e in lay.sel(branch="uncond").key_encoder.values if str(e)}
    assert cond == {"CLIP-L/G"}
    assert uncond == {"zeros"}
    assert bool(lay.sel(branch="cond").key_is_bos.values[0])
