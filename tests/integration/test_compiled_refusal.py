"""Compiled denoisers are refused before generation, in every form, never traced silently wrong (issue 16).

Forms: ``module.compile()`` in place and the ``torch.compile(module)`` wrapper, each before and after its
first call; a compiled submodule (regional compilation); ``forward = torch.compile(forward)``. The
"after the first call" cases compile with ``backend="eager"`` (dynamo's graph capture, no code
generation: what decides whether hooks run is dynamo's tracing, and it keeps the test fast). The
refusal names the form, says what to do, and nothing runs: no denoiser call, no hook left behind, and
the compiled pipeline still generates what it generated before.
"""

from __future__ import annotations

import pytest
import torch

import interp
from interp import mask_topk, record, tracer
from interp.sites.compiled import CompiledDenoiserError, compiled_regions

KW = dict(num_inference_steps=2, output_type="latent", max_sequence_length=32, height=32, width=32)
PROMPT = "a photo of a red bench"


def plain(pipe):
    return pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(0), **KW).images


def hook_count(module) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in module.modules())


def compile_inplace(pipe, backend="inductor"):
    pipe.transformer.compile(backend=backend)
    return "module.compile()", ""


def compile_wrapper(pipe, backend="inductor"):
    pipe.transformer = torch.compile(pipe.transformer, backend=backend)
    return "torch.compile(module) wrapper", ""


def compile_block(pipe, backend="inductor"):
    pipe.transformer.transformer_blocks[1].compile(backend=backend)
    return "module.compile()", "transformer_blocks.1"


def compile_forward(pipe, backend="inductor"):
    pipe.transformer.forward = torch.compile(pipe.transformer.forward, backend=backend)
    return "forward = torch.compile(forward)", ""


FORMS = {"inplace": compile_inplace, "wrapper": compile_wrapper, "block": compile_block, "forward": compile_forward}


@pytest.mark.parametrize("plan", ["observe", "edit"])
@pytest.mark.parametrize("first_call", ["before", "after"])
@pytest.mark.parametrize("form", list(FORMS))
def test_compiled_denoiser_is_refused_before_generation(form, first_call, plan):
    pipe = interp.pipelines.tiny("sd3")
    how, where = FORMS[form](pipe, backend="eager")
    ref = plain(pipe) if first_call == "after" else None
    calls: list[int] = []
    handle = pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    hooks = hook_count(pipe.transformer)
    with pytest.raises(CompiledDenoiserError) as err, tracer.trace(pipe, PROMPT, seed=0, **KW):
        record("mass", "entropy", layers="all")
        if plan == "edit":
            mask_topk(layer=1, k=1)
    handle.remove()
    msg = str(err.value)
    assert f"({how})" in msg and "Nothing was generated." in msg
    assert (f"its submodule {where}" if where else "the denoiser is compiled") in msg
    assert calls == [], "the denoiser ran before the refusal"
    assert hook_count(pipe.transformer) == hooks - 1  # only the test's own hook was there, now removed
    if ref is not None:
        assert torch.equal(plain(pipe), ref)


def test_the_documented_way_out_traces_the_eager_model():
    """What the refusal tells users to do: trace the uncompiled module (kept, or ``_orig_mod``)."""
    pipe = interp.pipelines.tiny("sd3")
    ref = plain(pipe)
    eager = pipe.transformer
    pipe.transformer = torch.compile(eager, backend="eager")
    assert compiled_regions(pipe.transformer) == [("", "torch.compile(module) wrapper")]
    pipe.transformer = pipe.transformer._orig_mod
    with tracer.trace(pipe, PROMPT, seed=0, **KW) as t:
        record("mass", layers="all")
    assert torch.equal(t.output.images, ref)
    assert compiled_regions(eager) == []
