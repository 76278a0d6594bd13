"""Tracing SD3.5, SDXL, Flux and PixArt end to end: what test_trace_sd3.py shows for SD3, per family.

Every check compares against something the adapters do not compute: the plain pipeline's latents, the
q, k, v and output of each attention call captured outside the tracer (an independent interceptor),
the token ids the pipeline fed its own text encoders, the mask it passed to SDPA, and brute-force
softmax statistics over the fully materialised attention matrix.
"""

import inspect

import numpy as np
import pytest
import torch
from diffusers.models.embeddings import apply_rotary_emb

import interp
from interp import record, tracer
from interp.adapters import adapter_for
from interp.sites.intercept import BackendError, SDPAInterceptor

ARCHS = ("sd3.5", "sdxl", "flux", "pixart")
VIDEO = ("wan", "cogvideox", "cogvideox1.5")  # more video checks: tests/integration/test_trace_video.py
PROMPT = "a photo of a red bench"
ALL_STATS = ("mass", "mass_full", "entropy", "mass_topk", "query_topk", "act_norms")
FLUX_CFG = {"true_cfg_scale": 2.0, "negative_prompt": "blurry"}
N_TXT_FLUX = interp.pipelines.tiny_call_kwargs("flux")["max_sequence_length"]

# One site of every kind per family (SD3.5's dual attention, SDXL's two resolutions and cross-attention,
# Flux's double, single and last single block, PixArt's masked cross-attention).
SITES = {
    "sd3.5": ("transformer_blocks.1.attn", "transformer_blocks.0.attn2"),
    "sdxl": (
        "down_blocks.1.attentions.0.transformer_blocks.0.attn1",
        "mid_block.attentions.0.transformer_blocks.1.attn1",
        "up_blocks.0.attentions.1.transformer_blocks.0.attn2",
    ),
    "flux": (
        "transformer_blocks.1.attn",
        "single_transformer_blocks.0.attn",
        "single_transformer_blocks.3.attn",
    ),
    "pixart": ("transformer_blocks.2.attn1", "transformer_blocks.2.attn2"),
}
CASES = [(a, s) for a in ARCHS for s in SITES[a]]


@pytest.fixture(scope="module")
def pipes():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = interp.pipelines.tiny(name)
        return cache[name]

    return get


def kwargs_for(arch, **extra):
    kw = interp.pipelines.tiny_call_kwargs(arch)
    if extra.pop("true_cfg", False) and arch == "flux":
        kw.update(FLUX_CFG)
    kw.update(extra)
    return kw


def denoiser(pipe):
    return adapter_for(pipe).denoiser(pipe)


def branches_of(arch, call):
    """The CFG branch of each batch row, from each pipeline's source (not from the adapter)."""
    if arch == "flux":  # FluxPipeline: the positive prompt's call first, the negative second
        return ["cond"] if call == 0 else ["uncond"]
    return ["uncond", "cond"]  # torch.cat([negative, positive]) in SD3, SDXL and PixArt


def latent_recorder(pipe):
    """(list, callback kwargs) reading the latents after every step; PixArt still has the old callback API."""
    latents = []
    if "callback_on_step_end" in inspect.signature(pipe.__call__).parameters:

        def cb(p, i, t, tensors):
            latents.append(tensors["latents"].clone())
            return tensors

        return latents, {"callback_on_step_end": cb}
    return latents, {"callback": lambda i, t, lat: latents.append(lat.clone())}


def pixels(output):
    """The images of a pipeline output, or the frames of a video pipeline's."""
    return output.images if hasattr(output, "images") else output.frames


def run_plain(pipe, prompt=PROMPT, seed=0, **kw):
    latents, cb = latent_recorder(pipe)
    out = pipe(prompt, output_type="pt", generator=torch.Generator("cpu").manual_seed(seed), **cb, **kw)
    return pixels(out), latents


def run_traced(pipe, plan_fn, prompt=PROMPT, seed=0, **kw):
    latents, cb = latent_recorder(pipe)
    with tracer.trace(pipe, prompt, seed=seed, output_type="pt", **cb, **kw) as t:
        plan_fn()
    return t, latents


def hook_state(pipe):
    """Hook counts per module; diffusers' hook registry by hook names (the pipelines themselves leave an
    empty registry on the denoiser: ``cache_context``)."""
    state = []
    for name, m in denoiser(pipe).named_modules():
        registry = getattr(m, "_diffusers_hook", None)
        state.append(
            (
                name,
                len(m._forward_hooks),
                len(m._forward_pre_hooks),
                len(getattr(m, "_forward_hooks_always_called", {})),
                sorted(registry.hooks) if registry is not None and registry.hooks else None,
            )
        )
    return state


