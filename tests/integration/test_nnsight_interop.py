"""Site modules and the nnsight wrapper on the built-in SD3 pipeline.

References are interp's own: q, k, v and outputs captured by interp's interception
(``SiteHooks`` with a capturing handler) in a plain run, statistics from ``tracer.trace`` with the
same plan, images from the plain pipeline. Reads through the site modules (with forward hooks, and
through nnsight when it is installed) must equal them exactly, the image must be bit-identical, and
nothing may remain on the pipeline afterwards.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp
from interp import record, replace_values, tracer
from interp.interop import SITE_ATTR, AttentionSite, site_modules
from interp.plan import PlanError
from interp.sites.intercept import BackendError, Installation, SiteHooks

PROMPT = "a photo of a red bench"
SEED = 3
STEPS = 4
LAYERS = ["transformer_blocks.1.attn", "transformer_blocks.3.attn"]  # 3 is the context-pre-only block
STATS = ("mass", "entropy", "mass_topk", "query_topk", "act_norms")
VARS = ("max_mass", "argmax_key", "topk_keys", "topk_mass", "entropy", "mass_topk", "query_topk", "act_pre_max")


@pytest.fixture
def pipe():
    return interp.pipelines.tiny("sd3")


def call_kwargs() -> dict:
    kw = interp.pipelines.tiny_call_kwargs("sd3")
    kw.update(num_inference_steps=STEPS, output_type="pt")
    return kw


def plain(pipe) -> torch.Tensor:
    return pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(SEED), **call_kwargs()).images


def captured_by_interp(pipe) -> tuple[dict[str, list[tuple]], torch.Tensor]:
    """(q, k, v, out) of every call at LAYERS, captured by interp's interception in a plain run."""
    seen: dict[str, list[tuple]] = {p: [] for p in LAYERS}

    def handler(path, call):
        out = call.run_original()
        seen[path].append(tuple(t.detach().clone() for t in (call.q, call.k, call.v, out)))
        return out

    with Installation() as inst:
        for path in LAYERS:
            inst.add_site(SiteHooks(path, pipe.transformer.get_submodule(path), lambda c, p=path: handler(p, c), None))
        images = plain(pipe)
    return seen, images


def interp_stats(pipe):
    with tracer.trace(pipe, PROMPT, seed=SEED, **call_kwargs()) as t:
        record(*STATS, layers=LAYERS, where="pre_out")
    return t.stats


def state(pipe) -> list:
    return [
        (name, tuple(m._modules), len(m._forward_hooks), len(m._forward_pre_hooks), len(m._forward_hooks_always_called))
        for name, m in pipe.transformer.named_modules()
    ]


def assert_stats_equal(got: list[dict], ds, path: str) -> None:
    assert [g["step"] for g in got] == list(range(STEPS))
    for s, values in enumerate(got):
        assert values["call"] == 0
        assert values["branches"] == ("uncond", "cond")
        for var in VARS:
            want = ds[var].isel(step=s, call=0).sel(site=path)
            for row, branch in enumerate(values["branches"]):
                ref = want.sel(branch=branch).values
                val = values[var][row].cpu().numpy()
                assert np.array_equal(val, ref, equal_nan=True), (var, s, branch)


def test_site_modules_with_forward_hooks(pipe):
    """Without nnsight: hooks on the site modules see interp's q, k, v, out and statistics, bit for bit."""
    reference, plain_images = captured_by_interp(pipe)
    ds = interp_stats(pipe)
    before = state(pipe)
    processors = dict(pipe.transformer.attn_processors)
    inputs: dict[str, list] = {p: [] for p in LAYERS}
    stats: dict[str, list] = {p: [] for p in LAYERS}
    with site_modules(pipe, LAYERS, stats=STATS, prompt=PROMPT) as sites:
        assert sites.paths == tuple(LAYERS)
        for path in LAYERS:
            module = pipe.transformer.get_submodule(path + "." + SITE_ATTR)
            assert module is sites[path] and isinstance(module, AttentionSite)
            assert sites.address(path) == f"transformer.{path}.{SITE_ATTR}"
            module.register_forward_hook(lambda m, a, o, p=path: inputs[p].append(tuple(x.clone() for x in a)))
            module.stats.register_forward_hook(lambda m, a, o, p=path: stats[p].append(o))
        images = pipe(PROMPT, generator=torch.Generator("cpu").manual_seed(SEED), **call_kwargs()).images
    assert torch.equal(images, plain_images)
    for path in LAYERS:
        assert len(inputs[path]) == len(reference[path]) == STEPS
        for got, want in zip(inputs[path], reference[path], strict=True):
            assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
        assert_stats_equal(stats[path], ds, path)
    assert state(pipe) == before
    after = pipe.transformer.attn_processors
    assert all(after[k] is processors[k] for k in processors)
    assert torch._C._len_torch_function_stack() == 0


