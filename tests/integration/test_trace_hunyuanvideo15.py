"""Tracing HunyuanVideo 1.5 end to end on its built-in pipeline (issue 19).

The family the other video tests (``test_trace_video.py``) do not cover: its transformer reorders the
context per batch row (valid image, ByT5, Qwen tokens first, then each one's padding) and its boolean mask
blocks the padding positions as keys and as queries, differently in the cond and uncond calls. Every
check compares against something the adapter does not compute: the plain pipeline's frames, the q, k and
mask of each attention call captured by an independent interceptor, the token ids the pipeline fed its
own encoders, the context rows the transformer itself built (module hooks), brute-force softmax
statistics, and the transformer's own patch order.
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

NAME = "hunyuanvideo15"
PROMPT = 'a red sign that says "open"'  # a quoted text: the ByT5 encoder gets glyph tokens
NEGATIVE = "a dog"
STEPS = 2
N_VIDEO = 2 * 8 * 8  # 5 frames of 32 x 32 px: 2 latent frames of 8 x 8, patch 1
SITES = ("transformer_blocks.0.attn", "transformer_blocks.1.attn")


@pytest.fixture(scope="module")
def pipes():
    cache = {}

    def get(dtype=torch.float32):
        if dtype not in cache:
            cache[dtype] = interp.pipelines.tiny(NAME, dtype=dtype)
        return cache[dtype]

    return get


def kwargs_for(**extra):
    return {**interp.pipelines.tiny_call_kwargs(NAME), "num_inference_steps": STEPS, **extra}


def plain(pipe, prompt=PROMPT, seed=0, **kw):
    return pipe(prompt, output_type="pt", generator=torch.Generator("cpu").manual_seed(seed), **kw).frames


def traced(pipe, plan_fn, prompt=PROMPT, seed=0, **kw):
    with tracer.trace(pipe, prompt, seed=seed, output_type="pt", **kw) as t:
        plan_fn()
    return t


class Capture:
    """q, k, scale and mask of every attention kernel call of one module (an interceptor of its own)."""

    def __init__(self, module):
        self.calls = []
        self.handles = [
            module.register_forward_pre_hook(self.pre),
            module.register_forward_hook(self.post, always_call=True),
        ]

    def handler(self, call):
        self.calls.append((call.q.clone(), call.k.clone(), call.scale, call.attn_mask.clone()))
        return call.run_original()

    def pre(self, m, args):
        self.mode = SDPAInterceptor(self.handler)
        self.mode.__enter__()

    def post(self, m, args, output):
        self.mode.__exit__(None, None, None)

    def remove(self):
        for h in self.handles:
            h.remove()


def captured(pipe, paths, **kw):
    den = adapter_for(pipe).denoiser(pipe)
    caps = {p: Capture(den.get_submodule(p)) for p in paths}
    try:
        out = plain(pipe, **kw)
    finally:
        for c in caps.values():
            c.remove()
    return caps, out


def brute(q, k, scale, mask):
    """Masked softmax in float64; rows the mask blocks entirely are left out by the caller."""
    s = (q.double() @ k.double().transpose(-1, -2)) * scale
    return torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)


# --- bit identity ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_observation_changes_nothing(pipes, dtype):
    pipe = pipes(dtype)
    kw = kwargs_for(negative_prompt=NEGATIVE)
    ref = plain(pipe, **kw)
    t = traced(pipe, lambda: record("mass", "entropy", "mass_topk", "query_topk", "act_norms", layers="all"), **kw)
    assert torch.equal(t.output.frames, ref)
    for call, branch in enumerate(("cond", "uncond")):  # each call one branch; blocked rows left out: no NaN
        for var in ("entropy", "max_mass"):
            assert np.isfinite(t.stats[var].isel(call=call).sel(branch=branch).values).all(), var


# --- statistics equal brute force --------------------------------------------------------------------


def test_statistics_equal_brute_force_with_the_mask(pipes):
    pipe = pipes()
    kw = kwargs_for(negative_prompt=NEGATIVE)
    caps, _ = captured(pipe, SITES, **kw)
    t = traced(pipe, lambda: record("mass", "mass_full", "entropy", layers="all"), **kw)
    ds = t.stats
    assert ds.sizes["call"] == 2 and ds.sizes["step"] == STEPS
    for path, cap in caps.items():
        assert len(cap.calls) == 2 * STEPS
        for i, (q, k, scale, mask) in enumerate(cap.calls):
            step, call = divmod(i, 2)
            branch = "cond" if call == 0 else "uncond"  # the guider: the positive prompt's call first
            m = mask[0, 0]
            a = brute(q, k, scale, m)[0]
            rows = np.flatnonzero(m.any(-1).numpy())  # queries the mask lets attend to anything
            if path == SITES[-1]:  # the last block's context rows: discarded by the model
                rows = rows[rows < N_VIDEO]
            assert 0 < len(rows) < q.shape[2]
            aq = a[:, rows]
            mass, ent = aq.mean(1), (-torch.special.xlogy(aq, aq).sum(-1)).mean(-1)
            g = ds.sel(site=path, branch=branch).isel(step=step, call=call)
            nk = k.shape[2]
            np.testing.assert_allclose(g.mass_per_key.values[:, :nk], mass.numpy(), rtol=1e-5, atol=1e-8)
            np.testing.assert_allclose(g.entropy.values, ent.numpy(), rtol=1e-5, atol=1e-7)
            # the layout's valid flags are the mask's diagonal (blocked keys are blocked queries too)
            lay = ds.sel(layout="joint", branch=branch)
            np.testing.assert_array_equal(lay.key_valid.values[:nk], m.diagonal().numpy())


# --- token layouts -----------------------------------------------------------------------------------


@torch.no_grad()
def test_layout_is_the_transformers_own_order(pipes):
    pipe = pipes()
    tr = pipe.transformer
    kw = kwargs_for(num_inference_steps=1, negative_prompt=NEGATIVE)
    fed, fed2, refined, glyph, block_in = [], [], [], [], []
    hooks = [
        pipe.text_encoder.register_forward_pre_hook(
            lambda m, a, k: fed.append((k["input_ids"].clone(), k["attention_mask"].clone())), with_kwargs=True
        ),
        pipe.text_encoder_2.register_forward_pre_hook(
            lambda m, a, k: fed2.append(k["input_ids"].clone()), with_kwargs=True
        ),
        tr.context_embedder.register_forward_hook(lambda m, a, o: refined.append(o.clone())),
        tr.context_embedder_2.register_forward_hook(lambda m, a, o: glyph.append(o.clone())),
        tr.transformer_blocks[0].register_forward_pre_hook(lambda m, a: block_in.append(a[1].clone())),
    ]
    try:
        t = traced(pipe, lambda: record("mass", layers="all"), **kw)
    finally:
        for h in hooks:
            h.remove()
    ds = t.stats
    adapter = adapter_for(pipe)
    crop = pipe.prompt_template_encode_start_idx
    emb = tr.cond_type_embed.weight
    texts = {"cond": PROMPT, "uncond": NEGATIVE}
    for call, branch in enumerate(("cond", "uncond")):
        got = ds.sel(layout="joint", branch=branch)
        planned = adapter.planned_layout(pipe, "joint", texts[branch], kw, branch=branch)
        n = len(planned)
        assert n == got.sizes["key"] or (got.key_modality.values[n:] == "").all()
        for field in ("modality", "encoder", "token_id", "token_str", "is_eos", "is_pad", "valid", "image_frame"):
            np.testing.assert_array_equal(got[f"key_{field}"].values[:n], getattr(planned, field), err_msg=field)
        ctx = slice(N_VIDEO, n)
        enc, valid, ids = got.key_encoder.values[ctx], got.key_valid.values[ctx], got.key_token_id.values[ctx]
        # token ids: what the pipeline fed its encoders, valid ones in order (the prompt quotes a text,
        # the negative one does not: its ByT5 keys are all masked)
        qid, qmask = fed[call][0][0, crop:].numpy(), fed[call][1][0, crop:].numpy().astype(bool)
        np.testing.assert_array_equal(ids[(enc == "Qwen2.5-VL") & valid], qid[qmask])
        byt5_valid = (enc == "ByT5") & valid
        assert byt5_valid.any() == (branch == "cond")
        if branch == "cond":
            ids2 = fed2[0][0].numpy()
            np.testing.assert_array_equal(ids[byt5_valid], ids2[ids2 != pipe.tokenizer_2.pad_token_id])
        # the context rows the transformer built, position by position, from its own embedders' outputs
        rows = block_in[call][0]
        q_rows, g_rows = refined[call][0] + emb[0], glyph[call][0] + emb[1]
        want = torch.cat(
            [
                g_rows[: int(byt5_valid.sum())],
                q_rows[torch.as_tensor(qmask)],
                emb[2].expand(int((enc == "image-condition").sum()), -1),  # masked slots: zeros + type
                torch.zeros(int(((enc != "image-condition") & ~valid).sum()), rows.shape[-1]),
            ]
        )
        assert (enc[: len(want)][: int(valid.sum())] != "image-condition").all()
        torch.testing.assert_close(rows, want, rtol=0, atol=0)
    # video tokens: (frame, row, col) as the transformer's patch embedding orders them
    f, h, w = 2, 8, 8
    code = (torch.arange(f).view(f, 1, 1) * 64 + torch.arange(h).view(1, h, 1) * 8 + torch.arange(w)).float()
    x = code.expand(1, tr.config.in_channels, f, h, w)
    d = tr.x_embedder(x)[0] - tr.x_embedder(torch.zeros_like(x))[0]
    u = tr.x_embedder(torch.ones_like(x))[0] - tr.x_embedder(torch.zeros_like(x))[0]
    ch = u[0].abs().argmax()
    order = (d[:, ch] / u[:, ch]).round().long().numpy()
    got = ds.sel(layout="joint", branch="cond")
    frame, row, col = (got[f"key_image_{a}"].values[:N_VIDEO] for a in ("frame", "row", "col"))
    np.testing.assert_array_equal(frame * 64 + row * 8 + col, order)


def test_unknown_text_layout_from_the_call_masks(pipes):
    """Embeddings instead of a prompt: the layout's valid counts come from the masks the call passed."""
    pipe = pipes()
    kw = kwargs_for(num_inference_steps=1)
    del kw["negative_prompt"]
    embeds = pipe.encode_prompt(PROMPT, device="cpu")
    neg = pipe.encode_prompt("", device="cpu")
    names = ("prompt_embeds", "prompt_embeds_mask", "prompt_embeds_2", "prompt_embeds_mask_2")
    kw.update(dict(zip(names, embeds, strict=True)), **{f"negative_{n}": v for n, v in zip(names, neg, strict=True)})
    ref = pipe(prompt=None, output_type="pt", generator=torch.Generator("cpu").manual_seed(0), **kw).frames
    with tracer.trace(pipe, None, seed=0, output_type="pt", **kw) as t:
        record("mass", "entropy", layers="all")
    assert torch.equal(t.output.frames, ref)
    lay = t.stats.sel(layout="joint", branch="cond")
    valid = lay.key_valid.values
    assert valid[:N_VIDEO].all() and valid[N_VIDEO:].sum() == int(embeds[1].sum() + embeds[3].sum())
    assert np.isfinite(t.stats.entropy.isel(call=0).sel(branch="cond").values).all()


