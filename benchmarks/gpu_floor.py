"""Every row of issue 20's table in one command: observation cost against the plain pipeline, per family.

What runs
---------
Real diffusers pipelines with random weights at real size (bf16 on CUDA), through ``tracer.trace`` (the
code path users run), each case interleaved with the plain pipeline of the same model in one process:

- SD3-medium (24 joint blocks, 24 heads x 64), 1024 px (4096 image + 333 text tokens), CFG batch 2:
  mass + entropy on all layers; + mass_topk; + act_norms; one edited layer (``mask_topk(layer=12, k=1)``);
  peak GPU memory of each;
- SDXL-base UNet (70 transformer blocks, 140 attention sites), 1024 px, CFG: mass + entropy on all
  attention layers; mass + entropy + mass_topk ("all three statistics"); + act_norms;
- FLUX.1-dev transformer (19 double + 38 single blocks, 24 heads x 128), 512 px by default (1024
  image + 512 text tokens; the ratio is per step), no CFG (guidance-distilled): mass + entropy on all layers;
- compiled SD3 (every block's ``module.compile()``, regional; ``--full-compile``: the transformer's):
  the compiled plain pipeline against traces of the compiled model (``sites.routed``): mass + entropy on
  all layers, and everything (+ mass_topk + act_norms at pre_out; post_out is refused when compiled),
  each checked bit-identical to the compiled plain output.

SD3 and SDXL weights cannot be downloaded here, so the text encoders are the built-in tiny ones and
the benchmark passes random prompt embeddings of the real shapes (the prompt text only labels the
token layout) and asks for latents (no VAE decode). The built-in VAE has a scale factor of 2, so
``height = width = 256`` gives the 128 x 128 latent of a 1024 px image. SDXL's pooled text embedding
is 32 wide (the built-in CLIP-G projection) instead of 1280, which changes only the input width of
one small linear layer of the added time embedding.

Per case: medians and minima of ``--repeats`` timed calls (after one warm-up), ratios of medians and
of minima to the plain pipeline, the spread ((max - min) / median), peak GPU memory (reset before each
call), and a per-step profile: wall time, process CPU time (``time.process_time``, all host threads)
and GPU busy time (sum of the kernels' device time under ``torch.profiler``), so a case whose CPU time
per step reaches its GPU time is host-bound. Latents of a traced call are compared bit for bit with
the plain pipeline's (``bit_identical``). A time budget (``--budget``) skips what would not fit and
says so in the results.

    timeout 330 python benchmarks/gpu_floor.py --out OUTDIR           # CUDA, full size
    python benchmarks/gpu_floor.py --tiny --out OUTDIR                # CPU smoke test, built-in pipelines

``--tiny`` runs every row on CPU with the built-in tiny pipelines (fp32, one step, two repeats, one
thread, their own text encoders, the compiled row with the ``eager`` dynamo backend) in under two
minutes on an idle core.
Results: ``OUTDIR/RESULTS-gpu.md`` and ``OUTDIR/results.json`` (rewritten after every family), and
``OUTDIR/profile_<case>.txt`` (torch.profiler tables, CUDA only).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import interp
from interp import mask_topk, record, tracer

PROMPT = "a photo of a red bench"
ME = ("mass", "entropy")
ME_TOPK = ("mass", "entropy", "mass_topk")
ME_TOPK_NORMS = ("mass", "entropy", "mass_topk", "act_norms")

SD3_MEDIUM = dict(
    sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64, num_attention_heads=24,
    joint_attention_dim=4096, caption_projection_dim=1536, pooled_projection_dim=2048, out_channels=16,
    pos_embed_max_size=192,
)  # fmt: skip
SDXL_BASE = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=6 * 256 + 32, norm_num_groups=32,
)  # fmt: skip
FLUX_DEV = dict(
    patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128, num_attention_heads=24,
    joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56),
)  # fmt: skip


@dataclass
class Model:
    """A pipeline ready to call: ``kw`` are the call's keyword arguments (embeddings, size, output)."""

    name: str
    pipe: Any
    kw: dict[str, Any]
    steps: int
    description: str


@dataclass
class Case:
    """One row: a plan (None: the plain pipeline) and the issue's target ratio."""

    label: str
    plan: Callable[[], object] | None
    target: float | None = None
    key: str = ""
    compiled: bool = False
    result: dict[str, Any] = field(default_factory=dict)


# --- models --------------------------------------------------------------------------------------
def _random(shape: tuple[int, ...], device: str, dtype: torch.dtype, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator("cpu").manual_seed(seed)).to(device, dtype)