def test_site_modules_removed_after_an_error(pipe):
    before = state(pipe)
    with pytest.raises(RuntimeError, match="boom"), site_modules(pipe, "all", stats=["mass"]):
        assert all(hasattr(pipe.transformer.get_submodule(p), SITE_ATTR) for p in LAYERS)
        raise RuntimeError("boom")
    assert state(pipe) == before
    assert torch.equal(plain(pipe), plain(pipe))


def test_site_modules_refuse_bad_input(pipe):
    with pytest.raises(PlanError, match="capture"), site_modules(pipe, [1], stats=["capture"]):
        pass
    with pytest.raises(PlanError, match="unknown site index 40"), site_modules(pipe, [40]):
        pass
    with site_modules(pipe, [1]), pytest.raises(RuntimeError, match="already"), site_modules(pipe, [1]):
        pass
    from diffusers.models.attention_processor import AttnProcessor

    pipe.transformer.transformer_blocks[2].attn.set_processor(AttnProcessor())
    with pytest.raises(BackendError, match="scaled_dot_product_attention"), site_modules(pipe, [2]):
        pass
    assert not any(SITE_ATTR in m._modules for m in pipe.transformer.modules())


# --- through nnsight ---------------------------------------------------------------------------------


def test_nnsight_reads_equal_interp(pipe):
    nnsight = pytest.importorskip("nnsight", reason="nnsight is not installed (pip install 'interp[nnsight]')")
    from interp.interop import nnsight_pipeline

    reference, plain_images = captured_by_interp(pipe)
    ds = interp_stats(pipe)
    model = nnsight_pipeline(pipe)
    before = state(pipe)
    # nnsight runs the body of its own `with` block: keep it a separate statement
    with site_modules(pipe, LAYERS, stats=STATS, prompt=PROMPT) as sites:  # noqa: SIM117
        with model.trace(PROMPT, seed=SEED, **call_kwargs()) as tr:
            qkv = nnsight.save({p: [] for p in LAYERS})
            stats = nnsight.save({p: [] for p in LAYERS})
            for _ in tr.iter[:STEPS]:
                for path in LAYERS:  # model order: the sites run in this order within a step
                    site = model.get(sites.address(path))
                    qkv[path].append(tuple(x.clone() for x in site.inputs[0]))
                    stats[path].append(site.stats.output)
            output = nnsight.save(model.output)
    assert torch.equal(output.images, plain_images)
    for path in LAYERS:
        assert len(qkv[path]) == STEPS
        for got, want in zip(qkv[path], reference[path], strict=True):
            assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
        assert_stats_equal(stats[path], ds, path)
    # the address spelled as attributes is the same module
    assert model.transformer.transformer_blocks[1].attn.interp_site.path == "model." + sites.address(LAYERS[0])
    assert state(pipe) == before
    assert torch.equal(plain(pipe), plain_images)


def test_nnsight_write_to_site_output_is_an_edit(pipe):
    """Zeroing a site's output through nnsight equals interp's value-path edit that zeroes every value."""
    nnsight = pytest.importorskip("nnsight", reason="nnsight is not installed (pip install 'interp[nnsight]')")
    from interp.interop import nnsight_pipeline

    with tracer.trace(pipe, PROMPT, seed=SEED, **call_kwargs()) as t:
        replace_values(layer=1, keys=["image", "text"], mode="zero")
    model = nnsight_pipeline(pipe)
    with site_modules(pipe, [1]):  # noqa: SIM117 (nnsight runs the body of its own `with` block)
        with model.trace(PROMPT, seed=SEED, **call_kwargs()) as tr:
            for _ in tr.iter[:STEPS]:
                site = model.transformer.transformer_blocks[1].attn.interp_site
                site.output = torch.zeros_like(site.output)
            output = nnsight.save(model.output)
    assert not torch.equal(output.images, plain(pipe))
    assert torch.equal(output.images, t.output.images)