# --- edits and maps -----------------------------------------------------------------------------------


def test_edits_act_on_what_they_name(pipes):
    pipe = pipes()
    kw = kwargs_for()
    ref = plain(pipe, **kw)
    t = traced(pipe, lambda: mask_topk(layer=0, k=1, name="top"), **kw)
    assert not torch.equal(t.output.frames, ref) and torch.isfinite(t.output.frames).all()
    after = t.stats.edit_mass_after.isel(edit=0).values
    assert np.isfinite(after).any() and np.nanmax(after) < 1e-6
    assert np.isfinite(t.stats.edit_mass_before.isel(edit=0).values).any()
    t = traced(pipe, lambda: mask_keys(keys=["image:1,2,3"], layer=0, name="patch"), **kw)
    keys = t.stats.edit_keys.isel(edit=0).sel(site=SITES[0]).values[..., 0]
    assert set(np.unique(keys[keys >= 0])) == {1 * 64 + 2 * 8 + 3}
    with pytest.raises(PlanError, match="FRAME,ROW,COL"), tracer.trace(pipe, PROMPT, **kw):
        mask_keys(keys=["image:2,3"], layer=0)


def test_maps_of_video_queries_equal_brute_force(pipes):
    pipe = pipes()
    kw = kwargs_for(negative_prompt=NEGATIVE)
    caps, _ = captured(pipe, SITES[:1], **kw)
    t = traced(pipe, lambda: record("maps", layers=0, steps=[1], heads=[1], queries="image"), **kw)
    q, k, scale, mask = caps[SITES[0]].calls[2]  # step 1, call 0 (cond)
    want = brute(q, k, scale, mask[0, 0])[0, 1, :N_VIDEO].numpy()
    amap = t.stats.attn_map.sel(site=SITES[0], branch="cond").isel(step=1, call=0).values[0]
    np.testing.assert_allclose(amap[:, : want.shape[1]], want, rtol=1e-5, atol=1e-7)
    # the default query set: each branch's own unblocked rows (cond has more: its prompt is longer); the
    # store keeps the longer selection and the uncond rows past its own are empty
    t = traced(pipe, lambda: record("maps", layers=0, steps=[1], heads=[1]), **kw)
    rows = t.stats.map_query_index.sel(site=SITES[0]).values
    for call, branch in enumerate(("cond", "uncond")):
        q, k, scale, mask = caps[SITES[0]].calls[2 + call]
        m = mask[0, 0]
        own = np.flatnonzero(m.any(-1).numpy())
        amap = t.stats.attn_map.sel(site=SITES[0], branch=branch).isel(step=1, call=call).values[0]
        np.testing.assert_array_equal(rows[: len(own)], own)
        want = brute(q, k, scale, m)[0, 1, own].numpy()
        np.testing.assert_allclose(amap[: len(own), : want.shape[1]], want, rtol=1e-5, atol=1e-7)
        assert np.isnan(amap[len(own) :]).all()
    assert len(rows) > len(own)  # the uncond prompt is the shorter