def build_sd3(device: str, dtype: torch.dtype, tiny: bool, steps: int) -> Model:
    pipe = interp.pipelines.tiny("sd3")
    if tiny:
        kw = interp.pipelines.tiny_call_kwargs("sd3") | {"output_type": "latent"}
        kw.pop("num_inference_steps", None)
        return Model("sd3", pipe.to(device), kw, steps, "built-in tiny SD3 (fp32), its own text encoders")
    from diffusers import SD3Transformer2DModel

    with torch.device(device), _default_dtype(dtype):
        torch.manual_seed(0)
        pipe.transformer = SD3Transformer2DModel(**SD3_MEDIUM).eval()
    pipe = pipe.to(device, dtype)
    kw = dict(height=256, width=256, guidance_scale=5.0, max_sequence_length=256, output_type="latent")
    shapes = {"prompt_embeds": (1, 333, 4096), "negative_prompt_embeds": (1, 333, 4096),
              "pooled_prompt_embeds": (1, 2048), "negative_pooled_prompt_embeds": (1, 2048)}  # fmt: skip
    kw |= {n: _random(s, device, dtype, i) for i, (n, s) in enumerate(shapes.items())}
    return Model("sd3", pipe, kw, steps, "SD3-medium transformer, 1024 px (4096 + 333 tokens), CFG, bf16")


def build_sdxl(device: str, dtype: torch.dtype, tiny: bool, steps: int) -> Model:
    pipe = interp.pipelines.tiny("sdxl")
    if tiny:
        kw = interp.pipelines.tiny_call_kwargs("sdxl") | {"output_type": "latent"}
        kw.pop("num_inference_steps", None)
        return Model("sdxl", pipe.to(device), kw, steps, "built-in tiny SDXL (fp32), its own text encoders")
    from diffusers import UNet2DConditionModel

    with torch.device(device), _default_dtype(dtype):
        torch.manual_seed(0)
        pipe.unet = UNet2DConditionModel(**SDXL_BASE).eval()
    pipe = pipe.to(device, dtype)
    kw = dict(height=256, width=256, guidance_scale=5.0, output_type="latent")
    shapes = {"prompt_embeds": (1, 77, 2048), "negative_prompt_embeds": (1, 77, 2048),
              "pooled_prompt_embeds": (1, 32), "negative_pooled_prompt_embeds": (1, 32)}  # fmt: skip
    kw |= {n: _random(s, device, dtype, 10 + i) for i, (n, s) in enumerate(shapes.items())}
    return Model("sdxl", pipe, kw, steps, "SDXL-base UNet, 1024 px (128x128 latent), CFG, bf16")


