"""Tracing the video families (Wan 2.x, CogVideoX, CogVideoX 1.5) end to end on their built-in pipelines.

Every check compares against something the adapters do not compute: the plain pipeline's frames, the
q and k of each attention call captured outside the tracer (an independent interceptor), the token ids
the pipeline fed its own text encoder, brute-force softmax statistics, and each transformer's own patch
order (a latent whose value is its frame index goes through the transformer's patch embedding).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interp
from interp import mask_keys, mask_topk, record, tracer
from interp.adapters import adapter_for
from interp.plan import PlanError
from interp.sites.intercept import SDPAInterceptor

VIDEO = ("wan", "cogvideox", "cogvideox1.5")
PROMPT = "a photo of a red bench"
STEPS = 2
# (first, last) sites of each family: Wan's self- and cross-attention, CogVideoX's first and last joint block
SITES = {
    "wan": ("blocks.0.attn1", "blocks.1.attn2"),
    "cogvideox": ("transformer_blocks.0.attn1", "transformer_blocks.1.attn1"),
    "cogvideox1.5": ("transformer_blocks.0.attn1", "transformer_blocks.1.attn1"),
}
N_TEXT = 32
# latent frames x rows x cols of the fast call's video tokens (9 frames of 64 x 64 px; 1.5 pads 3 latent
# frames to 4 and patches 2 of them together)
GRID = {"wan": (3, 4, 4), "cogvideox": (3, 4, 4), "cogvideox1.5": (2, 4, 4)}


@pytest.fixture(scope="module")
def pipes():
    cache = {}

    def get(name, dtype=torch.float32):
        if (name, dtype) not in cache:
            cache[(name, dtype)] = interp.pipelines.tiny(name, dtype=dtype)
        return cache[(name, dtype)]

    return get


def kwargs_for(name, **extra):
    return {**interp.pipelines.tiny_call_kwargs(name), "num_inference_steps": STEPS, **extra}


def plain(pipe, prompt=PROMPT, seed=0, **kw):
    return pipe(prompt, output_type="pt", generator=torch.Generator("cpu").manual_seed(seed), **kw).frames


def traced(pipe, plan_fn, prompt=PROMPT, seed=0, **kw):
    with tracer.trace(pipe, prompt, seed=seed, output_type="pt", **kw) as t:
        plan_fn()
    return t


def branches_of(name, call):
    """The CFG branch of each batch row, from each pipeline's source (not from the adapter)."""
    if name == "wan":  # WanPipeline: the positive prompt's call first, the negative second
        return ["cond"] if call == 0 else ["uncond"]
    return ["uncond", "cond"]  # CogVideoXPipeline: torch.cat([negative, positive])


class Capture:
    """q, k, scale of every attention kernel call of one module (an interceptor of its own)."""

    def __init__(self, module):
        self.calls = []
        self.handles = [
            module.register_forward_pre_hook(self.pre),
            module.register_forward_hook(self.post, always_call=True),
        ]

    def handler(self, call):
        self.calls.append((call.q.clone(), call.k.clone(), call.scale))
        return call.run_original()

    def pre(self, m, args):
        self.mode = SDPAInterceptor(self.handler)
        self.mode.__enter__()

    def post(self, m, args, output):
        self.mode.__exit__(None, None, None)

    def remove(self):
        for h in self.handles:
            h.remove()


# --- bit identity in bf16 (fp32: tests/integration/test_trace_architectures.py) -----------------------


@pytest.mark.parametrize("name", VIDEO)
def test_bf16_observation_runs_and_changes_nothing(pipes, name):
    pipe = pipes(name, torch.bfloat16)
    kw = kwargs_for(name)
    ref = plain(pipe, **kw)
    t = traced(pipe, lambda: record("mass", "entropy", "mass_topk", "query_topk", "act_norms", layers="all"), **kw)
    assert torch.equal(t.output.frames, ref)
    ent = t.stats.entropy.sel(call=0, branch="cond").values
    assert np.isfinite(ent[:, t.stats.head_valid.values]).all()


# --- statistics equal brute force --------------------------------------------------------------------


