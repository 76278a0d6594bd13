"""Tracing the built-in SD3 pipeline end to end: bit-identity, exact statistics, step labels, cleanup."""

import numpy as np
import pytest
import torch

import interp
from interp import record, tracer
from interp.plan import PlanError
from interp.sites.intercept import SDPAInterceptor

STEPS = 4
ALL_STATS = ("mass", "mass_full", "entropy", "mass_topk", "query_topk", "act_norms")


@pytest.fixture
def pipe():
    return interp.pipelines.tiny("sd3")


def run_plain(pipe, seed=0, **kw):
    latents = []

    def cb(p, i, t, tensors):
        latents.append(tensors["latents"].clone())
        return tensors

    out = pipe(
        "a photo of a red bench",
        num_inference_steps=STEPS,
        output_type="pt",
        generator=torch.Generator("cpu").manual_seed(seed),
        callback_on_step_end=cb,
        **kw,
    )
    return out.images, latents


def run_traced(pipe, plan_fn, seed=0, **kw):
    latents = []

    def cb(p, i, t, tensors):
        latents.append(tensors["latents"].clone())
        return tensors

    with tracer.trace(
        pipe,
        "a photo of a red bench",
        seed=seed,
        num_inference_steps=STEPS,
        output_type="pt",
        callback_on_step_end=cb,
        **kw,
    ) as t:
        plan_fn()
    return t, latents


def hook_state(pipe):
    state = []
    for name, m in pipe.transformer.named_modules():
        state.append(
            (
                name,
                len(m._forward_hooks),
                len(m._forward_pre_hooks),
                len(getattr(m, "_forward_hooks_always_called", {})),
                getattr(m, "_diffusers_hook", None),
            )
        )
    return state


def assert_clean(pipe, processors_before):
    for name, fh, fph, always, dh in hook_state(pipe):
        assert (fh, fph, always, dh) == (0, 0, 0, None), f"hook left on {name}"
    after = pipe.transformer.attn_processors
    assert after.keys() == processors_before.keys()
    assert all(after[k] is processors_before[k] for k in after)
    assert torch._C._len_torch_function_stack() == 0


@pytest.mark.parametrize("plan", ["empty", "all_stats", "one_layer"])
def test_observation_is_bit_identical(pipe, plan):
    plans = {
        "empty": lambda: None,
        "all_stats": lambda: record(*ALL_STATS, layers="all"),
        "one_layer": lambda: record("mass", "entropy", layers=1, queries="image"),
    }
    ref_img, ref_lat = run_plain(pipe)
    procs = pipe.transformer.attn_processors
    t, lat = run_traced(pipe, plans[plan])
    assert len(lat) == len(ref_lat) == STEPS
    for a, b in zip(lat, ref_lat, strict=True):
        assert torch.equal(a, b)
    assert t.image.dtype == torch.float32 and torch.equal(t.output.images, ref_img)
    assert_clean(pipe, procs)


def test_cleanup_after_exception_in_body_and_in_pipeline(pipe):
    procs = pipe.transformer.attn_processors
    with pytest.raises(KeyError), tracer.trace(pipe, "a photo of a cat", num_inference_steps=2):
        record("mass")
        raise KeyError("user error")
    assert_clean(pipe, procs)

    def boom(module, args, output):
        raise RuntimeError("failure inside the attention forward")

    inner = pipe.transformer.transformer_blocks[1].attn.to_out[0]
    handle = inner.register_forward_hook(boom)
    try:
        with (
            pytest.raises(RuntimeError, match="inside the attention"),
            tracer.trace(pipe, "a photo of a cat", num_inference_steps=2),
        ):
            record("mass", "act_norms")
    finally:
        handle.remove()
    assert_clean(pipe, procs)


class Capture:
    """Records q, k, v and the SDPA output of each call of one attention module (outside the tracer)."""

    def __init__(self, module):
        self.calls = []
        self.outputs = []
        self.mode = None
        self.handles = [
            module.register_forward_pre_hook(self.pre),
            module.register_forward_hook(self.post, always_call=True),
        ]

    def handler(self, call):
        out = call.run_original()
        self.calls.append((call.q.clone(), call.k.clone(), call.v.clone(), call.scale, out.clone()))
        return out

    def pre(self, m, args):
        self.mode = SDPAInterceptor(self.handler)
        self.mode.__enter__()

    def post(self, m, args, output):
        self.mode.__exit__(None, None, None)
        self.outputs.append(output)

    def remove(self):
        for h in self.handles:
            h.remove()


