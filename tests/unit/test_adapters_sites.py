"""Sites, blocks and groups of the SD3.5, SDXL, Flux and PixArt adapters, checked against the models.

The expected sites are the denoiser's own attention modules (``attn_processors``), and the expected
block order is the order in which those modules actually run in one denoiser forward.
"""

import pytest
import torch

import interp
from interp.adapters import adapter_for
from interp.plan import PlanError
from interp.sites.select import resolve_sites

ARCHS = ("sd3.5", "sdxl", "flux", "pixart")


@pytest.fixture(scope="module")
def pipes():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = interp.pipelines.tiny(name)
        return cache[name]

    return get


def execution_order(pipe, paths):
    """Module paths in the order their forwards start during one denoising step."""
    den = adapter_for(pipe).denoiser(pipe)
    order = []
    handles = [den.get_submodule(p).register_forward_pre_hook(lambda m, a, p=p: order.append(p)) for p in paths]
    try:
        kw = interp.pipelines.tiny_call_kwargs(pipe_name(pipe))
        kw.update(num_inference_steps=1, output_type="latent")
        pipe("a cat", generator=torch.Generator("cpu").manual_seed(0), **kw)
    finally:
        for h in handles:
            h.remove()
    seen = []
    for p in order:
        if p not in seen:
            seen.append(p)
    return seen


def pipe_name(pipe):
    names = {
        "StableDiffusion3Pipeline": "sd3.5",
        "StableDiffusionXLPipeline": "sdxl",
        "FluxPipeline": "flux",
        "PixArtSigmaPipeline": "pixart",
    }
    return names[type(pipe).__name__]


@pytest.mark.parametrize("arch", ARCHS)
def test_sites_are_every_attention_module_in_execution_order(pipes, arch):
    pipe = pipes(arch)
    adapter = adapter_for(pipe)
    sites = adapter.sites(pipe)
    paths = [s.path for s in sites]
    den = adapter.denoiser(pipe)
    assert sorted(paths) == sorted(k.removesuffix(".processor") for k in den.attn_processors)
    assert len(set(paths)) == len(paths)
    assert execution_order(pipe, paths) == paths
    blocks = [s.block for s in sites]
    assert blocks == sorted(blocks) and sorted(set(blocks)) == list(range(len(set(blocks))))
    primaries = [s.block for s in sites if s.primary]
    assert sorted(primaries) == sorted(set(blocks))  # exactly one primary site per block


def test_sdxl_groups_and_addresses(pipes):
    pipe = pipes("sdxl")
    adapter = adapter_for(pipe)
    sites = adapter.sites(pipe)
    groups = adapter.groups(sites)
    assert len(sites) == 22 and set(groups) == {"all", "down", "mid", "up", "self", "cross"}
    assert sorted(groups["down"] + groups["mid"] + groups["up"]) == sorted(groups["all"])
    assert sorted(groups["self"] + groups["cross"]) == sorted(groups["all"])
    assert all(p.startswith("mid_block.") for p in groups["mid"]) and len(groups["mid"]) == 4
    assert all(p.endswith("attn1") for p in groups["self"]) and all(p.endswith("attn2") for p in groups["cross"])
    by_block = {s.block: s.path for s in sites if s.primary}
    for block, path in by_block.items():
        assert [s.path for s in resolve_sites(block, sites, adapter)] == [path] and path.endswith("attn1")
    # block numbering is execution order: down (3 transformer blocks), mid (2), up (6)
    assert [s.path for s in resolve_sites([3, 4], sites, adapter)] == [
        "mid_block.attentions.0.transformer_blocks.0.attn1",
        "mid_block.attentions.0.transformer_blocks.1.attn1",
    ]
    layouts = {s.path: (s.key_layout, s.query_layout) for s in sites}
    assert layouts["down_blocks.1.attentions.0.transformer_blocks.0.attn1"] == ("image/2", "image/2")
    assert layouts["mid_block.attentions.0.transformer_blocks.0.attn2"] == ("clip", "image/4")
    assert layouts["up_blocks.1.attentions.1.transformer_blocks.0.attn1"] == ("image/2", "image/2")


def test_flux_groups_and_addresses(pipes):
    pipe = pipes("flux")
    adapter = adapter_for(pipe)
    sites = adapter.sites(pipe)
    groups = adapter.groups(sites)
    n_double = len(pipe.transformer.transformer_blocks)
    n_single = len(pipe.transformer.single_transformer_blocks)
    assert groups["double"] == [f"transformer_blocks.{i}.attn" for i in range(n_double)]
    assert groups["single"] == [f"single_transformer_blocks.{i}.attn" for i in range(n_single)]

    def one(addr):
        return [s.path for s in resolve_sites(addr, sites, adapter)]

    assert one(n_double) == ["single_transformer_blocks.0.attn"]
    assert one(0.0) == ["transformer_blocks.0.attn"] and one(1.0) == [f"single_transformer_blocks.{n_single - 1}.attn"]
    last = [s for s in sites if s.kind == "single"][-1]
    assert last.unused_query_streams == ("text",)
    assert all(not s.unused_query_streams for s in sites if s is not last)
    assert adapter.timestep_scale == 1000.0


def test_pixart_groups_and_addresses(pipes):
    pipe = pipes("pixart")
    adapter = adapter_for(pipe)
    sites = adapter.sites(pipe)
    groups = adapter.groups(sites)
    n = len(pipe.transformer.transformer_blocks)
    assert groups["self"] == [f"transformer_blocks.{i}.attn1" for i in range(n)]
    assert groups["cross"] == [f"transformer_blocks.{i}.attn2" for i in range(n)]
    assert [s.path for s in resolve_sites(2, sites, adapter)] == ["transformer_blocks.2.attn1"]
    with pytest.raises(PlanError, match=r"use a group \(all, self, cross\)"):
        resolve_sites("mid", sites, adapter)


def test_flux_extra_denoiser_calls_are_refused():
    from interp.adapters.flux import FluxAdapter

    a = FluxAdapter()
    assert a.branches(1, 0, False) == ["cond"] and a.branches(1, 1, False) == ["uncond"]
    with pytest.raises(RuntimeError, match="ran 3 times in one denoising step"):
        a.branches(1, 2, False)


def test_sdxl_downsampled_size_matches_the_convolution():
    from diffusers.models.downsampling import Downsample2D

    from interp.adapters.sdxl import downsampled

    conv = Downsample2D(1, use_conv=True, out_channels=1, padding=1)
    for n in (1, 5, 16, 17, 34, 129):
        x = torch.zeros(1, 1, n, 3)
        for factor in (2, 4, 8):
            y = x
            for _ in range(factor.bit_length() - 1):
                y = conv(y)
            assert downsampled(n, factor) == y.shape[-2]