def assert_clean(pipe, before_state, processors_before):
    assert hook_state(pipe) == before_state
    for name, fh, fph, always, registry in hook_state(pipe):
        assert (fh, fph, always) == (0, 0, 0) and not registry, f"hook left on {name}"
    after = denoiser(pipe).attn_processors
    assert after.keys() == processors_before.keys()
    assert all(after[k] is processors_before[k] for k in after)
    assert torch._C._len_torch_function_stack() == 0


class Capture:
    """q, k, v, mask, scale and SDPA output of every call of one attention module, plus its inputs and
    output; an interceptor of its own, independent of the tracer (used in plain runs)."""

    def __init__(self, module):
        self.calls, self.outputs, self.inputs = [], [], []
        self.mode = None
        self.handles = [
            module.register_forward_pre_hook(self.pre, with_kwargs=True),
            module.register_forward_hook(self.post, always_call=True),
        ]

    def handler(self, call):
        out = call.run_original()
        mask = None if call.attn_mask is None else call.attn_mask.clone()
        self.calls.append((call.q.clone(), call.k.clone(), call.v.clone(), mask, call.scale, out.clone()))
        return out

    def pre(self, m, args, kwargs):
        self.inputs.append((args, kwargs))
        self.mode = SDPAInterceptor(self.handler)
        self.mode.__enter__()

    def post(self, m, args, output):
        self.mode.__exit__(None, None, None)
        self.outputs.append(output)

    def remove(self):
        for h in self.handles:
            h.remove()


def capture_plain(pipe, paths, **kw):
    caps = {p: Capture(denoiser(pipe).get_submodule(p)) for p in paths}
    try:
        run_plain(pipe, **kw)
    finally:
        for c in caps.values():
            c.remove()
    return caps


def softmax_double(q, k, scale, mask):
    s = (q.double() @ k.double().transpose(-1, -2)) * scale
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask.double()
    return torch.softmax(s, dim=-1)


@torch.no_grad()
def project(arch, attn, av, output):
    """A V (B, H, N, D) pushed through the module's own output projection(s), shaped like ``output``."""
    b, h, n, d = av.shape
    flat = av.transpose(1, 2).reshape(b, n, h * d).float()
    if isinstance(output, tuple):
        if arch == "flux":  # [text, image] in the kernel; (image, text) out
            n_txt = output[1].shape[1]
            return attn.to_out[1](attn.to_out[0](flat[:, n_txt:])), attn.to_add_out(flat[:, :n_txt])
        n_img = output[0].shape[1]  # SD3: [image, text] in the kernel
        img = attn.to_out[1](attn.to_out[0](flat[:, :n_img]))
        return img, (attn.to_add_out(flat[:, n_img:]) if output[1] is not None else None)
    if arch == "flux":  # single-stream: no projection inside the attention module
        assert not hasattr(attn, "to_out")
        return flat
    assert not getattr(attn, "residual_connection", False) and getattr(attn, "rescale_output_factor", 1.0) == 1.0
    return attn.to_out[1](attn.to_out[0](flat))


def stream_rows(arch, path, n):
    """(image rows, text rows) of a site's queries, from each architecture's definition."""
    rows = np.arange(n)
    if arch == "sd3.5" and path.endswith(".attn"):
        return rows[:256], rows[256:]
    if arch == "flux":
        text = rows[:N_TXT_FLUX] if path != "single_transformer_blocks.3.attn" else rows[:0]  # last: discarded
        return rows[N_TXT_FLUX:], text
    return rows, rows[:0]


# --- bit identity and cleanup ------------------------------------------------------------------------


@pytest.mark.parametrize("arch", [*ARCHS, "flux-true-cfg", *VIDEO])
def test_observation_is_bit_identical_and_clean(pipes, arch):
    name = arch.removesuffix("-true-cfg")
    pipe = pipes(name)
    kw = kwargs_for(name, true_cfg=arch.endswith("cfg"))
    ref_img, ref_lat = run_plain(pipe, **kw)
    state, procs = hook_state(pipe), denoiser(pipe).attn_processors
    t, lat = run_traced(pipe, lambda: record(*ALL_STATS, layers="all"), **kw)
    assert len(lat) == len(ref_lat) == kw["num_inference_steps"]
    for a, b in zip(lat, ref_lat, strict=True):
        assert torch.equal(a, b)
    assert pixels(t.output).dtype == torch.float32 and torch.equal(pixels(t.output), ref_img)
    assert list(t.stats.site.values) == [s.path for s in adapter_for(pipe).sites(pipe)]
    assert np.isfinite(t.stats.entropy.sel(call=0, branch="cond").values[:, t.stats.head_valid.values]).all()
    assert_clean(pipe, state, procs)


