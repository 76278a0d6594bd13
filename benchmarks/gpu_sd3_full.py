"""Full-size SD3-medium on one GPU: plain, edited, observed, and a materialising baseline (issue 9).

What runs
---------
The real diffusers ``SD3Transformer2DModel`` with SD3-medium's configuration (24 joint blocks, 24 heads
of 64, joint_attention_dim 4096, caption_projection_dim 1536, pooled_projection_dim 2048, patch 2,
16 latent channels, sample_size 128, pos_embed_max_size 192), random weights, bf16, inside the real
``StableDiffusion3Pipeline`` of ``interp.pipelines.tiny("sd3")`` whose transformer it replaces. SD3
weights cannot be downloaded here, so the text encoders are not SD3's: the benchmark passes random
prompt embeddings of SD3's shapes (333 x 4096 per branch, pooled 2048; the prompt text only labels the
token layout) and asks for ``output_type="latent"`` (no VAE decode). The tiny VAE has a scale factor
of 2, so ``height = width = 256`` gives the 128 x 128 latent of a 1024 px SD3 image: 4096 image tokens
+ 333 text tokens per attention, CFG batch 2. Every traced case goes through ``tracer.trace`` (plan,
sites, step clock, observer, kernels, trace buffer, dataset), i.e. the code path users run.

Cases (one pipeline call each; "1 step" = one transformer forward with CFG batch 2):

- ``plain``: the pipeline, no hooks;
- ``edit1`` / ``edit3``: ``mask_topk(k=1)`` (per-head top-1 sink, eta = 0) on block 12 / blocks 6, 12, 18;
- ``observe_all``: ``record("mass", "entropy", "mass_topk", "act_norms", layers="all")``;
- ``observe_all_qtk``: the same plus ``query_topk`` (seeded 256-row subsample, ``kernels.gpu``);
- ``observe_all_edit1``: ``observe_all`` plus ``edit1``;
- (unedited calls reuse the forward's log-sum-exp: the observer runs each observed site's SDPA call
  through ``kernels.gpu.sdpa_with_lse``, bit-identical, so the statistics need one extra pass per layer);
- ``paper_edit1`` / ``paper_observe_all``: a materialising baseline equivalent to the paper's
  processor (fp32 softmax matrix per layer; statistics or the top-1 edit from it), installed with
  interp's site hooks so it runs on every block, the context-pre-only last one included;
- 28-step pipelines: ``plain``, ``observe_all``, ``observe_stats``, ``edit1``.

Cases are interleaved in rounds in one process; medians and ratios to ``plain`` of the same run; peak
GPU memory per case (``torch.cuda.max_memory_allocated``, reset before each call). A per-layer kernel
breakdown follows. ``--tiny --device cpu`` runs every case on a small model as a smoke test.

    python benchmarks/gpu_sd3_full.py --out OUTDIR      # results.json, results.md, written as it goes
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import SD3Transformer2DModel

import interp
from interp import mask_topk, record, tracer
from interp.kernels import gpu, triton_stats
from interp.kernels.cache import KernelCache
from interp.kernels.reference import StatRequest, activation_norms, attention_stats
from interp.sites.intercept import Installation, SiteHooks

CACHE = KernelCache()  # the kernel memo a trace's observer owns; one for the direct kernel timings here

SD3_MEDIUM = dict(
    sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64, num_attention_heads=24,
    joint_attention_dim=4096, caption_projection_dim=1536, pooled_projection_dim=2048, out_channels=16,
    pos_embed_max_size=192,
)  # fmt: skip
TINY = dict(SD3_MEDIUM, num_layers=3, num_attention_heads=2, caption_projection_dim=128, sample_size=32,
            pos_embed_max_size=48)  # fmt: skip
PROMPT = "a photo of a red bench"
OBSERVE = ("mass", "entropy", "mass_topk", "act_norms")
STATS = ("mass", "entropy", "mass_topk")  # without the norms: the statistics kernels alone


def build(device: str, dtype: torch.dtype, tiny: bool):
    pipe = interp.pipelines.tiny("sd3")
    cfg = TINY if tiny else SD3_MEDIUM
    torch.manual_seed(0)
    with torch.device(device):
        transformer = SD3Transformer2DModel(**cfg).to(dtype).eval()
    pipe.transformer = transformer
    pipe = pipe.to(device, dtype)
    latent = cfg["sample_size"]
    g = torch.Generator("cpu").manual_seed(1)
    emb = {
        name: torch.randn(*shape, generator=g).to(device, dtype)
        for name, shape in (
            ("prompt_embeds", (1, 333, 4096)),
            ("negative_prompt_embeds", (1, 333, 4096)),
            ("pooled_prompt_embeds", (1, 2048)),
            ("negative_pooled_prompt_embeds", (1, 2048)),
        )
    }
    px = latent * pipe.vae_scale_factor
    kw = dict(height=px, width=px, guidance_scale=5.0, max_sequence_length=256, output_type="latent", **emb)
    return pipe, kw, (latent // 2) ** 2


# --- the cases -----------------------------------------------------------------------------------
def run_plain(pipe, kw, steps):
    return pipe(generator=torch.Generator("cpu").manual_seed(0), num_inference_steps=steps, **kw).images


def run_traced(pipe, kw, steps, plan: Callable[[], None]):
    with tracer.trace(pipe, PROMPT, seed=0, num_inference_steps=steps, **kw) as t:
        plan()
    return t.output.images


def paper_handler(n_img: int, edit: bool, observe: bool, sink: list):
    """The paper's processor, in effect: the full fp32 softmax matrix of the layer, statistics over
    image queries from it, and (edit) the per-head top-1 key by image-query mass set to -inf."""

    def handler(call):
        q, k, v = call.q, call.k, call.v
        s = torch.matmul(q.float(), k.float().transpose(-1, -2)).mul_(call.scale)
        a = torch.softmax(s, dim=-1)
        ai = a[:, :, :n_img]
        mass = ai.mean(dim=-2)
        if observe:
            ent = -(ai * torch.log(ai.clamp_min(1e-30))).sum(-1).mean(-1)
            qtk = ai.topk(5, -1).values.sum(-1).mean(-1)
            sink.append((mass.max(-1).values, mass.topk(5, -1).values.sum(-1), ent, qtk))
        if edit:
            idx = mass.argmax(-1)[:, :, None, None].expand(-1, -1, s.shape[2], 1)
            a = torch.softmax(s.scatter_(-1, idx, float("-inf")), dim=-1)
        return torch.matmul(a, v.float()).to(q.dtype)

    return handler


def run_paper(pipe, kw, steps, n_img: int, layers: list[int], edit_layers: list[int]):
    sink: list = []
    with Installation() as inst:
        for i in sorted(set(layers) | set(edit_layers)):
            mod = pipe.transformer.transformer_blocks[i].attn
            inst.add_site(SiteHooks(f"transformer_blocks.{i}.attn", mod,
                                    paper_handler(n_img, i in edit_layers, i in layers, sink), None))  # fmt: skip
        return run_plain(pipe, kw, steps)


# --- timing --------------------------------------------------------------------------------------
def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str) -> tuple[float, float]:
    """(seconds, peak GiB) of one call; the peak is reset before it."""
    sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    fn()
    sync(device)
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return dt, peak


def kernel_breakdown(
    device: str, dtype: torch.dtype, n_img: int, heads: int, n_tok: int, errors: dict
) -> dict[str, float]:
    """Per-layer times (ms, median of CUDA-event timings) of the attention and the statistics passes."""
    from triton.testing import do_bench

    g = torch.Generator(device).manual_seed(0)
    q = torch.randn(2, n_tok, heads, 64, device=device, generator=g, dtype=dtype).transpose(1, 2)
    k = torch.randn(2, n_tok, heads, 64, device=device, generator=g, dtype=dtype).transpose(1, 2)
    v = torch.randn_like(k)
    rows = torch.arange(n_img, device=device)
    _, lse = gpu.sdpa_with_lse(q, k, v, scale=0.125, cache=CACHE)
    req = StatRequest(mass=True, entropy=True, mass_topk=True)
    key_bias = torch.zeros(2, heads, 1, n_tok, device=device)
    key_bias[..., 7] = float("-inf")
    cases = {
        "public SDPA (the layer's attention)": lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v),
        "sdpa_with_lse (same, + LSE)": lambda: gpu.sdpa_with_lse(q, k, v, scale=0.125, cache=CACHE),
        "triton row_lse pass": lambda: triton_stats.row_lse(q, k, scale=0.125, rows=rows),
        "triton stats pass (given LSE)": lambda: triton_stats.mass_entropy_sums(q, k, scale=0.125, rows=rows, lse=lse),
        "mass+entropy+mass_topk, triton, own LSE": lambda: gpu.gpu_stats(
            q, k, scale=0.125, query_rows=rows, request=req),
        "mass+entropy+mass_topk, triton, forward LSE": lambda: gpu.gpu_stats(
            q, k, scale=0.125, query_rows=rows, request=req, lse=lse),
        "same, per-key -inf bias (edit verification)": lambda: gpu.gpu_stats(
            q, k, scale=0.125, query_rows=rows, request=req, bias=key_bias),
        "mass+entropy, swapped-role fallback": lambda: gpu.gpu_stats(
            q, k, scale=0.125, query_rows=rows, request=req, opts=gpu.GPUOptions(backend="swapped")),
        "activation norms of the layer output (pre_out, 2 streams x 2 ords)": lambda: activation_norms(
            v, {"image": rows, "text": torch.arange(n_img, n_tok, device=device)}, ("2", "inf")),
        "query_topk, 256-row subsample": lambda: gpu.gpu_stats(
            q, k, scale=0.125, query_rows=rows, request=StatRequest(query_topk=True), cache=CACHE),
        "exact reference path (chunked fp32)": lambda: attention_stats(
            q, k, scale=0.125, query_rows=rows, request=req),
        "materialise fp32 QK^T softmax": lambda: torch.softmax(q.float() @ k.float().transpose(-1, -2) * 0.125, -1),
    }  # fmt: skip
    out = {}
    for name, fn in cases.items():
        try:
            out[name] = float(do_bench(fn, warmup=10, rep=40, return_mode="median"))
        except Exception as exc:
            errors[f"kernel {name}"] = repr(exc)[:500]
    return out


def tune_launch_configs(device: str, dtype: torch.dtype, n_img: int, heads: int, n_tok: int) -> dict:
    """Time a few block shapes of the two Triton kernels at this size; keep the fastest for the run."""
    from triton.testing import do_bench

    g = torch.Generator(device).manual_seed(0)
    q = torch.randn(2, n_tok, heads, 64, device=device, generator=g, dtype=dtype).transpose(1, 2)
    k = torch.randn(2, n_tok, heads, 64, device=device, generator=g, dtype=dtype).transpose(1, 2)
    lse = triton_stats.row_lse(q, k, scale=0.125)
    base = triton_stats.GPU_CONFIG
    stats_shapes = [(64, 128, 8, 3), (128, 128, 8, 3), (64, 64, 4, 3), (128, 64, 4, 3), (64, 128, 4, 3),
                    (128, 128, 8, 2)]  # fmt: skip
    lse_shapes = [(128, 64, 4, 3), (128, 128, 8, 3), (64, 64, 4, 3), (128, 32, 4, 3), (64, 128, 4, 3),
                  (128, 64, 8, 3)]  # fmt: skip
    out: dict = {"stats": {}, "lse": {}}
    for bm, bn, w, st in stats_shapes:
        triton_stats.GPU_CONFIG = dataclasses.replace(base, stats_block_m=bm, stats_block_n=bn, stats_warps=w,
                                                      stages=st)  # fmt: skip
        fn = lambda: triton_stats.mass_entropy_sums(q, k, scale=0.125, lse=lse)  # noqa: E731
        try:
            out["stats"][f"{bm}x{bn} w{w} s{st}"] = (float(do_bench(fn, warmup=5, rep=25, return_mode="median")),
                                                    (bm, bn, w, st))  # fmt: skip
        except Exception as exc:
            out["stats"][f"{bm}x{bn} w{w} s{st}"] = (float("inf"), repr(exc)[:200])
    for bm, bn, w, st in lse_shapes:
        triton_stats.GPU_CONFIG = dataclasses.replace(base, lse_block_m=bm, lse_block_n=bn, lse_warps=w, stages=st)
        fn = lambda: triton_stats.row_lse(q, k, scale=0.125)  # noqa: E731
        try:
            out["lse"][f"{bm}x{bn} w{w} s{st}"] = (float(do_bench(fn, warmup=5, rep=25, return_mode="median")),
                                                  (bm, bn, w, st))  # fmt: skip
        except Exception as exc:
            out["lse"][f"{bm}x{bn} w{w} s{st}"] = (float("inf"), repr(exc)[:200])
    sbm, sbn, sw, sst = min(out["stats"].values(), key=lambda t: t[0])[1]
    lbm, lbn, lw, _ = min(out["lse"].values(), key=lambda t: t[0])[1]
    triton_stats.GPU_CONFIG = dataclasses.replace(
        base, stats_block_m=sbm, stats_block_n=sbn, stats_warps=sw, stages=sst, lse_block_m=lbm, lse_block_n=lbn,
        lse_warps=lw)  # fmt: skip
    out["chosen"] = dataclasses.asdict(triton_stats.GPU_CONFIG)
    return out


def profile_case(fn: Callable[[], object], path: Path) -> None:
    """torch.profiler table of one call: where the GPU time and the host time go."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    avg = prof.key_averages()
    parts = []
    for key in ("self_device_time_total", "self_cuda_time_total", "self_cpu_time_total"):
        try:
            parts.append(f"== sorted by {key}\n" + avg.table(sort_by=key, row_limit=25, max_name_column_width=70))
        except Exception as exc:  # the key's name differs between torch versions
            parts.append(f"== {key}: {exc!r}")
    path.write_text("\n\n".join(parts))


