"""The image families of issue 19 end to end: Chroma, SANA, Flux.2 [klein], Qwen-Image, and the generic
adapter on AuraFlow and Lumina 2.

Every check compares against something the adapters do not compute: the plain pipeline's images (fp32
and bf16), the q, k and mask of each attention call captured by an independent interceptor in a plain
run, brute-force softmax statistics over the materialised matrix, the pipelines' own tokenizers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp
from interp import record, tracer
from interp.adapters import adapter_for
from interp.adapters.generic import GenericAdapter
from interp.adapters.sana import SanaAdapter, linear_qk
from interp.edits import presets
from interp.plan import PlanError
from tests.integration.test_trace_architectures import Capture, hook_state, softmax_double

FAMILIES = ("chroma", "sana", "flux2", "flux2-klein", "qwenimage", "auraflow", "lumina2")
PROMPT = "a photo of a red bench"
# How each pipeline runs CFG, read from its source (not from the adapter): one [uncond, cond] batch, or
# two calls per step, the positive prompt first.
BATCHED = {"sana", "auraflow"}
DISTILLED = {"flux2"}  # guidance-distilled: one call per step, no uncond branch
STATS = ("mass", "mass_full", "entropy", "mass_topk", "query_topk")


@pytest.fixture(scope="module")
def pipes():
    cache = {}

    def get(name, dtype=torch.float32):
        if (name, dtype) not in cache:
            cache[(name, dtype)] = interp.pipelines.tiny(name, dtype=dtype)
        return cache[(name, dtype)]

    return get


def call_kwargs(name, **extra):
    return {**interp.pipelines.tiny_call_kwargs(name), **extra}


def plain(pipe, **kw):
    out = pipe(prompt=PROMPT, output_type="pt", generator=torch.Generator("cpu").manual_seed(0), **kw)
    return out.images


def traced(pipe, plan, **kw):
    with tracer.trace(pipe, PROMPT, seed=0, output_type="pt", **kw) as t:
        plan()
    return t


def processors_of(den):
    """Every attention processor object by module path (Lumina 2's transformer has no ``attn_processors``)."""
    return {n: m.processor for n, m in den.named_modules() if hasattr(m, "processor")}


def assert_clean(pipe, before, processors):
    den = adapter_for(pipe).denoiser(pipe)
    assert hook_state(pipe) == before
    for name, fh, fph, always, registry in hook_state(pipe):
        assert (fh, fph, always) == (0, 0, 0) and not registry, f"hook left on {name}"
    after = processors_of(den)
    assert after.keys() == processors.keys() and all(after[k] is processors[k] for k in after)
    assert torch._C._len_torch_function_stack() == 0


def two_sites(pipe):
    """The first and last softmax sites (SANA's linear sites have their own test)."""
    sites = [s for s in adapter_for(pipe).sites(pipe) if not s.linear]
    return [sites[0].path, sites[-1].path]


@pytest.mark.parametrize("name", FAMILIES)
def test_observation_is_bit_identical_and_statistics_exact(pipes, name):
    pipe = pipes(name)
    kw = call_kwargs(name)
    den = adapter_for(pipe).denoiser(pipe)
    before, processors = hook_state(pipe), processors_of(den)
    paths = two_sites(pipe)
    caps = {p: Capture(den.get_submodule(p)) for p in paths}
    try:
        want = plain(pipe, **kw)
    finally:
        for c in caps.values():
            c.remove()
    t = traced(pipe, lambda: record(*STATS, "act_norms", layers="all", queries="all", top=4, k=3), **kw)
    assert torch.equal(t.output.images, want)
    assert_clean(pipe, before, processors)
    ds = t.stats
    n_calls = 1 if name in BATCHED | DISTILLED else 2
    assert ds.sizes["call"] == n_calls and ds.sizes["step"] == kw["num_inference_steps"]
    for path in paths:
        for i, (q, k, _v, mask, scale, _out) in enumerate(caps[path].calls):
            step, call = divmod(i, n_calls)
            a = softmax_double(q, k, scale, mask)
            m = a.mean(2)
            ent = (-torch.special.xlogy(a, a).sum(-1)).mean(-1)
            top = m.sort(-1, descending=True).values
            branches = ["uncond", "cond"] if name in BATCHED else (["cond"] if call == 0 else ["uncond"])
            for bi, branch in enumerate(branches):
                g = ds.sel(site=path, branch=branch).isel(step=step, call=call).isel(head=slice(0, q.shape[1]))
                nk = k.shape[2]
                np.testing.assert_allclose(g.mass_per_key.values[:, :nk], m[bi].numpy(), rtol=1e-5, atol=1e-8)
                assert np.isnan(g.mass_per_key.values[:, nk:]).all()
                np.testing.assert_allclose(g.entropy.values, ent[bi].numpy(), rtol=1e-5, atol=1e-7)
                np.testing.assert_allclose(g.max_mass.values, top[bi, :, 0].numpy(), rtol=1e-5)
                np.testing.assert_allclose(g.mass_topk.values, top[bi, :, :3].sum(-1).numpy(), rtol=1e-5)


@pytest.mark.parametrize("name", FAMILIES)
def test_bf16_traces_bit_identically(pipes, name):
    pipe = pipes(name, torch.bfloat16)
    kw = call_kwargs(name)
    want = plain(pipe, **kw)
    t = traced(pipe, lambda: record("mass", "entropy", layers="all"), **kw)
    assert torch.equal(t.output.images, want)
    assert np.isfinite(t.stats.max_mass.values[~np.isnan(t.stats.max_mass.values)]).all()
    assert t.stats.attrs["denoiser_timestep_dtype"] in ("torch.bfloat16", "torch.float32", "None")


@pytest.mark.parametrize("name", ["chroma", "sana", "flux2", "flux2-klein", "qwenimage"])
def test_planned_layouts_equal_the_layouts_of_the_run(pipes, name):
    pipe = pipes(name)
    adapter = adapter_for(pipe)
    kw = call_kwargs(name)
    t = traced(pipe, lambda: record("mass", layers="all"), **kw)
    ds = t.stats
    texts = {"cond": PROMPT, "uncond": kw.get("negative_prompt", "")}
    for lay in ds.layout.values:
        for branch in ds.branch.values:
            got = ds.sel(layout=lay, branch=branch)
            if not (got.key_modality != "").any():
                continue  # a query-only layout is built for the branch of the call's rows only
            planned = adapter.planned_layout(pipe, str(lay), texts[str(branch)], kw, branch=str(branch))
            n = len(planned)
            assert int((got.key_modality != "").sum()) == n
            for field in ("modality", "encoder", "token_id", "token_str", "is_bos", "is_eos", "is_pad", "valid"):
                np.testing.assert_array_equal(got[f"key_{field}"].values[:n], getattr(planned, field), err_msg=field)
            np.testing.assert_array_equal(got.key_image_row.values[:n], planned.image_row)
            np.testing.assert_array_equal(got.key_image_col.values[:n], planned.image_col)


def _text(ds, layout, branch):
    g = ds.sel(layout=layout, branch=branch)
    return g.key_token_str.values[g.key_modality.values == "text"]


def test_text_keys_are_the_tokens_each_encoder_was_fed(pipes):
    """Token strings per encoder, read back from the pipelines' own tokenizers and templates."""
    kw = {}  # 2 steps: the Qwen-Image scheduler (shift_terminal) gives NaN sigmas for 1 step
    chroma = traced(pipes("chroma"), lambda: record("mass", layers=0), **call_kwargs("chroma", **kw)).stats
    toks = list(_text(chroma, "joint", "cond"))
    assert toks[:7] == ["\u2581a", "\u2581photo", "\u2581of", "\u2581a", "\u2581red", "\u2581bench", "</s>"]
    assert chroma.sel(layout="joint", branch="cond").key_is_eos.values[6]
    klein = traced(pipes("flux2-klein"), lambda: record("mass", layers=0), **call_kwargs("flux2-klein", **kw)).stats
    toks = list(_text(klein, "joint", "cond"))
    assert toks[:9] == [
        "<|im_start|>",
        "user",
        "\u010a",
        "a",
        "\u0120photo",
        "\u0120of",
        "\u0120a",
        "\u0120red",
        "\u0120bench",
    ]
    assert toks[9] == "<|im_end|>" and klein.sel(layout="joint", branch="cond").key_is_eos.values[9]
    dev = traced(pipes("flux2"), lambda: record("mass", layers=0), **call_kwargs("flux2", **kw)).stats
    lay = dev.sel(layout="joint", branch="cond")
    toks = list(_text(dev, "joint", "cond"))
    start = toks.index("[INST]")
    assert toks[0] == "<s>" and lay.key_is_bos.values[0] and toks[1] == "[SYSTEM_PROMPT]"
    assert toks[start + 1 : start + 8] == [
        "a",
        "\u0120photo",
        "\u0120of",
        "\u0120a",
        "\u0120red",
        "\u0120bench",
        "[/INST]",
    ]
    assert lay.key_is_eos.values[start + 7] and lay.key_is_pad.values[start + 8]
    qwen = traced(pipes("qwenimage"), lambda: record("mass", layers=0), **call_kwargs("qwenimage", **kw)).stats
    toks = list(_text(qwen, "joint", "cond"))  # the 34 template tokens dropped: the prompt comes first
    assert toks == [
        "a",
        "\u0120photo",
        "\u0120of",
        "\u0120a",
        "\u0120red",
        "\u0120bench",
        "<|im_end|>",
        "\u010a",
        "<|im_start|>",
        "assistant",
        "\u010a",
    ]
    sana = traced(pipes("sana"), lambda: record("mass", layers=0), **call_kwargs("sana", **kw)).stats
    cond = sana.sel(layout="gemma", branch="cond")
    toks = list(cond.key_token_str.values)
    assert toks[0] == "<bos>" and cond.key_is_bos.values[0]
    assert "\u2581photo" in toks and "\u2581bench" in toks  # the prompt after the instruction's cut
    assert cond.key_is_pad.values.any() and not cond.key_valid.values[cond.key_is_pad.values].any()
    # padded keys get no mass (the -10000 bias underflows in fp32)
    mass = sana.sel(branch="cond").mass_per_key if "mass_per_key" in sana else None
    assert mass is None or np.nanmax(mass.values[..., cond.key_is_pad.values]) == 0


@pytest.mark.parametrize("name", ["chroma", "sana", "qwenimage", "auraflow"])
def test_every_edit_preset_runs_and_acts_on_what_it_names(pipes, name):
    pipe = pipes(name)
    kw = call_kwargs(name, negative_prompt="blurry photo") if name != "chroma" else call_kwargs(name)
    site = two_sites(pipe)[0]
    base = traced(pipe, lambda: record("mass_full", layers=[site]), **kw)

    def plan():
        record("mass_full", layers=[site])
        presets.mask_topk(layer=site, k=1, name="top1")
        presets.mask_bottomk(layer=site, k=1, name="bottom1")
        presets.mask_random(layer=site, k=1, name="random1")
        presets.mask_keys(keys=[0], layer=site, name="key0")

    edited = traced(pipe, plan, **kw)
    assert not torch.equal(edited.output.images, base.output.images)
    after = edited.stats.mass_per_key.sel(site=site)
    assert np.nanmax(np.abs(after.isel(key=0).values)) == 0  # the named key gets no mass at all
    before = base.stats.mass_per_key.sel(site=site)
    assert np.nanmin(before.isel(key=0).values) > 0
    noop = traced(pipe, lambda: (record("mass_full", layers=[site]), presets.noop_edit(layer=site)), **kw)
    assert torch.equal(noop.output.images, base.output.images)
    np.testing.assert_allclose(noop.stats.mass_per_key.values, base.stats.mass_per_key.values, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", FAMILIES)
def test_maps_are_the_matrix_and_the_size_guard_refuses(pipes, name):
    pipe = pipes(name)
    kw = call_kwargs(name)
    path = two_sites(pipe)[0]
    cap = Capture(adapter_for(pipe).denoiser(pipe).get_submodule(path))
    try:
        plain(pipe, **kw)
    finally:
        cap.remove()
    t = traced(pipe, lambda: record("maps", layers=[path], queries="all", heads=[0]), **kw)
    q, k, _v, mask, scale, _o = cap.calls[0]
    a = softmax_double(q, k, scale, mask)[:, :1]
    got = t.stats.attn_map.sel(site=path).isel(step=0, call=0)
    b = 0 if name in BATCHED else 0
    branch = "uncond" if name in BATCHED else "cond"
    vals = got.sel(branch=branch).values[0]
    np.testing.assert_allclose(vals[: q.shape[2], : k.shape[2]], a[b, 0].numpy(), rtol=1e-5, atol=1e-8)
    with pytest.raises(PlanError, match="MiB"):
        traced(pipe, lambda: record("maps", layers="all", max_mb=0.01), **kw)


def test_generic_adapter_labels_and_says_so(pipes):
    for name, joint_site in (("auraflow", "joint_transformer_blocks.0.attn"), ("lumina2", "layers.0.attn")):
        pipe = pipes(name)
        adapter = adapter_for(pipe)
        assert isinstance(adapter, GenericAdapter)
        with pytest.warns(UserWarning, match="generic adapter"):
            t = traced(pipe, lambda: record("mass", layers="all"), **call_kwargs(name))
        ds = t.stats
        lay = ds.sel(layout=joint_site, branch="cond")
        mod = lay.key_modality.values
        mod = mod[mod != ""]
        n_text = int((mod == "text").sum())
        assert n_text > 0 and (mod[:n_text] == "text").all() and (mod[n_text:] == "image").all()
        assert set(lay.key_encoder.values[: len(mod)]) == {"context", "latent"}
    # AuraFlow: 8 register tokens + 32 T5 tokens before the 256 latent tokens
    lay = pipes("auraflow")
    ds = traced(lay, lambda: record("mass", layers=0), **call_kwargs("auraflow")).stats
    mod = ds.sel(layout="joint_transformer_blocks.0.attn", branch="cond").key_modality.values
    assert int((mod == "text").sum()) == 8 + 32 and int((mod == "image").sum()) == 256


def test_generic_adapter_matches_an_unlisted_pipeline_class(pipes):
    pipe = pipes("auraflow")

    class RenamedPipeline:  # not a listed class, but its transformer uses a known processor
        transformer = pipe.transformer

    assert GenericAdapter.matches(RenamedPipeline())
    assert not GenericAdapter.matches(object())


@pytest.mark.parametrize("name", FAMILIES)
def test_save_pretrained_then_load(pipes, name, tmp_path):
    pipe = pipes(name)
    pipe.save_pretrained(tmp_path / name)
    loaded = interp.pipelines.load(tmp_path / name)
    assert type(loaded) is type(pipe) and type(adapter_for(loaded)) is type(adapter_for(pipe))
    kw = call_kwargs(name)
    for attr in ("default_sample_size",):
        if hasattr(pipe, attr):
            setattr(loaded, attr, getattr(pipe, attr))  # an instance attribute the builders set
    loaded.set_progress_bar_config(disable=True)
    assert torch.equal(plain(loaded, **kw), plain(pipe, **kw))


SWEEP = """
version = 1
name = "families"
store = "unused.zarr"
[model]
id = "tiny:{name}"
[sampler]
steps = 2
{sampler}
[prompts]
source = "geneval"
n = 2
subset_seed = 1
[run]
progress = false
[[records]]
stats = ["mass", "entropy"]
layers = "all"
[[conditions]]
name = "baseline"
[[conditions]]
name = "top1"
[[conditions.plan]]
fn = "mask_topk"
layer = 0
k = 1
"""
SAMPLERS = {
    "chroma": "guidance_scale = 4.0\nheight = 64\nwidth = 64\nmax_sequence_length = 16",
    "sana": (
        'guidance_scale = 4.5\nheight = 32\nwidth = 32\nmax_sequence_length = 16\nnegative_prompt = "blurry photo"\n'
        "call_kwargs = { use_resolution_binning = false }"
    ),
    "flux2-klein": "guidance_scale = 4.0\nheight = 64\nwidth = 64\nmax_sequence_length = 16",
    "qwenimage": (
        'height = 64\nwidth = 64\nmax_sequence_length = 24\nnegative_prompt = "blurry photo"\n'
        "call_kwargs = { true_cfg_scale = 4.0 }"
    ),
    "auraflow": "guidance_scale = 3.5\nheight = 64\nwidth = 64\nmax_sequence_length = 16",
    "lumina2": "guidance_scale = 4.0\nheight = 128\nwidth = 128\nmax_sequence_length = 16",
}


@pytest.mark.parametrize("name", ["sana", "qwenimage", "auraflow"])
def test_a_sweep_runs_every_sample_and_condition(pipes, name, tmp_path):
    import tomllib

    from interp.sweep import parse_config, run

    cfg = parse_config(tomllib.loads(SWEEP.format(name=name, sampler=SAMPLERS[name])), base_dir=tmp_path)
    result = run(cfg, store=tmp_path / "s.zarr", pipe=pipes(name), progress=False, log=lambda s: None)
    assert result.n_samples == 4 and result.generated == 4
    ds = interp.open_store(tmp_path / "s.zarr")
    assert ds.sizes["sample"] == 4 and set(ds.condition.values) == {"baseline", "top1"}
    assert np.isfinite(ds.entropy.values[~np.isnan(ds.entropy.values)]).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_demo_runs_on_the_built_in(name, tmp_path, capsys):
    from interp.cli import main

    store = tmp_path / "demo.zarr"
    assert main(["demo", "--model", name, "--prompts", "1", "--steps", "2", "--store", str(store)]) == 0
    assert "1 samples" in capsys.readouterr().out


def test_sana_linear_sites_are_traced_exactly_and_refuse_edits(pipes):
    """The linear self-attention sites: statistics and maps over the float64 materialised matrix built from
    relu(q), relu(k) of each call's input (read by a hook of the test), bit-identical images."""
    pipe = pipes("sana")
    kw = call_kwargs("sana")
    path = SanaAdapter.linear_sites(pipe)[1]
    attn = pipe.transformer.get_submodule(path)
    inputs = []
    handle = attn.register_forward_hook(
        lambda m, a, kwa, o: inputs.append(a[0] if a else kwa["hidden_states"]), with_kwargs=True
    )
    try:
        want = plain(pipe, **kw)
    finally:
        handle.remove()

    def plan():
        record(*STATS, layers="linear", top=4, k=3)
        record("maps", layers=[path], heads=[1], queries="all")

    t = traced(pipe, plan, **kw)
    assert torch.equal(t.output.images, want)
    ds = t.stats.sel(site=path)
    assert str(ds.site_kind.values) == "linear"
    for step, x in enumerate(inputs):
        with torch.no_grad():
            q, k = linear_qk(attn, x)
        s = q.double() @ k.double().transpose(-1, -2)
        a = s / (s.sum(-1, keepdim=True) + 1e-15)
        m = a.mean(2)
        ent = (-torch.special.xlogy(a, a).sum(-1)).mean(-1)
        qtk = a.sort(-1, descending=True).values[..., :3].sum(-1).mean(-1)
        for b, branch in enumerate(["uncond", "cond"]):
            g = ds.isel(step=step, call=0).sel(branch=branch).isel(head=slice(0, q.shape[1]))
            np.testing.assert_allclose(g.mass_per_key.values[:, : k.shape[2]], m[b].numpy(), rtol=1e-5, atol=1e-9)
            np.testing.assert_allclose(g.entropy.values, ent[b].numpy(), rtol=1e-5)
            np.testing.assert_allclose(g.query_topk.values, qtk[b].numpy(), rtol=1e-5)
            got = g.attn_map.values[0, : q.shape[2], : k.shape[2]]
            np.testing.assert_allclose(got, a[b, 1].numpy(), rtol=1e-5, atol=1e-9)
    with pytest.raises(PlanError, match="linear-attention sites"):
        traced(pipe, lambda: presets.mask_topk(layer=path, k=1), **kw)


def test_demo_choices_are_the_built_ins():
    from interp.cli import DEMO_MODELS

    assert ("organism", *interp.pipelines.SUPPORTED_TINY) == DEMO_MODELS
