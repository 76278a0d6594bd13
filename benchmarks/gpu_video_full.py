"""Full-size video DiTs on one GPU: Wan 2.1 1.3B, CogVideoX-2b, HunyuanVideo 1.5; plain vs observed vs edited.

What runs
---------
The real diffusers transformers at their published sizes with random weights, bf16, inside the real
pipelines of ``interp.pipelines.tiny("wan")`` / ``tiny("cogvideox")`` whose transformer they replace:

- Wan 2.1 T2V 1.3B: ``WanTransformer3DModel`` (30 blocks, 12 heads of 128, ffn 8960, text_dim 4096,
  patch 1 x 2 x 2), UMT5-xxl-shaped prompt embeddings (512 x 4096 per branch), CFG as two calls per step;
- CogVideoX-2b: ``CogVideoXTransformer3DModel`` (30 blocks, 30 heads of 64, text 226 x 4096, patch 2,
  sinusoidal positions), CFG batch 2;
- HunyuanVideo 1.5 480p T2V: ``HunyuanVideo15Transformer3DModel`` (54 blocks, 16 heads of 128; context of
  729 masked image slots, 256 ByT5 and 1000 Qwen positions, masked per prompt), guider CFG as two calls.

The text encoders are not the real ones (no download): random prompt embeddings of the real shapes are
passed (the prompt text only labels the token layout), with ``output_type="latent"`` (no VAE decode).
The tiny VAEs have the real compression (8x spatial, 4x temporal), so ``height``, ``width`` and
``num_frames`` give the real token counts: by default 480 x 832 px x 33 frames for Wan (9 latent frames of
30 x 52 = 14,040 video tokens) and 480 x 720 px x 25 frames for CogVideoX (7 x 30 x 45 = 9,450 + 226).

Cases (one pipeline call each, interleaved in rounds, medians; ratios to ``plain`` of the same run; peak
GPU memory per case with ``torch.cuda.max_memory_allocated`` reset before each call):

- ``plain``: the pipeline, no hooks;
- ``observe_all``: ``record("mass", "entropy", "mass_topk", "act_norms", layers="all")``;
- ``edit1``: ``mask_topk(layer=0.5, k=1)`` (per-head top-1 key at mid depth, eta = 0).

``observe_all``'s latents are compared with ``plain``'s bit for bit (``bit_identical``).
``--tiny --device cpu`` runs every case on the built-in tiny transformers as a smoke test.

    python benchmarks/gpu_video_full.py --out OUTDIR      # results.json, results.md, written as it goes
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import CogVideoXTransformer3DModel, HunyuanVideo15Transformer3DModel, WanTransformer3DModel

import interp
from interp import mask_topk, record, tracer
from interp.adapters.hunyuanvideo15 import byt5_layout, qwen_layout

PROMPT = "a cat walking on the grass"
FULL = {
    "wan-1.3b": {
        "tiny": "wan",
        "transformer": lambda: WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=12,
            attention_head_dim=128,
            in_channels=16,
            out_channels=16,
            text_dim=4096,
            freq_dim=256,
            ffn_dim=8960,
            num_layers=30,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            eps=1e-6,
        ),
        "text": (512, 4096),
        "call": {"height": 480, "width": 832, "num_frames": 33, "guidance_scale": 5.0},
    },
    "cogvideox-2b": {
        "tiny": "cogvideox",
        "transformer": lambda: CogVideoXTransformer3DModel(
            num_attention_heads=30,
            attention_head_dim=64,
            in_channels=16,
            out_channels=16,
            time_embed_dim=512,
            text_embed_dim=4096,
            num_layers=30,
            sample_width=90,
            sample_height=60,
            sample_frames=49,
            patch_size=2,
            temporal_compression_ratio=4,
            max_text_seq_length=226,
        ),
        "text": (226, 4096),
        "call": {"height": 480, "width": 720, "num_frames": 25, "guidance_scale": 6.0},
    },
    "hunyuanvideo15-480p": {
        "tiny": "hunyuanvideo15",
        # the 480p text-to-video transformer: 54 blocks, 16 heads of 128, Qwen2.5-VL 3584 / ByT5 1472 /
        # SigLIP 1152 context, 32 latent channels (+ condition latents and mask: 65 in)
        "transformer": lambda: HunyuanVideo15Transformer3DModel(target_size=480, task_type="t2v"),
        # the real pipeline's lengths (1000 Qwen positions, 256 ByT5, 729 image slots), set on the instance
        "lengths": {"tokenizer_max_length": 1000, "tokenizer_2_max_length": 256, "vision_num_semantic_tokens": 729},
        # the tiny VAE compresses 4x (the real one 16x): 120 x 212 px give the real 480 x 848 grid of 30 x 53,
        # 33 frames 9 latent frames: 14,310 video tokens
        "call": {"height": 120, "width": 212, "num_frames": 33},
    },
}
TINY_CALL = {"height": 64, "width": 64, "num_frames": 9}
CASES: dict[str, Callable[[], None] | None] = {
    "plain": None,
    "observe_all": lambda: record("mass", "entropy", "mass_topk", "act_norms", layers="all"),
    "edit1": lambda: mask_topk(layer=0.5, k=1),
}


def build(family: str, device: str, dtype: torch.dtype, tiny: bool) -> tuple[object, dict]:
    """The pipeline (full-size transformer unless ``tiny``) and its call arguments, embeddings included."""
    spec = FULL[family]
    pipe = interp.pipelines.tiny(spec["tiny"], dtype=dtype)
    if spec["tiny"] == "hunyuanvideo15":
        return build_hunyuan(pipe, spec, device, dtype, tiny)
    if tiny:
        call = {**interp.pipelines.tiny_call_kwargs(spec["tiny"]), **TINY_CALL}
        call.pop("num_inference_steps")
        cfg = pipe.transformer.config
        n, d = call.pop("max_sequence_length"), cfg.get("text_dim") or cfg.get("text_embed_dim")
    else:
        with torch.device(device):  # random weights, built where they run
            pipe.transformer = spec["transformer"]().to(dtype=dtype).eval()
        call = dict(spec["call"])
        n, d = spec["text"]
    pipe.to(device)
    g = torch.Generator("cpu").manual_seed(1)
    call["prompt_embeds"] = torch.randn(1, n, d, generator=g).to(device, dtype)
    call["negative_prompt_embeds"] = torch.randn(1, n, d, generator=g).to(device, dtype)
    call["output_type"] = "latent"
    return pipe, call


def build_hunyuan(pipe, spec: dict, device: str, dtype: torch.dtype, tiny: bool) -> tuple[object, dict]:
    """HunyuanVideo 1.5: random Qwen and ByT5 embeddings of the real shapes, with the masks the prompt (and
    the empty negative prompt) give under the pipeline's own tokenizers, so the token layout holds."""
    if tiny:
        call = {**interp.pipelines.tiny_call_kwargs(spec["tiny"]), **TINY_CALL}
        call.pop("num_inference_steps")
        call.pop("negative_prompt")
    else:
        with torch.device(device):
            pipe.transformer = spec["transformer"]().to(dtype=dtype).eval()
        cfg = pipe.transformer.config
        pipe.num_channels_latents, pipe.vision_states_dim = cfg.out_channels, cfg.image_embed_dim
        pipe.target_size = cfg.target_size
        for name, value in spec["lengths"].items():
            setattr(pipe, name, value)
        call = dict(spec["call"])
    pipe.to(device)
    cfg = pipe.transformer.config
    g = torch.Generator("cpu").manual_seed(1)
    for prefix, text in (("", PROMPT), ("negative_", "")):
        m1 = torch.as_tensor(qwen_layout(pipe, text).valid)[None]
        m2 = torch.as_tensor(byt5_layout(pipe, text).valid)[None]
        call[f"{prefix}prompt_embeds"] = torch.randn(1, m1.shape[1], cfg.text_embed_dim, generator=g).to(device, dtype)
        call[f"{prefix}prompt_embeds_mask"] = m1.to(device, dtype)
        e2 = torch.randn(1, m2.shape[1], cfg.text_embed_2_dim, generator=g)
        call[f"{prefix}prompt_embeds_2"] = e2.to(device, dtype)
        call[f"{prefix}prompt_embeds_mask_2"] = m2.to(device, dtype)
    call["output_type"] = "latent"
    return pipe, call