def test_captured_qkv_reproduce_the_module_output_and_statistics_are_exact(pipe):
    site = 1
    attn = pipe.transformer.transformer_blocks[site].attn
    cap = Capture(attn)
    try:
        run_plain(pipe)
    finally:
        cap.remove()
    assert len(cap.calls) == STEPS  # exactly one kernel call per attention forward, one forward per step
    q, k, v, scale, sdpa_out = cap.calls[2]
    a = torch.softmax((q.double() @ k.double().transpose(-1, -2)) * scale, dim=-1)
    av = (a @ v.double()).float()
    torch.testing.assert_close(av, sdpa_out, rtol=1e-4, atol=1e-5)
    # A V through the module's own output projections reproduces the module's real output
    b, h, n, d = av.shape
    flat = av.transpose(1, 2).reshape(b, n, h * d)
    n_img = cap.outputs[2][0].shape[1]
    img = attn.to_out[0](flat[:, :n_img])
    txt = attn.to_add_out(flat[:, n_img:])
    torch.testing.assert_close(img, cap.outputs[2][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(txt, cap.outputs[2][1], rtol=1e-4, atol=1e-5)

    t, _ = run_traced(pipe, lambda: record(*ALL_STATS, layers="all", top=4, k=3))
    for step in range(STEPS):
        q, k, v, scale, out = cap.calls[step]
        a = torch.softmax((q.double() @ k.double().transpose(-1, -2)) * scale, dim=-1)  # (B, H, N, N)
        m = a.mean(dim=2)
        ent = (-(torch.special.xlogy(a, a)).sum(-1)).mean(-1)
        qtk = a.sort(-1, descending=True).values[..., :3].sum(-1).mean(-1)
        vals, idx = m.sort(-1, descending=True)
        got = t.stats.isel(step=step, call=0).sel(site=f"transformer_blocks.{site}.attn")
        for bi, branch in enumerate(["uncond", "cond"]):
            g = got.sel(branch=branch)
            np.testing.assert_allclose(g.max_mass.values, vals[bi, :, 0].numpy(), rtol=1e-5)
            np.testing.assert_array_equal(g.topk_keys.values, idx[bi, :, :4].numpy())
            np.testing.assert_allclose(g.topk_mass.values, vals[bi, :, :4].numpy(), rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(g.mass_per_key.values[:, : m.shape[-1]], m[bi].numpy(), rtol=1e-5, atol=1e-8)
            np.testing.assert_allclose(g.entropy.values, ent[bi].numpy(), rtol=1e-5)
            np.testing.assert_allclose(g.mass_topk.values, vals[bi, :, :3].sum(-1).numpy(), rtol=1e-5)
            np.testing.assert_allclose(g.query_topk.values, qtk[bi].numpy(), rtol=1e-5)
            norms = torch.linalg.vector_norm(out[bi].double(), dim=-1)  # (H, N) pre_out L2
            n_img = 256
            np.testing.assert_allclose(
                g.act_pre_max.sel(stream="image", norm_ord="2").values,
                norms[:, :n_img].amax(-1).numpy(),
                rtol=1e-5,
            )
            np.testing.assert_allclose(
                g.act_pre_p95.sel(stream="text", norm_ord="2").values,
                np.percentile(norms[:, n_img:].numpy(), 95, axis=-1),
                rtol=1e-5,
            )


def test_last_block_excludes_discarded_text_queries(pipe):
    t, _ = run_traced(pipe, lambda: record("mass", "act_norms", layers=1.0, queries="used"))
    last = t.stats.isel(site=0)
    assert str(last.site.values) == "transformer_blocks.3.attn"
    assert np.isnan(last.act_pre_max.sel(stream="text").values).all()
    assert np.isnan(last.act_post_max.sel(stream="text").values).all()
    assert np.isfinite(last.act_pre_max.sel(stream="image").values).all()
    t_used, _ = run_traced(pipe, lambda: record("mass", layers=3, queries="image"))
    np.testing.assert_array_equal(t_used.stats.max_mass.isel(site=0).values, last.max_mass.values)


def test_step_labels_timesteps_and_phase(pipe):
    t, _ = run_traced(pipe, lambda: record("entropy", layers="all"))
    ds = t.stats
    np.testing.assert_array_equal(ds.timestep.values, pipe.scheduler.timesteps.numpy())
    np.testing.assert_array_equal(ds.sigma.values, pipe.scheduler.sigmas[:STEPS].numpy())
    assert ds.t_over_T.values[0] == 0.0 and ds.t_over_T.values[-1] == 1.0
    assert np.isfinite(ds.entropy.values).all()


@pytest.mark.parametrize("s", [1, 2])
def test_statistics_at_step_s_describe_the_forward_of_step_s(pipe, s):
    base, _ = run_traced(pipe, lambda: record("entropy", "mass", layers="all"))

    def perturb(p, i, t, tensors):
        if i == s - 1:  # after step s-1: changes the input of the forward that runs step s
            tensors["latents"] = tensors["latents"] * 1.5
        return tensors

    with tracer.trace(
        pipe,
        "a photo of a red bench",
        seed=0,
        num_inference_steps=STEPS,
        output_type="pt",
        callback_on_step_end=perturb,
    ) as t:
        record("entropy", "mass", layers="all")
    before = base.stats.entropy.isel(step=slice(0, s)).values
    np.testing.assert_array_equal(t.stats.entropy.isel(step=slice(0, s)).values, before)
    assert not np.allclose(t.stats.entropy.isel(step=s).values, base.stats.entropy.isel(step=s).values)


def test_skip_layer_guidance_gets_its_own_call_label(pipe):
    t, _ = run_traced(
        pipe,
        lambda: record("mass", layers="all"),
        skip_guidance_layers=[1],
        skip_layer_guidance_start=0.0,
        skip_layer_guidance_stop=1.0,
    )
    ds = t.stats
    assert ds.sizes["call"] == 2
    mm = ds.max_mass
    assert np.isfinite(mm.sel(call=0).values).all()
    slg = mm.sel(call=1, branch="cond")
    ran = [s for s in range(STEPS) if s > 0 and s < STEPS]  # diffusers: i > T*start and i < T*stop
    assert np.isnan(mm.sel(call=1, branch="uncond").values).all()
    assert np.isnan(slg.sel(site="transformer_blocks.1.attn").values).all()  # the skipped block never ran
    for s in ran:
        assert np.isfinite(slg.isel(step=s).sel(site="transformer_blocks.0.attn").values).all()
    assert np.isnan(slg.isel(step=0).values).all()


def test_token_layout_flags(pipe):
    t, _ = run_traced(pipe, lambda: record("mass", layers=0))
    ds = t.stats.sel(layout="joint")
    cond = ds.sel(branch="cond")
    n_img = int((cond.key_modality == "image").sum())
    assert n_img == 256
    toks = [str(x) for x in cond.key_token_str.values[n_img : n_img + 8]]
    assert toks[:7] == ["<|startoftext|>", "a</w>", "photo</w>", "of</w>", "a</w>", "red</w>", "bench</w>"]
    assert bool(cond.key_is_bos.values[n_img]) and bool(cond.key_is_eos.values[n_img + 7])
    assert not cond.key_is_pad.values[n_img + 7] and cond.key_is_pad.values[n_img + 8 : n_img + 77].all()
    assert str(cond.key_token_str.values[n_img + 8]) == "<|endoftext|>"  # CLIP pads with its EOS token
    assert [int(cond.key_image_row.values[i]) for i in (0, 15, 16)] == [0, 0, 1]
    uncond = ds.sel(branch="uncond")  # the negative prompt "" is what the uncond rows attend to
    assert bool(uncond.key_is_eos.values[n_img + 1])
    enc = {str(e) for e in cond.key_encoder.values}
    assert enc == {"image", "CLIP-L/G", "T5"}


@pytest.mark.parametrize(
    "plan_fn, match",
    [
        (lambda: record("mass", layers=99), "unknown site index 99"),
        (lambda: record("mass", layers="blocks.x"), "unknown site name"),
        (lambda: record("mass", layers=1.5), "outside"),
        (lambda: record("bogus"), "unknown statistic"),
        (lambda: record("mass", queries="pixels"), "unknown query set"),
    ],
)
def test_bad_plans_fail_before_generation(pipe, plan_fn, match):
    calls = []
    handle = pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(PlanError, match=match), tracer.trace(pipe, "a cat", num_inference_steps=2):
            plan_fn()
    finally:
        handle.remove()
    assert calls == []


def test_unsupported_pipeline_and_bad_store(tmp_path):
    with pytest.raises(TypeError, match="supported: .*StableDiffusion3Pipeline"):
        tracer.trace(object(), "a cat")
    p = interp.pipelines.tiny("sd3")
    f = tmp_path / "file.zarr"
    f.write_text("not a store")
    with pytest.raises(ValueError, match="exists and is a file"):
        tracer.trace(p, "a cat", store=f)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="is a folder that is not an interp store"):
        tracer.trace(p, "a cat", store=tmp_path / "dir")


def test_bypassing_backend_is_refused(pipe):
    from diffusers.models.attention_processor import AttnProcessor, JointAttnProcessor2_0

    procs = pipe.transformer.attn_processors
    block = pipe.transformer.transformer_blocks[2].attn
    original = block.processor
    block.set_processor(AttnProcessor())
    try:
        with (
            pytest.raises(RuntimeError, match="does not call torch's scaled_dot_product_attention"),
            tracer.trace(pipe, "a cat", num_inference_steps=2),
        ):
            record("mass", layers=2)
    finally:
        block.set_processor(original)
    assert_clean(pipe, procs)

    class JointAttnProcessor2_0(JointAttnProcessor2_0):  # noqa: F811  same name, attention by hand
        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kw):
            import torch.nn.functional as F

            real = F.scaled_dot_product_attention

            def manual(q, k, v, **kwargs):
                return torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1) @ v

            F.scaled_dot_product_attention = manual
            try:
                return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask)
            finally:
                F.scaled_dot_product_attention = real

    block.set_processor(JointAttnProcessor2_0())
    try:
        with (
            pytest.raises(RuntimeError, match="called scaled_dot_product_attention 0 times"),
            tracer.trace(pipe, "a cat", num_inference_steps=2),
        ):
            record("mass", layers=2)
    finally:
        block.set_processor(original)
    assert_clean(pipe, procs)