@pytest.mark.parametrize("arch", ["sdxl", "flux", "pixart"])
def test_cleanup_after_exception_inside_a_site(pipes, arch, recwarn):
    pipe = pipes(arch)
    path = adapter_for(pipe).sites(pipe)[-1].path
    state, procs = hook_state(pipe), denoiser(pipe).attn_processors

    def boom(module, args, output):
        raise RuntimeError("failure inside the attention forward")

    inner = denoiser(pipe).get_submodule(path).to_q
    handle = inner.register_forward_hook(boom)
    try:
        with (
            pytest.raises(RuntimeError, match="inside the attention"),
            tracer.trace(pipe, PROMPT, **kwargs_for(arch, num_inference_steps=2)),
        ):
            record("mass", "act_norms", layers="all")
    finally:
        handle.remove()
    assert_clean(pipe, state, procs)
    assert not [w for w in recwarn if "silenced" in str(w.message)]  # the forward's own error, alone


# --- captured q, k, v reproduce the module; statistics equal brute force -----------------------------


@pytest.mark.parametrize("arch, path", CASES)
def test_captured_qkv_reproduce_the_module_output(pipes, arch, path):
    pipe = pipes(arch)
    cap = capture_plain(pipe, [path], **kwargs_for(arch, true_cfg=True))[path]
    attn = denoiser(pipe).get_submodule(path)
    n_calls = 2 if arch == "flux" else 1
    assert len(cap.calls) == len(cap.outputs) == 4 * n_calls  # one kernel call per forward
    for (q, k, v, mask, scale, sdpa_out), output in zip(cap.calls, cap.outputs, strict=True):
        av = softmax_double(q, k, scale, mask) @ v.double()
        torch.testing.assert_close(av.float(), sdpa_out, rtol=1e-4, atol=1e-5)
        got = project(arch, attn, av, output)
        for g, o in pairs(got, output):
            torch.testing.assert_close(g, o, rtol=1e-4, atol=1e-5)


def _max_error(arch, attn, q, k, v, scale, mask, output):
    av = softmax_double(q, k, scale, mask) @ v.double()
    got = project(arch, attn, av, output)
    return max(float((g - o).abs().max()) for g, o in pairs(got, output))


def pairs(got, output):
    """(reconstructed, real) output tensors of a site; a None real output (discarded stream) is skipped."""
    got, output = (x if isinstance(x, tuple) else (x,) for x in (got, output))
    return [(g, o) for g, o in zip(got, output, strict=True) if o is not None]


def test_the_reproduction_check_fails_without_rope(pipes):
    """Flux applies RoPE before SDPA: undoing it on the captured q, k breaks the reconstruction."""
    pipe = pipes("flux")
    path = "transformer_blocks.1.attn"
    cap = capture_plain(pipe, [path], **kwargs_for("flux"))[path]
    attn = denoiser(pipe).get_submodule(path)
    q, k, v, mask, scale, _ = cap.calls[1]
    cos, sin = cap.inputs[1][1]["image_rotary_emb"]
    q0, k0 = (apply_rotary_emb(x, (cos, -sin)) for x in (q, k))  # rotate back by -theta
    torch.testing.assert_close(apply_rotary_emb(q0, (cos, sin)), q, rtol=1e-4, atol=1e-5)
    assert _max_error("flux", attn, q, k, v, scale, mask, cap.outputs[1]) < 1e-4
    assert _max_error("flux", attn, q0, k0, v, scale, mask, cap.outputs[1]) > 1e-2


def test_the_reproduction_check_fails_without_qk_norm(pipes):
    """SD3.5 RMS-normalises q and k before SDPA: the un-normalised projections break the reconstruction."""
    pipe = pipes("sd3.5")
    path = "transformer_blocks.1.attn"
    cap = capture_plain(pipe, [path], **kwargs_for("sd3.5"))[path]
    attn = denoiser(pipe).get_submodule(path)
    assert attn.norm_q is not None and attn.norm_added_q is not None
    q, k, v, mask, scale, _ = cap.calls[1]
    args, kwargs = cap.inputs[1]
    x, ctx = kwargs["hidden_states"], kwargs["encoder_hidden_states"]
    b, h, _, d = q.shape

    def heads(t):
        return t.view(b, -1, h, d).transpose(1, 2)

    q0 = torch.cat([heads(attn.to_q(x)), heads(attn.add_q_proj(ctx))], dim=2)
    k0 = torch.cat([heads(attn.to_k(x)), heads(attn.add_k_proj(ctx))], dim=2)
    n_img = x.shape[1]
    torch.testing.assert_close(attn.norm_q(q0[:, :, :n_img]), q[:, :, :n_img], rtol=1e-5, atol=1e-6)
    assert _max_error("sd3.5", attn, q, k, v, scale, mask, cap.outputs[1]) < 1e-4
    assert _max_error("sd3.5", attn, q0, k0, v, scale, mask, cap.outputs[1]) > 1e-2