def build_flux(device: str, dtype: torch.dtype, tiny: bool, steps: int, px: int) -> Model:
    pipe = interp.pipelines.tiny("flux")
    if tiny:
        kw = interp.pipelines.tiny_call_kwargs("flux") | {"output_type": "latent"}
        kw.pop("num_inference_steps", None)
        return Model("flux", pipe.to(device), kw, steps, "built-in tiny Flux (fp32), its own text encoders")
    from diffusers import FluxTransformer2DModel

    with torch.device(device), _default_dtype(dtype):
        torch.manual_seed(0)
        pipe.transformer = FluxTransformer2DModel(**FLUX_DEV).eval()
    pipe = pipe.to(device, dtype)
    side = px // 8 * pipe.vae_scale_factor  # the real model's latent (px / 8) with the built-in VAE's factor
    kw = dict(height=side, width=side, guidance_scale=3.5, max_sequence_length=512, output_type="latent")
    kw |= {"prompt_embeds": _random((1, 512, 4096), device, dtype, 20),
           "pooled_prompt_embeds": _random((1, 768), device, dtype, 21)}  # fmt: skip
    tokens = (px // 16) ** 2
    return Model("flux", pipe, kw, steps, f"FLUX.1-dev transformer, {px} px ({tokens} + 512 tokens), no CFG, bf16")


class _default_dtype:
    """Construct parameters directly in ``dtype`` (a 12B model in fp32 first would need 48 GB)."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype, self.old = dtype, torch.get_default_dtype()

    def __enter__(self) -> None:
        torch.set_default_dtype(self.dtype)

    def __exit__(self, *exc: object) -> None:
        torch.set_default_dtype(self.old)


def denoiser(model: Model) -> torch.nn.Module:
    return model.pipe.unet if model.name == "sdxl" else model.pipe.transformer


# --- calls and timing ----------------------------------------------------------------------------
def call(model: Model, case: Case, steps: int) -> Any:
    if case.plan is None:
        text = {} if "prompt_embeds" in model.kw else {"prompt": PROMPT}
        out = model.pipe(generator=torch.Generator("cpu").manual_seed(0), num_inference_steps=steps, **text, **model.kw)
        return out.images
    with tracer.trace(model.pipe, PROMPT, seed=0, num_inference_steps=steps, **model.kw) as t:
        case.plan()
    return t.output.images


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str) -> dict[str, float]:
    """Wall seconds, process CPU seconds and peak GiB of one call (the peak is reset before it)."""
    sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    sync(device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return {"wall": wall, "cpu": cpu, "peak": peak}


def gpu_busy(fn: Callable[[], object], path: Path | None) -> float:
    """Seconds of GPU kernel time of one call (torch.profiler); writes the op tables to ``path``."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    spans = sorted((e.time_range.start, e.time_range.end) for e in prof.events() if e.device_type == DeviceType.CUDA)
    busy_us, end = 0.0, float("-inf")
    for start, stop in spans:  # the union of the device events' intervals (overlaps counted once)
        if stop > end:
            busy_us += stop - max(start, end)
            end = stop
    if path is not None:
        avg = prof.key_averages()
        parts = []
        for key in ("self_device_time_total", "self_cpu_time_total"):
            try:
                parts.append(f"== sorted by {key}\n" + avg.table(sort_by=key, row_limit=20, max_name_column_width=60))
            except Exception as exc:  # the key's name differs between torch versions
                parts.append(f"== {key}: {exc!r}")
        path.write_text("\n\n".join(parts))
    return busy_us * 1e-6


def summarise(runs: list[dict[str, float]], plain: list[dict[str, float]], steps: int) -> dict[str, Any]:
    walls = [r["wall"] for r in runs]
    base = [r["wall"] for r in plain]
    med = statistics.median(walls)
    return {
        "median_ms": 1e3 * med,
        "min_ms": 1e3 * min(walls),
        "ratio_median": med / statistics.median(base),
        "ratio_min": min(walls) / min(base),
        "spread": (max(walls) - min(walls)) / med,
        "peak_gib": max(r["peak"] for r in runs),
        "peak_over_plain_gib": max(r["peak"] for r in runs) - max(r["peak"] for r in plain),
        "wall_ms_per_step": 1e3 * med / steps,
        "cpu_ms_per_step": 1e3 * statistics.median(r["cpu"] for r in runs) / steps,
        "all_ms": [1e3 * w for w in walls],
        "repeats": len(walls),
    }


class Budget:
    def __init__(self, seconds: float) -> None:
        self.t0, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.t0)


def run_family(
    model: Model, cases: list[Case], args: argparse.Namespace, budget: Budget, results: dict, save: Callable
) -> None:
    """Warm up, check bit identity, time the cases interleaved with plain, profile each once."""
    dev = args.device
    fam = results["families"].setdefault(model.name, {"model": model.description, "steps": model.steps, "cases": {}})
    plain = Case("plain", None, key=f"{model.name}/plain")
    todo = [plain, *cases]
    for c in list(todo):  # warm-up; a failing case is reported and dropped
        try:
            t = timed(lambda c=c: call(model, c, model.steps), dev)
            c.result["warm_s"] = t["wall"]
        except Exception as exc:
            c.result["error"] = f"{type(exc).__name__}: {exc}"[:800]
            traceback.print_exc()
            todo.remove(c)
        print(f"[{model.name}] warm {c.label}: {c.result}", flush=True)
    if plain not in todo:
        fam["error"] = plain.result.get("error")
        return
    try:  # observation leaves the latents unchanged (first traced case, 2 steps)
        first = next(c for c in todo if c.plan is not None and not c.compiled)
        fam["bit_identical"] = {first.label: bool(torch.equal(call(model, plain, 2), call(model, first, 2)))}
    except StopIteration:
        pass
    # how many rounds fit: each round runs every case once
    per_round = sum(c.result["warm_s"] for c in todo)
    rounds = args.repeats
    if budget.left() < per_round * (rounds + 1) + 5:
        rounds = max(1, min(args.repeats, int((budget.left() - 5) / max(per_round, 1e-3)) - 1))
        fam["note"] = f"{rounds} repeats instead of {args.repeats} (time budget)"
    runs: dict[str, list[dict[str, float]]] = {c.label: [] for c in todo}
    for _ in range(rounds):
        for c in todo:
            runs[c.label].append(timed(lambda c=c: call(model, c, model.steps), dev))
    for c in todo:
        c.result.update(summarise(runs[c.label], runs["plain"], model.steps))
        if dev == "cuda" and budget.left() > per_round + 5:
            path = args.out / f"profile_{model.name}_{c.label.replace(' ', '_').replace('+', '_')}.txt"
            n = min(2, model.steps)  # the profiler's own cost grows with the events: profile two steps
            busy = gpu_busy(lambda c=c, n=n: call(model, c, n), path)
            c.result["gpu_ms_per_step"] = 1e3 * busy / n
        fam["cases"][c.label] = {**c.result, "target": c.target, "key": c.key}
    save()


