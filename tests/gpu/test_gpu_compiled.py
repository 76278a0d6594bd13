"""Compiled denoisers on CUDA (issue 16): inductor's GPU code generation, bf16.

The tiny SD3 and Flux pipelines are moved to the GPU in bf16 and compiled with inductor (in place, and
regionally block by block): a trace of every statistic on all layers leaves the output bit-identical to
the compiled plain output, its statistics are the eager trace's up to the compiled numerics, and an
edit is applied. ``INTERP_GPU_TEST_DEVICE=cpu`` checks the tests' logic without a GPU.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import interp
from interp import mask_topk, record, tracer

pytestmark = pytest.mark.gpu
DEVICE = os.environ.get("INTERP_GPU_TEST_DEVICE", "cuda")
PROMPT = "a photo of a red bench"


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def kwargs(family: str) -> dict:
    return {**interp.pipelines.tiny_call_kwargs(family), "output_type": "latent"}


def trace(pipe, family: str, edit: int | None = None):
    with tracer.trace(pipe, PROMPT, seed=0, **kwargs(family)) as t:
        record("mass", "entropy", "mass_topk", layers="all")
        record("act_norms", layers="all", where="pre_out")
        if edit is not None:
            mask_topk(layer=edit, k=1)
    return t


@pytest.mark.parametrize("form", ["inplace", "blocks"])
@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_compiled_trace_on_cuda_is_bit_identical_to_compiled_plain(family, form):
    pipe = interp.pipelines.tiny(family).to(DEVICE, torch.bfloat16)
    eager = trace(pipe, family)
    if form == "inplace":
        pipe.transformer.compile()
    else:
        for block in pipe.transformer.transformer_blocks:
            block.compile()
    ref = pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(0), **kwargs(family)).images
    observed = trace(pipe, family)
    assert torch.equal(observed.output.images, ref)
    for name in ("topk_mass", "entropy"):
        np.testing.assert_allclose(observed.stats[name].values, eager.stats[name].values, rtol=5e-2, atol=5e-3)
    edited = trace(pipe, family, edit=1)
    assert not torch.equal(edited.output.images, ref)
    assert torch.equal(trace(pipe, family).output.images, ref)