@pytest.mark.parametrize("arch", ARCHS)
def test_statistics_equal_brute_force(pipes, arch):
    pipe = pipes(arch)
    kw = kwargs_for(arch, true_cfg=True)
    paths = SITES[arch]
    caps = capture_plain(pipe, paths, **kw)
    t, _ = run_traced(pipe, lambda: record(*ALL_STATS, layers=list(paths), top=4, k=3), **kw)
    ds = t.stats
    n_calls = 2 if arch == "flux" else 1
    assert ds.sizes["call"] == n_calls and ds.sizes["step"] == 4
    for path in paths:
        cap = caps[path]
        for i, ((q, k, _v, mask, scale, out), output) in enumerate(zip(cap.calls, cap.outputs, strict=True)):
            step, call = divmod(i, n_calls)
            a = softmax_double(q, k, scale, mask)  # (B, H, Nq, Nk)
            img_rows, txt_rows = stream_rows(arch, path, q.shape[2])
            used = np.sort(np.r_[img_rows, txt_rows])  # the default query set: rows whose output is used
            aq = a[:, :, used]
            m = aq.mean(2)
            ent = (-torch.special.xlogy(aq, aq).sum(-1)).mean(-1)
            qtk = aq.sort(-1, descending=True).values[..., :3].sum(-1).mean(-1)
            top = m.sort(-1, descending=True).values
            pre = torch.linalg.vector_norm(out.double(), dim=-1)  # (B, H, Nq), L2 over head dim
            post = output if isinstance(output, tuple) else (output,)
            g_call = ds.sel(site=path).isel(step=step, call=call)
            nh, nk = q.shape[1], k.shape[2]
            for bi, branch in enumerate(branches_of(arch, call)):
                g = g_call.sel(branch=branch).isel(head=slice(0, nh))
                np.testing.assert_allclose(g.max_mass.values, top[bi, :, 0].numpy(), rtol=1e-5)
                keys = g.topk_keys.values
                assert all(len(set(r)) == 4 for r in keys)  # distinct keys; ties may order freely
                np.testing.assert_allclose(g.topk_mass.values, top[bi, :, :4].numpy(), rtol=1e-5, atol=1e-7)
                named = np.take_along_axis(m[bi].numpy(), keys.astype(np.int64), axis=-1)
                np.testing.assert_allclose(named, g.topk_mass.values, rtol=1e-5, atol=1e-7)
                np.testing.assert_allclose(g.mass_per_key.values[:, :nk], m[bi].numpy(), rtol=1e-5, atol=1e-8)
                np.testing.assert_allclose(g.entropy.values, ent[bi].numpy(), rtol=1e-5, atol=1e-7)
                np.testing.assert_allclose(g.mass_topk.values, top[bi, :, :3].sum(-1).numpy(), rtol=1e-5)
                np.testing.assert_allclose(g.query_topk.values, qtk[bi].numpy(), rtol=1e-5)
                for stream, rows in (("image", img_rows), ("text", txt_rows)):
                    got_max = g.act_pre_max.sel(stream=stream, norm_ord="2").values
                    got_p95 = g.act_pre_p95.sel(stream=stream, norm_ord="2").values
                    if len(rows) == 0:
                        assert np.isnan(got_max).all() and np.isnan(got_p95).all()
                        continue
                    np.testing.assert_allclose(got_max, pre[bi][:, rows].amax(-1).numpy(), rtol=1e-5)
                    np.testing.assert_allclose(got_p95, np.percentile(pre[bi][:, rows].numpy(), 95, -1), rtol=1e-5)
                _check_post_norms(arch, path, g, post, bi)


def _check_post_norms(arch, path, g, post, bi):
    """post_out: norms of the module's output tokens per stream (Flux single-stream: one [text, image])."""
    if arch == "flux" and len(post) == 1:
        x = post[0][bi]
        last = path == "single_transformer_blocks.3.attn"
        streams = {"image": x[N_TXT_FLUX:], "text": None if last else x[:N_TXT_FLUX]}
    else:
        streams = {
            "image": post[0][bi],
            "text": post[1][bi] if len(post) > 1 and post[1] is not None else None,
        }
    for stream, x in streams.items():
        got = g.act_post_max.sel(stream=stream)
        if x is None:
            assert np.isnan(got.values).all()
            continue
        for o, p in (("2", 2), ("inf", float("inf"))):
            want = torch.linalg.vector_norm(x.double(), ord=p, dim=-1).amax().item()
            np.testing.assert_allclose(float(got.sel(norm_ord=o)), want, rtol=1e-5)


