"""The model organism is traced like SD3: bit-identical observation, its own token layout, A1 edits."""

import numpy as np
import pytest
import torch

from interp import mask_topk, record, tracer

KW = dict(num_inference_steps=4, output_type="pt")


@pytest.fixture(scope="module")
def pipe():
    from interp.organism import load_organism

    return load_organism()


def test_observation_bit_identical_and_layout(pipe):
    caption = "a photo of two red circles"
    plain = pipe(caption, generator=torch.Generator("cpu").manual_seed(3), **KW).images
    with tracer.trace(pipe, caption, seed=3, **KW) as t:
        record("mass", "entropy", layers="all")
    assert torch.equal(t.output.images, plain)
    cond = t.stats.sel(layout="joint", branch="cond")
    n_img = int((cond.key_modality == "image").sum())
    expect = pipe.token_layout(caption)
    toks = [str(x) for x in cond.key_token_str.values[n_img:]]
    assert toks == [e["token"] for e in expect]
    kinds = [
        "bos" if b else "eos" if e else "padding" if p else "content"
        for b, e, p in zip(
            cond.key_is_bos.values[n_img:], cond.key_is_eos.values[n_img:], cond.key_is_pad.values[n_img:], strict=True
        )
    ]
    assert kinds == [e["kind"] for e in expect]
    assert np.isfinite(t.stats.max_mass.values).all()


def test_a1_edit_changes_the_image_and_removes_the_mass(pipe):
    caption = "a photo of a blue square"
    plain = pipe(caption, generator=torch.Generator("cpu").manual_seed(1), **KW).images
    with tracer.trace(pipe, caption, seed=1, **KW) as t:
        mask_topk(layer=0.5, k=1)
    assert not torch.equal(t.output.images, plain)
    after = t.stats.edit_mass_after.values
    assert (after[np.isfinite(after)] == 0).all() and np.isfinite(t.stats.edit_mass_before.values).any()