# --- the report ----------------------------------------------------------------------------------
def markdown(res: dict) -> str:
    env = res["env"]
    lines = [
        "# Issue 20: observation cost against the plain pipeline",
        "",
        f"Machine: {env.get('gpu', env.get('cpu'))}; torch {env['torch']}, Python {env['python']}; "
        f"{'TINY smoke test (built-in pipelines, CPU)' if res['tiny'] else 'random weights at real size'}. "
        f"Command: `{res['command']}`. Wall {res.get('wall_s', 0):.0f} s.",
        "",
        "Ratios: median traced / median plain, and min / min, of the same process's interleaved runs; spread = "
        "(max - min) / median of the traced case; peak = peak GPU memory minus the plain pipeline's.",
        "",
        "| case | steps | plain ms | traced ms | ratio (medians) | ratio (minima) | spread | peak - plain GiB "
        "| target | met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    profile = [
        "",
        "## Per-step profile (wall and CPU: median timed call / steps; GPU busy: a profiled 2-step call / 2)",
        "",
        "Host-bound when CPU time per step reaches GPU busy time per step.",
        "",
        "| case | wall ms/step | CPU ms/step | GPU busy ms/step |",
        "|---|---:|---:|---:|",
    ]
    for name, fam in res["families"].items():
        plain = fam["cases"].get("plain", {})
        for label, r in fam["cases"].items():
            gpu_ms = r.get("gpu_ms_per_step")
            if "median_ms" in r:
                profile.append(
                    f"| {name}: {label} | {r['wall_ms_per_step']:.1f} | {r['cpu_ms_per_step']:.1f} | "
                    + (f"{gpu_ms:.1f} |" if gpu_ms is not None else "- |")
                )
            if label == "plain":
                continue
            if "error" in r or "median_ms" not in r:
                msg = r.get("error", "not run").replace("|", "/").replace("\n", " ")
                lines.append(f"| {name}: {label} | {fam['steps']} | | | {msg} | | | | {r.get('target') or ''} | no |")
                continue
            tgt = r.get("target")
            met = "" if tgt is None else ("yes" if r["ratio_median"] <= tgt else "no")
            lines.append(
                f"| {name}: {label} | {fam['steps']} | {plain.get('median_ms', float('nan')):.1f} | "
                f"{r['median_ms']:.1f} | {r['ratio_median']:.3f} | {r['ratio_min']:.3f} | {100 * r['spread']:.1f}% | "
                f"{r['peak_over_plain_gib']:+.2f} | {'' if tgt is None else f'<= {tgt:.2f}'} | {met} |"
            )
        peaks = [v for r in fam["cases"].values() if (v := r.get("peak_over_plain_gib")) is not None and v == v]
        if name == "sd3" and peaks:
            ok = "yes" if max(peaks) <= 0.5 else "no"
            lines.append(f"| sd3: peak GPU memory, worst case | | | | | | | {max(peaks):+.2f} | <= +0.50 | {ok} |")
        comp = fam.get("compiled", {})
        base = comp.get("compiled_plain_median_ms")
        for label, tgt in (("mass+entropy", None), ("everything", 1.20)):
            r = comp.get(f"compiled_trace_{label}_vs_compiled_plain")
            if r is None or base is None:
                continue
            same = comp.get("bit_identical_everything" if label == "everything" else "bit_identical_to_compiled_plain")
            trace_ms = statistics.median(comp[f"compiled_trace_{label}_all_ms"])
            min_r = comp[f"compiled_trace_{label}_vs_compiled_plain_min"]
            met = "" if tgt is None else ("yes" if r <= tgt else "no")
            lines.append(
                f"| {name}: compiled trace, {label} all layers (vs compiled plain; bit-identical: {same}) | "
                f"{fam['steps']} | {base:.1f} | {trace_ms:.1f} | {r:.3f} | {min_r:.3f} | | | "
                f"{'' if tgt is None else f'<= {tgt:.2f}'} | {met} |"
            )
        for extra in ("compiled", "bit_identical", "note", "error"):
            if extra in fam:
                lines.append(f"| {name}: {extra} | {json.dumps(fam[extra])[:600].replace('|', '/')} |||||||||")
    lines += profile
    lines += ["", "## Models", ""] + [f"- {n}: {f['model']}, {f['steps']} steps" for n, f in res["families"].items()]
    if res.get("skipped"):
        lines += ["", f"Skipped (time budget or errors): {res['skipped']}"]
    return "\n".join(lines) + "\n"