# --- sweep, loading, demo -----------------------------------------------------------------------------


def test_sweep_and_store(pipes, tmp_path):
    from interp.sweep import parse_config, run
    from interp.sweep.config import ConfigError

    data = {
        "version": 1,
        "name": "hv15",
        "store": str(tmp_path / "sweep.zarr"),
        "model": {"id": f"tiny:{NAME}"},
        "sampler": {"steps": 2, "guidance_scale": 6.0, "height": 32, "width": 32, "call_kwargs": {"num_frames": 5}},
        "prompts": {"source": "geneval", "n": 2, "subset_seed": 1},
        "run": {"progress": False},
        "records": [{"stats": ["mass", "entropy"], "layers": "all"}],
        "conditions": [{"name": "baseline"}, {"name": "top1", "plan": [{"fn": "mask_topk", "layer": 0, "k": 1}]}],
    }
    refused = parse_config({**data, "sampler": {**data["sampler"], "guidance_scale": 5.0}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="its guider's scale is 6.0"):  # before generation: no store
        run(refused, pipe=pipes(), progress=False, log=lambda s: None)
    assert not (tmp_path / "sweep.zarr").exists()
    cfg = parse_config(data, base_dir=tmp_path)
    result = run(cfg, pipe=pipes(), progress=False, log=lambda s: None)
    assert result.generated == 4
    ds = interp.open_store(tmp_path / "sweep.zarr")
    assert ds.sizes["sample"] == 4 and set(ds.condition.values) == {"baseline", "top1"}
    frames = ds.key_image_frame.sel(layout="joint").values
    assert set(np.unique(frames[frames >= 0])) == {0, 1}
    for call, branch in enumerate(("cond", "uncond")):
        assert np.isfinite(ds.entropy.isel(call=call).sel(branch=branch).values).all()


def test_save_pretrained_then_load(pipes, tmp_path):
    """A saved tiny pipeline loads with the pipeline's real constants (the built-in sets its short
    lengths on the instance): the adapter reads them from the loaded pipeline, and tracing holds."""
    pipe = pipes()
    pipe.save_pretrained(tmp_path / NAME)
    loaded = interp.pipelines.load(tmp_path / NAME)
    assert type(loaded) is type(pipe)
    kw = kwargs_for(num_inference_steps=1)
    ref = plain(loaded, **kw)
    t = traced(loaded, lambda: record("mass", "entropy", layers="all"), **kw)
    assert torch.equal(t.output.frames, ref)
    n_ctx = loaded.vision_num_semantic_tokens + loaded.tokenizer_2_max_length + loaded.tokenizer_max_length
    assert t.stats.sizes["key"] == N_VIDEO + n_ctx
    assert np.isfinite(t.stats.entropy.isel(call=0).sel(branch="cond").values).all()


def test_demo(tmp_path, capsys):
    from interp.cli import main

    store = tmp_path / "demo.zarr"
    assert main(["demo", "--model", NAME, "--prompts", "1", "--steps", "2", "--store", str(store)]) == 0
    assert interp.open_store(store).sizes["sample"] == 1