@pytest.mark.parametrize("name", VIDEO)
def test_statistics_equal_brute_force(pipes, name):
    pipe = pipes(name)
    kw = kwargs_for(name)
    den = adapter_for(pipe).denoiser(pipe)
    caps = {p: Capture(den.get_submodule(p)) for p in SITES[name]}
    try:
        plain(pipe, **kw)
    finally:
        for c in caps.values():
            c.remove()
    t = traced(pipe, lambda: record("mass", "mass_full", "entropy", layers=list(SITES[name])), **kw)
    ds = t.stats
    n_calls = 2 if name == "wan" else 1
    assert ds.sizes["call"] == n_calls and ds.sizes["step"] == STEPS
    for path, cap in caps.items():
        assert len(cap.calls) == STEPS * n_calls
        for i, (q, k, scale) in enumerate(cap.calls):
            step, call = divmod(i, n_calls)
            a = torch.softmax((q.double() @ k.double().transpose(-1, -2)) * scale, dim=-1)
            rows = np.arange(q.shape[2])
            if name.startswith("cogvideox") and path.endswith("1.attn1"):  # the last block's text rows: discarded
                rows = rows[N_TEXT:]
            aq = a[:, :, rows]
            mass, ent = aq.mean(2), (-torch.special.xlogy(aq, aq).sum(-1)).mean(-1)
            for bi, branch in enumerate(branches_of(name, call)):
                g = ds.sel(site=path, branch=branch).isel(step=step, call=call)
                nk = k.shape[2]
                np.testing.assert_allclose(g.mass_per_key.values[:, :nk], mass[bi].numpy(), rtol=1e-5, atol=1e-8)
                np.testing.assert_allclose(g.entropy.values, ent[bi].numpy(), rtol=1e-5, atol=1e-7)


# --- token layouts -----------------------------------------------------------------------------------