def environment(device: str) -> dict[str, str]:
    env = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    else:
        env["cpu"] = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)"
    return env


# --- main ----------------------------------------------------------------------------------------
def sd3_cases(n_layers: int) -> list[Case]:
    mid = n_layers // 2
    return [
        Case("mass+entropy all", lambda: record(*ME, layers="all"), 1.15, "sd3/me"),
        Case("+ mass_topk", lambda: record(*ME_TOPK, layers="all"), 1.20, "sd3/me_topk"),
        Case("+ act_norms", lambda: record(*ME_TOPK_NORMS, layers="all"), 1.30, "sd3/me_topk_norms"),
        Case(f"mask_topk(layer={mid}, k=1)", lambda: mask_topk(layer=mid, k=1), 1.02, "sd3/edit1"),
    ]


def compiled_rows(model: Model, args: argparse.Namespace, budget: Budget, results: dict, save: Callable) -> None:
    """Compile the denoiser in place; time compiled plain against eager plain and traces of the compiled
    model (mass + entropy, everything), each checked bit-identical to the compiled plain output."""
    dev = args.device
    fam = results["families"].setdefault("sd3", {"model": model.description, "steps": model.steps, "cases": {}})
    info: dict[str, Any] = {"status": "compiling (if this stays, the run ended during compilation)"}
    fam["compiled"] = info
    save()
    den = denoiser(model)
    backend = "eager" if args.tiny else "inductor"
    t0 = time.perf_counter()
    if not args.full_compile:  # regional compilation: one graph serves every block (faster to compile)
        for block in den.transformer_blocks:
            block.compile(backend=backend)
        info["how"] = f"transformer_blocks[i].compile(backend={backend!r}) for every block (regional)"
    else:
        den.compile(backend=backend)
        info["how"] = f"module.compile(backend={backend!r})"
    plain = Case("plain", None)
    try:
        call(model, plain, model.steps)  # compiles
        info["compile_and_first_call_s"] = time.perf_counter() - t0
        info["status"] = "compiled"
        traced = Case("trace", lambda: record(*ME, layers="all"))
        everything = Case("trace", lambda: record(*ME_TOPK_NORMS, layers="all", where="pre_out"))
        ref = None
        try:
            ref = call(model, plain, model.steps)
            out = call(model, traced, model.steps)  # compiles the traced graphs (the route, sites.routed)
            info["trace_of_compiled"] = "ran"
            info["bit_identical_to_compiled_plain"] = bool(torch.equal(out, ref))
        except Exception as exc:
            info["trace_of_compiled"] = f"refused: {type(exc).__name__}: {exc}"[:700]
        rounds = args.repeats if budget.left() > 10 else 1
        runs = [timed(lambda: call(model, plain, model.steps), dev) for _ in range(rounds)]
        walls = [1e3 * r["wall"] for r in runs]
        info["compiled_plain_median_ms"] = statistics.median(walls)
        info["compiled_plain_all_ms"] = walls
        eager = fam["cases"].get("plain", {}).get("median_ms")
        me = fam["cases"].get("mass+entropy all", {}).get("median_ms")
        if eager:
            info["compiled_plain_vs_eager_plain"] = info["compiled_plain_median_ms"] / eager
        if me:
            info["eager_trace_vs_compiled_plain"] = me / info["compiled_plain_median_ms"]
        if info["trace_of_compiled"] == "ran":
            for label, case in (("mass+entropy", traced), ("everything", everything)):
                if budget.left() < 5:
                    break
                if label == "everything":
                    out = call(model, case, model.steps)  # compiles the variant with module outputs
                    info["bit_identical_everything"] = bool(torch.equal(out, ref))
                tr = [1e3 * timed(lambda c=case: call(model, c, model.steps), dev)["wall"] for _ in range(rounds)]
                info[f"compiled_trace_{label}_all_ms"] = tr
                info[f"compiled_trace_{label}_vs_compiled_plain"] = (
                    statistics.median(tr) / info["compiled_plain_median_ms"]
                )
                info[f"compiled_trace_{label}_vs_compiled_plain_min"] = min(tr) / min(walls)
                save()
    except Exception as exc:
        info["error"] = f"{type(exc).__name__}: {exc}"[:800]
        traceback.print_exc()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tiny", action="store_true", help="every row on CPU with the built-in tiny pipelines")
    ap.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per case (default 3; --tiny: 2)")
    ap.add_argument("--sd3-steps", type=int, default=10, help="the issue's 28; the ratio is per step")
    ap.add_argument("--sdxl-steps", type=int, default=8)
    ap.add_argument("--flux-steps", type=int, default=8)
    ap.add_argument("--flux-px", type=int, default=512)
    ap.add_argument("--budget", type=float, default=290.0, help="seconds; later rows are skipped past it")
    ap.add_argument("--families", default="sd3,sdxl,flux,compiled")
    ap.add_argument("--full-compile", action="store_true", help="module.compile() instead of repeated blocks")
    args = ap.parse_args(argv)
    args.device = args.device or ("cpu" if args.tiny else "cuda")
    if args.tiny:  # a smoke test of every row: one step, two repeats, one thread
        args.sd3_steps = args.sdxl_steps = args.flux_steps = 1
        torch.set_num_threads(1)
    args.repeats = args.repeats or (2 if args.tiny else 3)
    dev = args.device
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    args.out.mkdir(parents=True, exist_ok=True)
    budget = Budget(args.budget)
    results: dict[str, Any] = {
        "env": environment(dev),
        "tiny": args.tiny,
        "command": "python " + " ".join(sys.argv if argv is None else ["benchmarks/gpu_floor.py", *argv]),
        "families": {},
        "skipped": [],
    }

    def save() -> None:
        results["wall_s"] = budget.seconds - budget.left()
        (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
        (args.out / "RESULTS-gpu.md").write_text(markdown(results))

    wanted = args.families.split(",")
    need = {"sd3": 45, "sdxl": 40, "flux": 60, "compiled": 60}  # seconds a family needs at least (full size)
    model: Model | None = None
    for fam in [f for f in ("sd3", "sdxl", "flux", "compiled") if f in wanted]:
        if not args.tiny and budget.left() < need[fam]:
            results["skipped"].append(f"{fam} ({budget.left():.0f} s left)")
            continue
        model = None  # free the previous model before building the next
        gc.collect()
        if dev == "cuda":
            torch.cuda.empty_cache()
        try:
            t0 = time.perf_counter()
            cases: list[Case] = []
            if fam in ("sd3", "compiled"):
                model = build_sd3(dev, dtype, args.tiny, args.sd3_steps)
                cases = sd3_cases(len(model.pipe.transformer.transformer_blocks)) if fam == "sd3" else []
            elif fam == "sdxl":
                model = build_sdxl(dev, dtype, args.tiny, args.sdxl_steps)
                cases = [
                    Case("mass+entropy all", lambda: record(*ME, layers="all"), 1.35, "sdxl/me"),
                    Case("all three (+ mass_topk)", lambda: record(*ME_TOPK, layers="all"), 1.45, "sdxl/me_topk"),
                    Case("+ act_norms", lambda: record(*ME_TOPK_NORMS, layers="all"), None, "sdxl/me_topk_norms"),
                ]
            else:
                model = build_flux(dev, dtype, args.tiny, args.flux_steps, args.flux_px)
                cases = [Case("mass+entropy all", lambda: record(*ME, layers="all"), 1.20, "flux/me")]
            print(f"built {fam} in {time.perf_counter() - t0:.1f} s", flush=True)
            if fam == "compiled":
                compiled_rows(model, args, budget, results, save)
            else:
                results["families"][fam] = {"model": model.description, "steps": model.steps, "cases": {}}
                results["families"][fam]["build_s"] = time.perf_counter() - t0
                run_family(model, cases, args, budget, results, save)
        except Exception as exc:
            results["families"].setdefault(fam, {"cases": {}, "steps": 0, "model": fam})["error"] = (
                f"{type(exc).__name__}: {exc}"[:800]
            )
            traceback.print_exc()
        save()
        print(markdown(results), flush=True)
    save()
    print(f"wrote {args.out / 'RESULTS-gpu.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