def triton_self_check(device: str, dtype: torch.dtype) -> str:
    """Compare the fused kernels (all rows / a subset, with and without a -inf key bias) with the
    reference once; "ok" or the first failure."""
    g = torch.Generator(device).manual_seed(0)
    q, k = (torch.randn(2, 4, 300, 64, device=device, generator=g, dtype=dtype) for _ in range(2))
    bias = torch.zeros(2, 4, 1, 300, device=device)
    bias[..., 3] = float("-inf")
    req = StatRequest(mass_full=True, entropy=True)
    try:
        for rows in (torch.arange(300, device=device), torch.arange(0, 300, 3, device=device)):
            for b in (None, bias):
                got = gpu.gpu_stats(q, k, scale=0.125, query_rows=rows, request=req, bias=b,
                                    opts=gpu.GPUOptions(backend="triton"))  # fmt: skip
                ref = attention_stats(q, k, scale=0.125, query_rows=rows, request=req, bias=b)
                for name in ref:
                    torch.testing.assert_close(got[name], ref[name], rtol=1e-3, atol=2e-3)
        return "ok"
    except Exception as exc:
        return f"FAILED: {exc!r}"[:1500]


def lse_diagnostic(pipe, kw, layer: int) -> dict:
    """Which kernels give public SDPA's output bit for bit *for the processor's own q, k, v* (layout and
    strides as the site sees them), and which of them also return the log-sum-exp.

    One 1-step call with a capturing handler at ``layer``; then, on the captured tensors: the backend
    public SDPA picks, and for the cuDNN, flash and memory-efficient aten ops (asked for the LSE) and
    contiguous copies of the inputs, whether the output equals public SDPA's and the largest difference.
    """
    from torch.nn.attention import SDPBackend

    captured: dict = {}

    def handler(call):
        captured.update(q=call.q.clone(), k=call.k.clone(), v=call.v.clone(), scale=call.scale_arg)
        captured["strides"] = [tuple(t.stride()) for t in (call.q, call.k, call.v)]
        captured["q_view"], captured["k_view"], captured["v_view"] = call.q, call.k, call.v
        out = call.run_original()
        captured["out"] = out.clone()
        return out

    with Installation() as inst:
        inst.add_site(SiteHooks(f"transformer_blocks.{layer}.attn", pipe.transformer.transformer_blocks[layer].attn,
                                handler, None))  # fmt: skip
        run_plain(pipe, kw, 1)
    q, k, v, sc = captured["q_view"], captured["k_view"], captured["v_view"], captured["scale"]
    ref = captured["out"]
    choice = SDPBackend(int(torch._fused_sdp_choice(q, k, v, None, 0.0, False, scale=sc))).name
    res: dict = {"shape": list(q.shape), "strides": captured["strides"], "scale_arg": sc, "choice": choice}
    d = q.shape[-1]
    scale = sc if sc is not None else d**-0.5
    ops = {
        "cudnn_lse": lambda q, k, v: torch.ops.aten._scaled_dot_product_cudnn_attention(
            q, k, v, None, True, 0.0, False, False, scale=sc)[0],
        "cudnn_nolse": lambda q, k, v: torch.ops.aten._scaled_dot_product_cudnn_attention(
            q, k, v, None, False, 0.0, False, False, scale=sc)[0],
        "flash": lambda q, k, v: torch.ops.aten._scaled_dot_product_flash_attention(
            q, k, v, 0.0, False, False, scale=scale)[0],
        "efficient_lse": lambda q, k, v: torch.ops.aten._scaled_dot_product_efficient_attention(
            q, k, v, None, True, 0.0, False, scale=sc)[0],
        "public_again": lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=sc),
    }  # fmt: skip
    for layout, (qq, kk, vv) in (("as_seen", (q, k, v)), ("contiguous", (q.contiguous(), k.contiguous(),
                                                                          v.contiguous()))):  # fmt: skip
        for name, fn in ops.items():
            try:
                out = fn(qq, kk, vv)
                res[f"{layout}/{name}"] = {"equal": bool(torch.equal(out, ref)),
                                           "max_abs_diff": float((out.float() - ref.float()).abs().max())}  # fmt: skip
            except Exception as exc:
                res[f"{layout}/{name}"] = {"error": repr(exc)[:300]}
    res["sdpa_with_lse_verified"] = {str(key[0]) + " " + str(tuple(key[1])) + " " + str(key[4]): ok
                                     for key, ok in CACHE.lse_verified.items()}  # fmt: skip
    return res