def run(pipe, call: dict, steps: int, plan: Callable[[], None] | None) -> torch.Tensor:
    if plan is None:
        return pipe(generator=torch.Generator("cpu").manual_seed(0), num_inference_steps=steps, **call).frames
    with tracer.trace(pipe, PROMPT, seed=0, num_inference_steps=steps, **call) as t:
        plan()
    return t.output.frames


def timed(fn: Callable[[], torch.Tensor], device: str) -> tuple[float, float, torch.Tensor]:
    """(seconds, peak GiB, output) of one call."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return time.perf_counter() - start, peak, out


def environment(device: str) -> dict[str, str]:
    env = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    return env


def markdown(res: dict) -> str:
    lines = [
        "# Full-size video DiTs: observation and edit overhead",
        "",
        f"Device: {res['env'].get('gpu', res['device'])}; torch {res['env']['torch']}; bf16 = {res['dtype']}; "
        f"{res['steps']} steps; medians of {res['rounds']} rounds.",
        "",
        "| family | video tokens | case | median s | x plain | peak GiB | bit-identical to plain |",
        "|---|---|---|---|---|---|---|",
    ]
    for fam, r in res["families"].items():
        base = r["cases"].get("plain", {}).get("median_s", float("nan"))
        for case, c in r["cases"].items():
            ident = {"observe_all": str(r.get("bit_identical")), "plain": "-"}.get(case, "(edited)")
            lines.append(
                f"| {fam} | {r['video_tokens']} | {case} | {c['median_s']:.3f} | {c['median_s'] / base:.3f} | "
                f"{c['peak_gib']:.2f} | {ident} |"
            )
    return "\n".join(lines) + "\n"


def bench_family(family: str, args: argparse.Namespace, dtype: torch.dtype) -> dict:
    """Every case of one family, interleaved in rounds."""
    pipe, call = build(family, args.device, dtype, args.tiny)
    name = "video" if family.startswith("wan") else "joint"
    lay = interp.adapters.adapter_for(pipe).planned_layout(pipe, name, PROMPT, call)
    entry: dict = {"video_tokens": int((lay.modality == "image").sum()), "cases": {}}
    for plan in CASES.values():  # warm-up: kernels (Triton's compilation included), allocator
        run(pipe, call, 1, plan)
    times: dict[str, list[tuple[float, float]]] = {c: [] for c in CASES}
    outputs: dict[str, torch.Tensor] = {}
    for _ in range(args.rounds):
        for case, plan in CASES.items():
            t, peak, out = timed(lambda plan=plan: run(pipe, call, args.steps, plan), args.device)
            times[case].append((t, peak))
            outputs[case] = out
    entry["bit_identical"] = bool(torch.equal(outputs["plain"], outputs["observe_all"]))
    entry["edit_changes_output"] = not torch.equal(outputs["plain"], outputs["edit1"])
    for case, ts in times.items():
        entry["cases"][case] = {
            "median_s": statistics.median(t for t, _ in ts),
            "peak_gib": max(p for _, p in ts),
            "all_s": [t for t, _ in ts],
        }
    return entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="the built-in tiny transformers (smoke test, e.g. on CPU)")
    ap.add_argument("--families", nargs="+", default=list(FULL), choices=list(FULL))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("out/gpu_video_full"))
    args = ap.parse_args()
    dtype = torch.bfloat16
    args.out.mkdir(parents=True, exist_ok=True)
    res: dict = {
        "device": args.device,
        "dtype": str(dtype),
        "steps": args.steps,
        "rounds": args.rounds,
        "tiny": args.tiny,
        "env": environment(args.device),
        "families": {},
    }

    def save() -> None:
        (args.out / "results.json").write_text(json.dumps(res, indent=2))
        (args.out / "results.md").write_text(markdown(res))

    for family in args.families:
        res["families"][family] = bench_family(family, args, dtype)
        save()
        print(markdown(res), flush=True)
        if args.device == "cuda":
            torch.cuda.empty_cache()
    save()


if __name__ == "__main__":
    main()
