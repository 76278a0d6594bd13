"""GenEval-style evaluation of the organism: generate on held-out captions, score exactly, per tag.

Usage::

    python -m interp.organism.evaluate [--run DIR | --pipeline DIR] [--n-per-tag 256] [--guidance 4]
        [--select 2,3,4,6] [--steps 20] [--device cuda] [--out eval.json] [--samples grid.png]

Design
------
``eval_prompts`` fixes (caption, seed) pairs; each image's initial noise comes from a CPU generator
seeded with its own seed (so a CPU run of the same pair starts from the same noise as a GPU run), and
images are scored as uint8 (what a saved PNG holds). ``--select`` first compares guidance scales on
*selection* seeds (offset 1,000,000) and then reports the chosen scale on the *report* seeds (offset
0), so the reported accuracy is not the maximum of several noisy measurements of the same images.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from interp.organism.dataset import eval_prompts
from interp.organism.grammar import TAGS
from interp.organism.pipeline import DEFAULT_GUIDANCE_SCALE, DEFAULT_STEPS, OrganismPipeline
from interp.organism.scorer import score

SELECTION_OFFSET = 1_000_000


def generate(
    pipe: OrganismPipeline,
    prompts: list[str],
    seeds: list[int],
    *,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    num_inference_steps: int = DEFAULT_STEPS,
    batch_size: int = 512,
) -> np.ndarray:
    """(N, H, W, 3) uint8 images, one per (prompt, seed), noise from per-image CPU generators."""
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    out = []
    for i in range(0, len(prompts), batch_size):
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds[i : i + batch_size]]
        imgs = pipe(
            prompt=prompts[i : i + batch_size],
            generator=gens,
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
            output_type="np",
        ).images
        out.append(np.round(np.clip(imgs, 0, 1) * 255).astype(np.uint8))
    return np.concatenate(out)


def run_eval(
    pipe: OrganismPipeline,
    *,
    n_per_tag: int,
    split: str = "heldout",
    seed_offset: int = 0,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    num_inference_steps: int = DEFAULT_STEPS,
    batch_size: int = 512,
    tags: tuple[str, ...] = TAGS,
) -> tuple[dict, np.ndarray, list[str]]:
    """(summary dict, images, captions) of one evaluation."""
    pairs = eval_prompts(n_per_tag, split=split, tags=tags, seed_offset=seed_offset)
    captions = [s.caption for s, _ in pairs]
    t0 = time.perf_counter()
    images = generate(
        pipe,
        captions,
        [seed for _, seed in pairs],
        guidance_scale=guidance_scale,
        num_inference_steps=num_inference_steps,
        batch_size=batch_size,
    )
    gen_s = time.perf_counter() - t0
    res = score(images, [s for s, _ in pairs])
    by_caption: dict[str, list[bool]] = defaultdict(list)
    for c, ok in zip(captions, res.correct, strict=True):
        by_caption[c].append(bool(ok))
    summary = {
        "split": split,
        "n_per_tag": n_per_tag,
        "seed_offset": seed_offset,
        "guidance_scale": guidance_scale,
        "num_inference_steps": num_inference_steps,
        "per_tag": {k: round(v, 4) for k, v in res.per_tag.items()},
        "overall": round(res.overall, 4),
        "mean_alignment": round(float(res.alignment.mean()), 4),
        "per_caption": {c: round(float(np.mean(v)), 4) for c, v in by_caption.items()},
        "generation_seconds": round(gen_s, 2),
    }
    return summary, images, captions


def sample_grid(images: np.ndarray, captions: list[str], per_tag: int = 8, scale: int = 4) -> np.ndarray:
    """A (tags x per_tag) grid of the first images of each tag, upscaled ``scale``x (nearest)."""
    from interp.organism.grammar import parse_caption

    rows = []
    for tag in TAGS:
        idx = [i for i, c in enumerate(captions) if parse_caption(c).tag == tag][:per_tag]
        if not idx:
            continue
        tiles = [images[i] for i in idx] + [np.full_like(images[0], 255)] * (per_tag - len(idx))
        rows.append(np.concatenate([np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=255) for t in tiles], 1))
    grid = np.concatenate(rows, 0)
    return grid.repeat(scale, 0).repeat(scale, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m interp.organism.evaluate")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--run", help="training run directory (raw weights)")
    src.add_argument("--pipeline", help="pipeline folder (default: the shipped organism)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n-per-tag", type=int, default=256)
    ap.add_argument("--train-n-per-tag", type=int, default=0, help="also evaluate on training captions")
    ap.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE_SCALE)
    ap.add_argument("--select", default="", help="comma-separated guidance scales to choose from first")
    ap.add_argument("--select-n-per-tag", type=int, default=128)
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--extra-steps", default="", help="comma-separated step counts also reported at the chosen scale")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--samples", default=None, help="write a PNG grid of held-out samples here")
    args = ap.parse_args(argv)

    from interp.organism.export import load_organism, pipeline_from_run

    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    pipe = (
        pipeline_from_run(args.run, device=args.device)
        if args.run
        else load_organism(device=args.device, path=args.pipeline)
    )
    kw = {"num_inference_steps": args.steps, "batch_size": args.batch_size}
    result: dict = {"device": args.device}
    guidance = args.guidance
    if args.select:
        result["selection"] = []
        for g in [float(x) for x in args.select.split(",")]:
            s, _, _ = run_eval(
                pipe, n_per_tag=args.select_n_per_tag, seed_offset=SELECTION_OFFSET, guidance_scale=g, **kw
            )
            s.pop("per_caption")
            result["selection"].append(s)
            print(f"select g={g}: overall {s['overall']:.3f} {s['per_tag']}", flush=True)
        guidance = max(result["selection"], key=lambda s: s["overall"])["guidance_scale"]
    report, images, captions = run_eval(pipe, n_per_tag=args.n_per_tag, guidance_scale=guidance, **kw)
    result["heldout"] = report
    print(f"held-out g={guidance}: overall {report['overall']:.3f} {report['per_tag']}", flush=True)
    for n in [int(x) for x in args.extra_steps.split(",") if x]:
        s, _, _ = run_eval(
            pipe, n_per_tag=args.n_per_tag, guidance_scale=guidance, num_inference_steps=n, batch_size=args.batch_size
        )
        s.pop("per_caption")
        result.setdefault("heldout_other_steps", []).append(s)
        print(f"held-out g={guidance} steps={n}: overall {s['overall']:.3f} {s['per_tag']}", flush=True)
    if args.train_n_per_tag:
        s, _, _ = run_eval(pipe, n_per_tag=args.train_n_per_tag, split="train", guidance_scale=guidance, **kw)
        s.pop("per_caption")
        result["train_captions"] = s
        print(f"train captions g={guidance}: overall {s['overall']:.3f} {s['per_tag']}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    if args.samples:
        from PIL import Image

        Image.fromarray(sample_grid(images, captions)).save(args.samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