@torch.no_grad()
def patch_frames(pipe, name):
    """The (token) frame of every video token, as the transformer's own patch embedding orders them: the
    embedding is affine in the latent, so a latent whose every value is its token frame, minus a zero
    latent, gives each token its frame times a constant per channel."""
    tr = pipe.transformer
    f = 4 if name == "cogvideox1.5" else 3  # the latent frames the transformer sees (1.5: padded to even)
    p_t = tr.config.patch_size[0] if name == "wan" else (tr.config.patch_size_t or 1)
    idx = (torch.arange(f) // p_t).float()
    c = tr.config.in_channels
    if name == "wan":  # (B, C, F, H, W), flattened as WanTransformer3DModel.forward does
        x = idx.view(1, 1, f, 1, 1).expand(1, c, f, 8, 8)

        def embed(v):
            return tr.patch_embedding(v).flatten(2).transpose(1, 2)[0]
    else:  # (B, F, C, H, W) through CogVideoXPatchEmbed, text first
        x = idx.view(1, f, 1, 1, 1).expand(1, f, c, 8, 8)
        text = torch.zeros(1, N_TEXT, tr.config.text_embed_dim)

        def embed(v):
            return tr.patch_embed(text, v)[0, N_TEXT:]

    d = embed(x) - embed(torch.zeros_like(x))
    vals = d[:, d.abs().amax(0).argmax()]
    return (vals / vals[-1] * idx.max()).round().long().numpy()


@pytest.mark.parametrize("name", VIDEO)
def test_video_layouts_frames_rows_cols_and_text(pipes, name):
    pipe = pipes(name)
    kw = kwargs_for(name, num_inference_steps=1, negative_prompt="a dog")
    ids = []
    handle = pipe.text_encoder.register_forward_pre_hook(
        lambda m, args, kwargs: ids.append((args[0] if args else kwargs["input_ids"]).clone()), with_kwargs=True
    )
    try:
        t = traced(pipe, lambda: record("mass", layers="all"), **kw)
    finally:
        handle.remove()
    ds = t.stats
    f, r, c = GRID[name]
    adapter = adapter_for(pipe)
    texts = {"cond": PROMPT, "uncond": "a dog"}
    seen_video = 0
    for lay in ds.layout.values:
        for bi, branch in enumerate(("cond", "uncond")):
            got = ds.sel(layout=lay, branch=branch)
            planned = adapter.planned_layout(pipe, str(lay), texts[branch], kw, branch=branch)
            n = len(planned)
            assert int((got.key_modality != "").sum()) == n
            for field in ("modality", "encoder", "token_id", "token_str", "is_eos", "is_pad", "valid"):
                np.testing.assert_array_equal(got[f"key_{field}"].values[:n], getattr(planned, field), err_msg=field)
            planned_frames = planned.image_frame if planned.has_frames else np.full(n, -1)  # a text-only layout
            np.testing.assert_array_equal(got.key_image_frame.values[:n], planned_frames)
            video = got.key_modality.values[:n] == "image"
            if video.any():
                seen_video += 1
                assert video.sum() == f * r * c
                np.testing.assert_array_equal(got.key_image_frame.values[:n][video], patch_frames(pipe, name))
                rows, cols = got.key_image_row.values[:n][video], got.key_image_col.values[:n][video]
                np.testing.assert_array_equal(rows, np.tile(np.repeat(np.arange(r), c), f))
                np.testing.assert_array_equal(cols, np.tile(np.arange(c), f * r))
            assert (got.key_image_frame.values[:n][~video] == -1).all()
            if (~video).any():
                fed = ids[bi].numpy()[0]  # what the pipeline fed its text encoder (cond first, then uncond)
                np.testing.assert_array_equal(got.key_token_id.values[:n][~video], fed[:N_TEXT])
                eos = np.flatnonzero(got.key_is_eos.values[:n][~video])
                assert len(eos) == 1 and got.key_token_str.values[:n][~video][eos[0]] == "</s>"
    assert seen_video == 2  # one video layout, two branches


def test_cogvideox15_pads_latent_frames_like_the_pipeline(pipes):
    """num_frames=5 gives 2 latent frames, already even: no padding; 13 gives 4."""
    pipe = pipes("cogvideox1.5")
    adapter = adapter_for(pipe)
    for frames, want in ((5, 1), (9, 2), (13, 2)):
        lay = adapter.planned_layout(pipe, "joint", PROMPT, kwargs_for("cogvideox1.5", num_frames=frames))
        assert lay.image_frame.max() + 1 == want


# --- edits -------------------------------------------------------------------------------------------


def test_mask_keys_by_identity_on_video(pipes):
    pipe = pipes("wan")
    kw = kwargs_for("wan")
    t = traced(pipe, lambda: mask_keys(keys=["t5_eos"], layer="blocks.0.attn2", name="eos"), **kw)
    eos = int(np.flatnonzero(t.stats.sel(layout="umt5", branch="cond").key_is_eos.values)[0])
    for branch, want in (("cond", eos), ("uncond", 0)):  # the negative prompt "" is </s> alone
        keys = t.stats.edit_keys.isel(edit=0).sel(site="blocks.0.attn2", branch=branch).values[..., 0]
        assert set(np.unique(keys[keys >= 0])) == {want}
    after = t.stats.edit_mass_after.isel(edit=0).sel(site="blocks.0.attn2").values
    assert np.nanmax(after) < 1e-6 and np.isfinite(after).any()

    pipe = pipes("cogvideox")
    kw = kwargs_for("cogvideox")
    t = traced(pipe, lambda: mask_keys(keys=["image:1,2,3"], layer=0, name="patch"), **kw)
    f, r, c = GRID["cogvideox"]
    want = N_TEXT + 1 * r * c + 2 * c + 3
    keys = t.stats.edit_keys.isel(edit=0).sel(site="transformer_blocks.0.attn1").values[..., 0]
    assert set(np.unique(keys[keys >= 0])) == {want}
    with pytest.raises(PlanError, match="FRAME,ROW,COL"), tracer.trace(pipe, PROMPT, **kw):
        mask_keys(keys=["image:2,3"], layer=0)
    with pytest.raises(PlanError, match="no image patch"), tracer.trace(pipe, PROMPT, **kw):
        mask_keys(keys=["image:5,0,0"], layer=0)


@pytest.mark.parametrize("name", ["wan", "cogvideox"])
def test_every_edit_preset_on_video(pipes, name):
    from interp import mask_bottomk, mask_random, noop_edit, patch, replace_values

    pipe = pipes(name)
    kw = kwargs_for(name)
    ref = plain(pipe, **kw)
    source = traced(pipe, lambda: record("capture", layers=[1]), **kw)
    presets = {
        "topk": lambda: mask_topk(layer=1, k=1, name="e"),
        "bottomk": lambda: mask_bottomk(layer=1, k=1, name="e"),
        "random": lambda: mask_random(layer=1, k=1, match="modality", seed=3, name="e"),
        "values": lambda: replace_values(layer=1, k=1, mode="zero", name="e"),
        "noop": lambda: noop_edit(layer=1, name="e"),
        "patch": lambda: patch(source=source, layer=1, name="e"),
    }
    for preset, fn in presets.items():
        t = traced(pipe, fn, **kw)
        n = t.stats.edit_n_keys.isel(edit=0).values
        if preset in ("topk", "bottomk", "random", "values"):
            assert (n[n >= 0] == 1).all() and (n >= 0).any(), preset
            assert not torch.equal(t.output.frames, ref), preset
        if preset in ("topk", "bottomk", "random"):
            after = t.stats.edit_mass_after.isel(edit=0).values
            assert np.nanmax(after) < 1e-6, preset
        if preset in ("noop", "patch"):  # patching a run with its own values changes nothing
            torch.testing.assert_close(t.output.frames, ref, rtol=0, atol=1e-5)


# --- maps, store, analyses, sweep ---------------------------------------------------------------------


def test_video_maps_per_frame_and_size_guard(pipes, tmp_path):
    pipe = pipes("wan")
    kw = kwargs_for("wan")
    den = adapter_for(pipe).denoiser(pipe)
    cap = Capture(den.get_submodule("blocks.0.attn1"))
    try:
        plain(pipe, **kw)
    finally:
        cap.remove()
    t = traced(pipe, lambda: record("maps", layers=0, steps=[1], heads=[1]), **kw)
    ds = t.stats
    amap = ds.attn_map.sel(site="blocks.0.attn1", branch="cond").isel(step=1, call=0).values
    q, k, scale = cap.calls[2]  # step 1, call 0 (cond)
    want = torch.softmax((q.double() @ k.double().transpose(-1, -2)) * scale, dim=-1)[0, 1].numpy()
    np.testing.assert_allclose(amap[0], want, rtol=1e-5, atol=1e-7)
    f, r, c = GRID["wan"]
    frames = ds.sel(layout="video", branch="cond").key_image_frame.values
    per_frame = amap[0].reshape(-1, f, r, c)  # (query, frame, row, col): keys are frame-major
    for fr in range(f):
        np.testing.assert_array_equal(per_frame[:, fr].reshape(-1, r * c), amap[0][:, frames == fr])
    # the guard counts Wan's CFG as 2 calls x 2 branches (the store's layout): 1 step, 1 head, 48 x 48 video
    # keys and queries, fp32 = 36 KiB, over a 30 KiB budget (counting 1 call would find 18 KiB)
    with pytest.raises(PlanError, match="over the budget"), tracer.trace(pipe, PROMPT, **kw):
        record("maps", layers=0, steps=[1], heads=[1], max_mb=30 / 1024)
    big = kwargs_for("wan", num_frames=81, height=480, width=832)  # refused before generation
    with pytest.raises(PlanError, match="maps"), tracer.trace(pipe, PROMPT, **big):
        record("maps", layers="all", max_mb=1)


@pytest.fixture(scope="module")
def video_store(pipes, tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "obs.zarr"
    pipe = pipes("wan")
    for i, (prompt, tag) in enumerate((("a photo of a cat", "single_object"), ("a red car", "color_attr"))):
        with tracer.trace(pipe, prompt, seed=i, store=path, tag=tag, **kwargs_for("wan")):
            record("mass", "entropy", "query_topk", layers="all", top=4)
    return interp.open_store(path).load()


def test_video_store_keeps_frames_and_the_analyses_run(video_store, tmp_path):
    from interp.analysis import h1_dynamics, sink_identity
    from interp.analysis.config import AnalysisConfig
    from interp.analysis.context import Context

    ds = video_store
    assert ds.sizes["sample"] == 2 and "key_image_frame" in ds.variables
    assert ds.image.shape == (2, 64, 64, 3) and ds.image.std() > 0  # each video's first frame
    frames = ds.key_image_frame.sel(layout="video").values
    assert set(np.unique(frames[frames >= 0])) == {0, 1, 2}
    cfg = AnalysisConfig(n_resamples=99)
    res = h1_dynamics.run(Context(ds, cfg, tmp_path))
    assert len(res.tables[0].rows) == ds.sizes["site"]
    row = res.tables[0].rows[0]
    a = ds.max_mass.sel(site=row["site"]).transpose("sample", "step", "call", "branch", "head").values
    per = [np.mean([np.nanmean(a[s, st]) for st in range(a.shape[1])]) for s in range(a.shape[0])]
    assert row["max_mass"] == pytest.approx(np.mean(per), rel=1e-6)
    res = sink_identity.run(Context(ds, cfg, tmp_path))
    kc = sink_identity.key_classes(ds, analysis="test")
    assert kc.video and "UMT5 EOS" in kc.classes
    names = {kc.identity_name(int(i)) for i in np.unique(kc.identity) if i >= sink_identity.IMAGE_BASE}
    assert "image (2,3,3)" in names and len(names) == 48
    assert res.tables and res.tables[0].rows


def test_video_sweep(pipes, tmp_path):
    from interp.sweep import parse_config, run

    data = {
        "version": 1,
        "name": "video",
        "store": str(tmp_path / "sweep.zarr"),
        "model": {"id": "tiny:wan"},
        "sampler": {
            "steps": 2,
            "guidance_scale": 5.0,
            "height": 64,
            "width": 64,
            "max_sequence_length": 16,
            "call_kwargs": {"num_frames": 5},
        },
        "prompts": {"source": "geneval", "n": 2, "subset_seed": 1},
        "run": {"progress": False},
        "records": [{"stats": ["mass", "entropy"], "layers": "all"}],
        "conditions": [{"name": "baseline"}, {"name": "top1", "plan": [{"fn": "mask_topk", "layer": 0.5, "k": 1}]}],
    }
    cfg = parse_config(data, base_dir=tmp_path)
    result = run(cfg, pipe=pipes("wan"), progress=False, log=lambda s: None)
    assert result.generated == 4
    ds = interp.open_store(tmp_path / "sweep.zarr")
    assert ds.sizes["sample"] == 4 and set(ds.condition.values) == {"baseline", "top1"}
    frames = ds.key_image_frame.sel(layout="video").values
    assert set(np.unique(frames[frames >= 0])) == {0, 1}  # 5 frames -> 2 latent frames


# --- loading and the demo ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["wan", "cogvideox1.5"])
def test_save_pretrained_then_load(pipes, name, tmp_path):
    pipe = pipes(name)
    pipe.save_pretrained(tmp_path / name)
    loaded = interp.pipelines.load(tmp_path / name)
    assert type(loaded) is type(pipe)
    kw = kwargs_for(name)
    assert torch.equal(plain(loaded, **kw), plain(pipe, **kw))


def test_demo_on_a_video_model(tmp_path, capsys):
    from interp.cli import main

    store = tmp_path / "demo.zarr"
    assert main(["demo", "--model", "wan", "--prompts", "1", "--steps", "2", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "1 samples" in out and "4 sites" in out
    assert interp.open_store(store).sizes["sample"] == 1


def test_image_stores_keep_their_schema(tmp_path):
    """Only video layouts have frames: an image family's trace writes no key_image_frame coordinate."""
    pipe = interp.pipelines.tiny("sd3")
    kw = {**interp.pipelines.tiny_call_kwargs("sd3"), "num_inference_steps": 1, "height": 32, "width": 32}
    with tracer.trace(pipe, PROMPT, store=tmp_path / "img.zarr", **kw) as t:
        record("mass", layers=0)
    assert "key_image_frame" not in t.stats.variables
    assert "key_image_frame" not in interp.open_store(tmp_path / "img.zarr").variables