# --- step, call and branch labels --------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_step_labels_timesteps_and_phase(pipes, arch):
    pipe = pipes(arch)
    kw = kwargs_for(arch, true_cfg=True)
    t, _ = run_traced(pipe, lambda: record("entropy", layers="all"), **kw)
    ds = t.stats
    steps = kw["num_inference_steps"]
    np.testing.assert_array_equal(ds.timestep.values, pipe.scheduler.timesteps.double().numpy())
    np.testing.assert_array_equal(ds.sigma.values, pipe.scheduler.sigmas[:steps].double().numpy())
    assert ds.t_over_T.values[0] == 0.0 and ds.t_over_T.values[-1] == 1.0
    for call in range(ds.sizes["call"]):
        for branch in ds.branch.values:
            ran = str(branch) in branches_of(arch, call)
            vals = ds.entropy.sel(call=call, branch=branch).values[:, ds.head_valid.values]
            assert np.isfinite(vals).all() if ran else np.isnan(vals).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_statistics_at_step_s_describe_the_forward_of_step_s(pipes, arch):
    """Scaling the latents after step s-1 changes the statistics of step s and of no earlier step."""
    s = 2
    pipe = pipes(arch)
    kw = kwargs_for(arch, true_cfg=True)
    base, _ = run_traced(pipe, lambda: record("entropy", layers="all"), **kw)
    if "callback_on_step_end" in inspect.signature(pipe.__call__).parameters:

        def perturb(p, i, t, tensors):
            if i == s - 1:
                tensors["latents"] = tensors["latents"] * 1.5
            return tensors

        cb = {"callback_on_step_end": perturb}
    else:  # PixArt's old callback: the latents tensor itself, changed in place

        def perturb_old(i, t, latents):
            if i == s - 1:
                latents.mul_(1.5)

        cb = {"callback": perturb_old}
    with tracer.trace(pipe, PROMPT, seed=0, output_type="pt", **cb, **kw) as t:
        record("entropy", layers="all")
    got, ref = t.stats.entropy.values, base.stats.entropy.values
    np.testing.assert_array_equal(got[:s], ref[:s])
    changed = ~np.isclose(got[s], ref[s], rtol=1e-6) & np.isfinite(ref[s])
    assert changed.any()


@pytest.mark.parametrize("arch", ARCHS)
def test_uncond_rows_are_the_negative_prompt(pipes, arch):
    """The rows (or call) labelled uncond compute what a plain run of the negative prompt computes."""
    pipe = pipes(arch)
    neg = "a blue car in the snow"
    kw = kwargs_for(arch, negative_prompt=neg)
    if arch == "flux":
        kw["true_cfg_scale"] = 2.0
    t, _ = run_traced(pipe, lambda: record("mass", "entropy", layers="all"), **kw)
    solo_kw = kwargs_for(arch, **({"true_cfg_scale": 1.0} if arch == "flux" else {"guidance_scale": 1.0}))
    solo, _ = run_traced(pipe, lambda: record("mass", "entropy", layers="all"), prompt=neg, **solo_kw)
    uncond_call = 1 if arch == "flux" else 0
    assert list(solo.stats.branch.values) == ["cond"] and solo.stats.sizes["call"] == 1
    got = t.stats.isel(step=0).sel(call=uncond_call, branch="uncond")
    want = solo.stats.isel(step=0).sel(call=0, branch="cond")  # same seed: same latents at step 0
    for var in ("entropy", "max_mass"):
        np.testing.assert_allclose(got[var].values, want[var].values, rtol=2e-4, atol=1e-6)
    cond = t.stats.isel(step=0).sel(call=0, branch="cond")
    assert not np.allclose(cond.entropy.values, want.entropy.values, rtol=1e-3, equal_nan=True)


# --- token layouts -----------------------------------------------------------------------------------


def encoder_inputs(module):
    ids = []
    handle = module.register_forward_pre_hook(
        lambda m, args, kwargs: ids.append((args[0] if args else kwargs["input_ids"]).clone()),
        with_kwargs=True,
    )
    return ids, handle


def layout(ds, name, branch):
    return ds.sel(layout=name, branch=branch)