def count_syncs(fn: Callable[[], object]) -> int:
    """Host-device synchronisations of one call, as CUDA's sync debug mode reports them (warnings)."""
    import warnings

    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def environment(device: str) -> dict[str, str]:
    env = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
        env["triton"] = __import__("triton").__version__
        q = torch.randn(2, 24, 4429, 64, device="cuda", dtype=torch.bfloat16)
        from torch.nn.attention import SDPBackend

        env["sdpa_backend_bf16"] = SDPBackend(torch._fused_sdp_choice(q, q, q)).name
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="small model (smoke test, e.g. on CPU)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rounds28", type=int, default=2)
    ap.add_argument("--steps", type=int, default=28)
    ap.add_argument("--out", type=Path, default=Path("out/gpu_sd3_full"))
    ap.add_argument("--tune", action="store_true", help="try a few Triton block shapes first (benchmarks/"
                    "triton_tune.py tries them all); default: the committed triton_stats.GPU_CONFIG")  # fmt: skip
    args = ap.parse_args()
    dev = args.device
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    args.out.mkdir(parents=True, exist_ok=True)
    t_build = time.perf_counter()
    pipe, kw, n_img = build(dev, dtype, args.tiny)
    n_layers = len(pipe.transformer.transformer_blocks)
    heads = pipe.transformer.config.num_attention_heads
    mid = n_layers // 2
    three = sorted({n_layers // 4, mid, (3 * n_layers) // 4})
    results: dict = {"env": environment(dev), "config": {"tiny": args.tiny, "layers": n_layers, "heads": heads,
                     "image_tokens": n_img, "text_tokens": 333, "batch": 2, "dtype": str(dtype),
                     "edit_layer": mid, "edit3_layers": three}, "build_s": time.perf_counter() - t_build}  # fmt: skip

    def save() -> None:
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
        (args.out / "results.md").write_text(markdown(results))

    all_layers = list(range(n_layers))
    cases1: dict[str, Callable[[], object]] = {
        "plain": lambda: run_plain(pipe, kw, 1),
        "edit1": lambda: run_traced(pipe, kw, 1, lambda: mask_topk(layer=mid, k=1)),
        "edit3": lambda: run_traced(pipe, kw, 1, lambda: mask_topk(layer=three, k=1)),
        "observe_all": lambda: run_traced(pipe, kw, 1, lambda: record(*OBSERVE, layers="all")),
        "observe_all_qtk": lambda: run_traced(pipe, kw, 1, lambda: record(*OBSERVE, "query_topk", layers="all")),
        "observe_all_edit1": lambda: run_traced(
            pipe, kw, 1, lambda: (record(*OBSERVE, layers="all"), mask_topk(layer=mid, k=1))),
        "observe_stats": lambda: run_traced(pipe, kw, 1, lambda: record(*STATS, layers="all")),
        "paper_edit1": lambda: run_paper(pipe, kw, 1, n_img, [], [mid]),
        "paper_observe_all": lambda: run_paper(pipe, kw, 1, n_img, all_layers, []),
    }  # fmt: skip
    results["errors"] = {}
    if dev == "cuda":
        base = triton_stats.GPU_CONFIG
        if args.tune:
            try:
                results["launch_configs"] = tune_launch_configs(dev, dtype, n_img, heads, n_img + 333)
            except Exception as exc:
                results["errors"]["tune_launch_configs"] = repr(exc)
            print("launch configs:", results.get("launch_configs"), flush=True)
        results["launch_config"] = dataclasses.asdict(triton_stats.GPU_CONFIG)
        results["triton_self_check"] = triton_self_check(dev, dtype)
        if results["triton_self_check"] != "ok" and base != triton_stats.GPU_CONFIG:
            triton_stats.GPU_CONFIG = base
            results["triton_self_check"] += "; back to the default launch shapes: " + triton_self_check(dev, dtype)
        if results["triton_self_check"] != "ok" and not results["triton_self_check"].endswith("ok"):
            gpu.DEFAULT_OPTIONS = gpu.GPUOptions(backend="swapped")
            results["triton_self_check"] += "; using the swapped-role fallback"
        print("triton self-check:", results["triton_self_check"], flush=True)
        save()
    # bit identity at full size: observation leaves the latents unchanged
    ref = run_plain(pipe, kw, 1)
    results["bit_identical"] = {}
    for name in ("observe_all",):
        try:
            results["bit_identical"][name] = bool(torch.equal(cases1[name](), ref))
        except Exception as exc:  # report, keep measuring the other cases
            results["errors"][name] = repr(exc)
    for name, fn in list(cases1.items()):  # warm-up (Triton compilation, allocator); drop failing cases
        try:
            fn()
        except Exception as exc:
            results["errors"][name] = repr(exc)
            del cases1[name]
        print("warm:", name, flush=True)
    save()
    if dev == "cuda":
        try:
            results["lse_diagnostic"] = lse_diagnostic(pipe, kw, mid)
        except Exception as exc:
            results["errors"]["lse_diagnostic"] = repr(exc)[:500]
        results["syncs_per_call"] = {}
        for name in ("plain", "observe_stats", "observe_all", "edit1"):
            if name in cases1:
                try:
                    results["syncs_per_call"][name] = count_syncs(cases1[name])
                except Exception as exc:
                    results["errors"][f"syncs {name}"] = repr(exc)[:300]
        print("lse diagnostic:", results.get("lse_diagnostic"), "\nsyncs:", results.get("syncs_per_call"), flush=True)
        save()
    times: dict[str, list[tuple[float, float]]] = {n: [] for n in cases1}
    for _ in range(args.rounds):
        for name, fn in cases1.items():
            times[name].append(timed(fn, dev))
        print("round done", flush=True)
    results["one_forward"] = summarise(times)
    save()
    print(markdown(results), flush=True)
    if dev == "cuda":
        results["kernels_ms"] = kernel_breakdown(dev, dtype, n_img, heads, n_img + 333, results["errors"])
        save()
        for name in ("observe_all", "observe_stats", "edit1"):
            if name in cases1:
                try:
                    profile_case(cases1[name], args.out / f"profile_{name}.txt")
                except Exception as exc:
                    results["errors"][f"profile_{name}"] = repr(exc)
        save()
    if args.rounds28 > 0:
        s = args.steps
        cases28 = {
            "plain": lambda: run_plain(pipe, kw, s),
            "observe_all": lambda: run_traced(pipe, kw, s, lambda: record(*OBSERVE, layers="all")),
            "observe_stats": lambda: run_traced(pipe, kw, s, lambda: record(*STATS, layers="all")),
            "edit1": lambda: run_traced(pipe, kw, s, lambda: mask_topk(layer=mid, k=1)),
        }  # fmt: skip
        times28: dict[str, list[tuple[float, float]]] = {n: [] for n in cases28}
        for name in list(cases28):
            if name in results["errors"] and name != "plain":
                del cases28[name], times28[name]
        for _ in range(args.rounds28):
            for name, fn in cases28.items():
                times28[name].append(timed(fn, dev))
            print("round done (28 steps)", flush=True)
        results["pipeline"] = summarise(times28)
        results["pipeline_steps"] = s
        save()
    print(markdown(results), flush=True)


def summarise(times: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, float]]:
    base = statistics.median(t for t, _ in times["plain"])
    base_peak = max(p for _, p in times["plain"])
    out = {}
    for name, ts in times.items():
        med = statistics.median(t for t, _ in ts)
        peak = max(p for _, p in ts)
        best = min(t for t, _ in ts)
        out[name] = {"median_ms": 1e3 * med, "ratio": med / base, "min_ms": 1e3 * best,
                     "min_ratio": best / min(t for t, _ in times["plain"]), "peak_gib": peak,
                     "peak_over_plain_gib": peak - base_peak, "all_ms": [1e3 * t for t, _ in ts]}  # fmt: skip
    return out


def markdown(res: dict) -> str:
    env, cfg = res["env"], res["config"]
    lines = [
        f"Machine: {env.get('gpu', env.get('cpu'))}; torch {env['torch']}, triton {env.get('triton', '-')}, "
        f"Python {env['python']}; public SDPA backend for these shapes: {env.get('sdpa_backend_bf16', '-')}.",
        f"Model: SD3-medium architecture{' (TINY smoke-test config)' if cfg['tiny'] else ''}, {cfg['layers']} "
        f"blocks x {cfg['heads']} heads, random weights, {cfg['dtype']}; {cfg['image_tokens']} image + "
        f"{cfg['text_tokens']} text tokens, CFG batch {cfg['batch']}; edited block {cfg['edit_layer']}, "
        f"three edited blocks {cfg['edit3_layers']}.",
    ]
    if "bit_identical" in res:
        lines.append(f"Latents bit-identical to plain when observing: {res['bit_identical']}.")
    if res.get("triton_self_check"):
        lines.append(f"Triton kernels vs reference at start: {res['triton_self_check']}.")
    if res.get("launch_config"):
        lines.append(f"Triton launch configuration: {res['launch_config']}.")
    if res.get("syncs_per_call"):
        lines.append(f"Host-device synchronisations per 1-step call (sync debug mode): {res['syncs_per_call']}.")
    if res.get("lse_diagnostic"):
        lines.append(f"Forward log-sum-exp diagnostic (block {cfg['edit_layer']}): {res['lse_diagnostic']}.")
    if res.get("errors"):
        lines.append(f"Errors: {res['errors']}")
    for key, title in (("one_forward", "One transformer forward (1-step pipeline call, latent output)"),
                       ("pipeline", f"{res.get('pipeline_steps', '')}-step pipeline (latent output)")):  # fmt: skip
        if key not in res:
            continue
        lines += ["", f"### {title}", "", "| case | median ms | ratio to plain | min ms | ratio of minima | peak GiB "
                  "| peak - plain GiB |", "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for name, r in res[key].items():
            lines.append(f"| {name} | {r['median_ms']:.1f} | {r['ratio']:.3f} | {r['min_ms']:.1f} "
                         f"| {r['min_ratio']:.3f} | {r['peak_gib']:.2f} "
                         f"| {r['peak_over_plain_gib']:+.2f} |")  # fmt: skip
    if "launch_configs" in res:
        lc = res["launch_configs"]
        lines += ["", "### Triton launch shapes tried (ms per pass, full size)", "",
                  "stats pass: " + ", ".join(f"{k} {v[0]:.3f}" for k, v in lc["stats"].items()),
                  "", "lse pass: " + ", ".join(f"{k} {v[0]:.3f}" for k, v in lc["lse"].items()),
                  "", f"chosen: {lc['chosen']}"]  # fmt: skip
    if "kernels_ms" in res:
        lines += ["", "### One layer's kernels (ms, median, CUDA events)", "", "| kernel | ms |", "|---|---:|"]
        lines += [f"| {name} | {ms:.3f} |" for name, ms in res["kernels_ms"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
