"""Wall-time ratio of all-layer observation traces to the plain pipeline, on CPU (issue 2's benchmark).

Scale of issue 2's reference numbers: a tiny SD3 pipeline with 8 blocks, 1,024 image + 333 text tokens
(128 px, T5 length 256), 8 steps with CFG, one CPU thread. Cases are interleaved with the plain
pipeline in one process (rounds), and ratios of medians are reported. Run with the allocator settings
of docs/design.md, Kernels:

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=17179869184 \
        python benchmarks/cpu_observe_overhead.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from diffusers import SD3Transformer2DModel

import interp
from interp import record, tracer

CASES = {
    "mass+entropy, all layers": ("mass", "entropy"),
    "mass+entropy+mass_topk, all layers": ("mass", "entropy", "mass_topk"),
    "all statistics (+query_topk, act_norms)": ("mass", "entropy", "mass_topk", "query_topk", "act_norms"),
}


def bench_pipeline(blocks: int, heads: int, head_dim: int):
    pipe = interp.pipelines.tiny("sd3")
    cfg = dict(pipe.transformer.config)
    cfg.update(
        num_layers=blocks,
        pos_embed_max_size=64,
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        caption_projection_dim=heads * head_dim,
    )
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    torch.manual_seed(0)
    pipe.transformer = SD3Transformer2DModel(**cfg).eval()
    return pipe


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--cases", type=int, default=len(CASES), help="run the first N cases only")
    args = ap.parse_args()
    cases = dict(list(CASES.items())[: args.cases])
    torch.set_num_threads(args.threads)
    pipe = bench_pipeline(args.blocks, args.heads, args.head_dim)
    kw = dict(
        num_inference_steps=args.steps,
        guidance_scale=5.0,
        height=128,
        width=128,
        max_sequence_length=256,
        output_type="pt",
    )

    def plain():
        pipe("a photo of a red bench", generator=torch.Generator().manual_seed(0), **kw)

    def traced(stats):
        with tracer.trace(pipe, "a photo of a red bench", seed=0, **kw):
            record(*stats, layers="all")

    plain()
    for stats in cases.values():
        traced(stats)  # warm-up (imports, first-call allocations)
    times: dict[str, list[float]] = {"plain": [], **{c: [] for c in cases}}
    cpu: dict[str, list[float]] = {name: [] for name in times}
    for _ in range(args.rounds):
        for name in times:
            c0, t0 = time.process_time(), time.perf_counter()
            plain() if name == "plain" else traced(cases[name])
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    base, base_cpu = statistics.median(times["plain"]), statistics.median(cpu["plain"])
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s); {args.blocks} blocks of {args.heads} heads x {args.head_dim}, "
        f"1024 image + 333 text tokens, {args.steps} steps, CFG; load average {os.getloadavg()[0]:.1f}"
    )
    # wall time counts the time other processes hold the core; the process's CPU time does not (on a
    # shared machine it is the steadier measure of the work done)
    print(f"{'case':<44}{'median s':>10}{'ratio':>8}{'min ratio':>10}{'CPU s':>10}{'CPU ratio':>10}{'CPU min r':>10}")
    for name, ts in times.items():
        med, cmed = statistics.median(ts), statistics.median(cpu[name])
        print(
            f"{name:<44}{med:>10.3f}{med / base:>8.2f}{min(ts) / min(times['plain']):>10.2f}"
            f"{cmed:>10.3f}{cmed / base_cpu:>10.2f}{min(cpu[name]) / min(cpu['plain']):>10.2f}"
        )


if __name__ == "__main__":
    main()