def test_sdxl_token_layouts(pipes):
    pipe = pipes("sdxl")
    ids, handle = encoder_inputs(pipe.text_encoder)
    cap = capture_plain(pipe, [SITES["sdxl"][2]], **kwargs_for("sdxl", num_inference_steps=1))
    try:
        t, _ = run_traced(pipe, lambda: record("mass", layers="all"), **kwargs_for("sdxl", num_inference_steps=1))
    finally:
        handle.remove()
    ds = t.stats
    assert set(ds.layout.values) == {"clip", "image/2", "image/4"}
    keys = dict(zip(ds.site.values, ds.site_keys.values, strict=True))
    for s in adapter_for(pipe).sites(pipe):
        lay = layout(ds, s.key_layout, "cond")
        assert keys[s.path] == int((lay.key_modality != "").sum())
    img = layout(ds, "image/4", "cond")
    n = int((img.key_modality == "image").sum())
    assert n == 64 and img.key_image_row.values[:n].max() == 7 and list(img.key_image_col.values[:3]) == [0, 1, 2]
    cond = layout(ds, "clip", "cond")
    np.testing.assert_array_equal(cond.key_token_id.values[:77], ids[-1][0].numpy())  # what the encoder saw
    toks = [str(x) for x in cond.key_token_str.values[:8]]
    assert toks[:7] == ["<|startoftext|>", "a</w>", "photo</w>", "of</w>", "a</w>", "red</w>", "bench</w>"]
    assert cond.key_is_bos.values[0] and cond.key_is_eos.values[7] and not cond.key_is_pad.values[7]
    assert cond.key_is_pad.values[8:77].all() and str(cond.key_token_str.values[8]) == "<|endoftext|>"
    assert {str(e) for e in cond.key_encoder.values[:77]} == {"CLIP-L/G"}
    # no negative prompt: the pipeline zeroes the uncond embeddings (keys exactly 0), labelled "zeros"
    k_uncond = cap[SITES["sdxl"][2]].calls[0][1][0]
    assert torch.count_nonzero(k_uncond) == 0
    unc = layout(ds, "clip", "uncond")
    assert {str(e) for e in unc.key_encoder.values[:77]} == {"zeros"} and not unc.key_is_eos.values.any()
    # an explicit empty negative prompt is encoded: real tokens
    cap2 = capture_plain(pipe, [SITES["sdxl"][2]], **kwargs_for("sdxl", num_inference_steps=1, negative_prompt=""))
    assert torch.count_nonzero(cap2[SITES["sdxl"][2]].calls[0][1][0]) > 0
    t2, _ = run_traced(
        pipe,
        lambda: record("mass", layers=SITES["sdxl"][2]),
        **kwargs_for("sdxl", num_inference_steps=1, negative_prompt=""),
    )
    unc2 = layout(t2.stats, "clip", "uncond")
    assert unc2.key_is_bos.values[0] and unc2.key_is_eos.values[1] and unc2.key_is_pad.values[2:77].all()


def test_sdxl_odd_latent_sizes_follow_the_downsamplers(pipes):
    """A 34x20 latent (passed directly: the pipeline's own sizes are multiples of 8 px): 17x10 patches
    after one stride-2 convolution, then ceil(17 / 2) x 5 = 9x5 at the lowest level."""
    pipe = pipes("sdxl")
    latents = torch.randn(1, 4, 34, 20, generator=torch.Generator("cpu").manual_seed(1))
    kw = kwargs_for("sdxl", num_inference_steps=1, height=64, width=40, latents=latents)
    t, _ = run_traced(pipe, lambda: record("mass", layers="self"), **kw)
    ds = t.stats
    for name, (rows, cols) in {"image/2": (17, 10), "image/4": (9, 5)}.items():
        lay = layout(ds, name, "cond")
        n = int((lay.key_modality == "image").sum())
        assert n == rows * cols
        assert lay.key_image_row.values[n - 1] == rows - 1 and lay.key_image_col.values[n - 1] == cols - 1