def test_record_outside_trace_raises():
    with pytest.raises(RuntimeError, match="inside `with tracer.trace"):
        record("mass")


def test_records_of_one_site_share_one_statistics_call(pipe):
    """Two records at the same sites (disjoint statistics, same query set) give exactly the values of
    one record listing both: the observer computes them in one kernel call (``merged_requests``);
    records whose options conflict (``k``) are computed apart and still equal their own traces."""
    from interp.engine.observer import SiteRequest, merged_requests

    one, _ = run_traced(pipe, lambda: record("mass", "entropy", "mass_topk", layers="all", k=3))
    two, _ = run_traced(pipe, lambda: (record("mass", layers="all"), record("entropy", "mass_topk", layers="all", k=3)))
    for var in ("max_mass", "topk_keys", "topk_mass", "entropy", "mass_topk"):
        np.testing.assert_array_equal(two.stats[var].values, one.stats[var].values, err_msg=var)

    apart, _ = run_traced(pipe, lambda: (record("mass_topk", layers=[1], k=2), record("query_topk", layers=[1], k=4)))
    alone, _ = run_traced(pipe, lambda: record("query_topk", layers=[1], k=4))
    np.testing.assert_array_equal(apart.stats["query_topk"].values, alone.stats["query_topk"].values)

    recs = (record_obj("mass"), record_obj("entropy"), record_obj("mass_topk", k=2), record_obj("query_topk", k=4))
    req = SiteRequest(site=None, index=0, records=recs)  # type: ignore[arg-type]
    calls = merged_requests(req, [(r, ["after"]) for r in recs])
    assert len(calls) == 4  # mass_topk and query_topk disagree on k: nothing merges across that conflict
    calls = merged_requests(req, [(r, ["after"]) for r in recs[:3]])
    assert [(q, len(rs), sorted(m.stats)) for q, rs, m in calls] == [("used", 3, ["entropy", "mass", "mass_topk"])]
    assert calls[0][2].k == 2 and calls[0][2].top == 8


def record_obj(*stats, **kw):
    from interp.plan import Record

    return Record(stats=tuple(stats), **{"layers": "all", **kw})