def test_flux_token_layout(pipes):
    pipe = pipes("flux")
    ids, handle = encoder_inputs(pipe.text_encoder_2)
    img_ids = []
    h2 = pipe.transformer.register_forward_pre_hook(
        lambda m, a, kw: img_ids.append(kw["img_ids"].clone()), with_kwargs=True
    )
    try:
        kw = kwargs_for("flux", true_cfg=True, num_inference_steps=1, width=96)
        t, _ = run_traced(pipe, lambda: record("mass", layers="all"), **kw)
    finally:
        handle.remove()
        h2.remove()
    ds = t.stats
    assert list(ds.layout.values) == ["joint"]
    n_img = 16 * 24  # 64 x 96 px: a 32 x 48 latent packed 2x2
    for branch, enc_ids in (("cond", ids[0]), ("uncond", ids[1])):  # encode order: prompt, then negative
        lay = layout(ds, "joint", branch)
        assert (lay.key_modality.values[:N_TXT_FLUX] == "text").all()
        assert (lay.key_modality.values[N_TXT_FLUX : N_TXT_FLUX + n_img] == "image").all()
        np.testing.assert_array_equal(lay.key_token_id.values[:N_TXT_FLUX], enc_ids[0].numpy())
        tid = lay.key_token_id.values[:N_TXT_FLUX]
        eos = int(np.flatnonzero(tid == pipe.tokenizer_2.eos_token_id)[0])
        assert lay.key_is_eos.values[eos] and lay.key_is_pad.values[eos + 1 : N_TXT_FLUX].all()
        assert not lay.key_is_pad.values[:eos].any() and str(lay.key_token_str.values[eos]) == "</s>"
        rc = img_ids[0][:, 1:].long().numpy()
        np.testing.assert_array_equal(lay.key_image_row.values[N_TXT_FLUX:], rc[:, 0])
        np.testing.assert_array_equal(lay.key_image_col.values[N_TXT_FLUX:], rc[:, 1])
        assert rc[:, 0].max() == 15 and rc[:, 1].max() == 23
    assert list(ds.site_keys.values) == [N_TXT_FLUX + n_img] * 6


def test_pixart_padding_mask_labels_and_zero_mass(pipes):
    pipe = pipes("pixart")
    path = "transformer_blocks.0.attn2"
    ids, handle = encoder_inputs(pipe.text_encoder)
    kw = kwargs_for("pixart", num_inference_steps=2)
    cap = capture_plain(pipe, [path], prompt="A Photo of a RED bench", **kw)[path]
    try:
        t, _ = run_traced(
            pipe, lambda: record("mass", "mass_full", layers="cross"), prompt="A Photo of a RED bench", **kw
        )
    finally:
        handle.remove()
    ds = t.stats
    mask = cap.calls[0][3]  # what the processor passed to SDPA: additive float, (B, heads, 1, Nk)
    assert mask.dtype == torch.float32 and mask.shape[1:3] == (4, 1)
    for bi, branch in enumerate(["uncond", "cond"]):
        lay = layout(ds, "t5", branch)
        nk = mask.shape[-1]
        valid = (mask[bi, 0, 0] == 0).numpy()
        np.testing.assert_array_equal(lay.key_valid.values[:nk], valid)
        enc = ids[-2:][0 if branch == "cond" else 1][0].numpy()  # the last call encodes prompt then negative
        np.testing.assert_array_equal(lay.key_token_id.values[:nk], enc)
        eos = int(np.flatnonzero(enc == pipe.tokenizer.eos_token_id)[0])
        assert lay.key_is_eos.values[eos] and lay.key_is_pad.values[eos + 1 : nk].all()
        assert valid[: eos + 1].all() and not valid[eos + 1 :].any()
        mass = ds.mass_per_key.sel(branch=branch).isel(call=0).values[..., :nk]  # (step, site, head, key)
        assert (mass[..., ~valid] == 0).all()  # padded keys get exactly zero mass
        np.testing.assert_allclose(mass[..., valid].sum(-1), 1.0, rtol=1e-5)
    cond_tokens = [str(x) for x in layout(ds, "t5", "cond").key_token_str.values[:6]]
    assert cond_tokens == ["▁a", "▁photo", "▁of", "▁a", "▁red", "▁bench"]  # the pipeline lower-cases
    assert layout(ds, "t5", "uncond").key_is_eos.values[0]  # "" is just EOS


def test_pixart_alpha_shares_the_adapter(pipes):
    """PixArtAlphaPipeline runs the same transformer class: bit-identical, and the mask labels hold."""
    from diffusers import PixArtAlphaPipeline

    pipe = PixArtAlphaPipeline(**pipes("pixart").components)
    kw = kwargs_for("pixart", num_inference_steps=2)
    path = "transformer_blocks.1.attn2"
    cap = capture_plain(pipe, [path], **kw)[path]
    ref, ref_lat = run_plain(pipe, **kw)
    t, lat = run_traced(pipe, lambda: record("mass_full", layers="all"), **kw)
    assert torch.equal(t.output.images, ref) and all(torch.equal(a, b) for a, b in zip(lat, ref_lat, strict=True))
    mask = cap.calls[0][3]
    for bi, branch in enumerate(["uncond", "cond"]):
        valid = (mask[bi, 0, 0] == 0).numpy()
        np.testing.assert_array_equal(layout(t.stats, "t5", branch).key_valid.values[: len(valid)], valid)
        mass = t.stats.mass_per_key.sel(branch=branch, site=path).values[..., : len(valid)]
        assert (mass[..., ~valid] == 0).all()


def test_sd35_dual_attention_layout(pipes):
    pipe = pipes("sd3.5")
    t, _ = run_traced(pipe, lambda: record("mass", layers="all"), **kwargs_for("sd3.5", num_inference_steps=1))
    ds = t.stats
    kinds = dict(zip(ds.site.values, ds.site_key_layout.values, strict=True))
    assert kinds["transformer_blocks.0.attn2"] == "image" and kinds["transformer_blocks.0.attn"] == "joint"
    keys = dict(zip(ds.site.values, ds.site_keys.values, strict=True))
    assert keys["transformer_blocks.0.attn2"] == 256 and keys["transformer_blocks.0.attn"] == 256 + 77 + 32
    img = layout(ds, "image", "cond")
    assert (img.key_modality.values[:256] == "image").all() and img.key_image_row.values[255] == 15
    # attn and attn2 share one processor object, yet each fires once per forward
    blk = pipe.transformer.transformer_blocks[0]
    assert blk.attn.processor is blk.attn2.processor


PLANNED = [
    ("sdxl", {}),
    ("sdxl", {"height": 48, "width": 80, "negative_prompt": "a dog"}),
    ("flux", {"true_cfg": True}),
    ("flux", {"height": 64, "width": 96, "max_sequence_length": 16}),
    ("pixart", {}),
    ("pixart", {"use_resolution_binning": False, "height": 128, "width": 192}),
    ("pixart", {"height": 100, "width": 400}),  # the pipeline snaps it to the 128 x 512 bin: 8 x 32 patches
]


@pytest.mark.parametrize("arch, extra", PLANNED)
def test_planned_layouts_equal_the_layouts_of_the_run(pipes, arch, extra):
    """``planned_layout`` (predicted from the call arguments, before generation) equals every layout the
    trace built from what the sites actually saw."""
    pipe = pipes(arch)
    adapter = adapter_for(pipe)
    kw = kwargs_for(arch, num_inference_steps=1, **extra)
    t, _ = run_traced(pipe, lambda: record("mass", layers="all"), **kw)
    ds = t.stats
    texts = {"cond": PROMPT, "uncond": kw.get("negative_prompt", "")}
    for name in ds.layout.values:
        for branch in ds.branch.values:
            got = layout(ds, str(name), str(branch))
            planned = adapter.planned_layout(pipe, str(name), texts[str(branch)], kw, branch=str(branch))
            n = len(planned)
            assert int((got.key_modality != "").sum()) == n
            for field in (
                "modality",
                "encoder",
                "token_id",
                "token_str",
                "is_bos",
                "is_eos",
                "is_pad",
                "valid",
            ):
                np.testing.assert_array_equal(got[f"key_{field}"].values[:n], getattr(planned, field), err_msg=field)
            np.testing.assert_array_equal(got.key_image_row.values[:n], planned.image_row)
            np.testing.assert_array_equal(got.key_image_col.values[:n], planned.image_col)


# --- refusal of paths that bypass the interception point ---------------------------------------------


def test_flux_non_native_backend_is_refused(pipes):
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    pipe = pipes("flux")
    state, procs = hook_state(pipe), denoiser(pipe).attn_processors
    active = _AttentionBackendRegistry.get_active_backend()[0]
    pipe.transformer.set_attention_backend("flex")  # also sets diffusers' process-wide active backend
    calls = []
    h = pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with (
            pytest.raises(BackendError, match="'flex' bypasses"),
            tracer.trace(pipe, PROMPT, num_inference_steps=1),
        ):
            record("mass", layers="single")
        pipe.transformer.reset_attention_backend()  # processors back to None: the global 'flex' still applies
        with (
            pytest.raises(BackendError, match="'flex' bypasses"),
            tracer.trace(pipe, PROMPT, num_inference_steps=1),
        ):
            record("mass", layers="single")
        pipe.transformer.set_attention_backend("native")  # the fix the message names
        with tracer.trace(pipe, PROMPT, **kwargs_for("flux", num_inference_steps=1)):
            record("mass", layers="single")
    finally:
        h.remove()
        pipe.transformer.reset_attention_backend()
        _AttentionBackendRegistry.set_active_backend(active)
    assert len(calls) == 1  # only the native run reached the transformer
    assert_clean(pipe, state, procs)


def test_sdxl_classic_processor_is_refused(pipes):
    from diffusers.models.attention_processor import AttnProcessor

    pipe = pipes("sdxl")
    path = SITES["sdxl"][2]
    attn = pipe.unet.get_submodule(path)
    original = attn.processor
    attn.set_processor(AttnProcessor())
    try:
        with (
            pytest.raises(BackendError, match="AttnProcessor does not call"),
            tracer.trace(pipe, PROMPT, num_inference_steps=1),
        ):
            record("mass", layers="cross")
    finally:
        attn.set_processor(original)
