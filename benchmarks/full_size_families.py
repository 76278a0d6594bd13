"""Observation overhead and peak memory of the issue-19 image families at published transformer size.

``python benchmarks/full_size_families.py --out DIR [--tiny] [--families a,b] [--steps N]``

Each family's built-in pipeline (``interp.pipelines.tiny``) gets a transformer of its published
architecture (``FULL``: FLUX.2 [klein] 4B, Chroma1-HD, Qwen-Image, SANA 1.6B, and on the generic adapter
AuraFlow v0.3 and Lumina-Image 2.0), random weights, bf16 on CUDA; the text encoder and VAE stay tiny:
only the transformer's input projection of the text (``CONTEXT_DIM``) keeps the tiny encoder's width, a
negligible part of the compute, and the run stops at the latents (``output_type="latent"``). The pixel
size is chosen so that the token grid is the published one at 1024 px (``HEIGHT``). Per family: a
warm-up of each path, then the plain pipeline and the traced one (``mass`` and ``entropy`` at every
site) with the same seed: bit-identical latents, wall time ratio, peak CUDA memory of each.

``--tiny`` runs the same code on the tiny transformers on the CPU (a check of the script). Results go
to ``DIR/full_size_families.json`` and ``.md``, rewritten after every family so a run cut short keeps
what it measured.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import interp
from interp import record, tracer

FULL: dict[str, dict] = {
    "flux2-klein": dict(
        num_layers=5,
        num_single_layers=20,
        attention_head_dim=128,
        num_attention_heads=24,
        in_channels=128,
        timestep_guidance_channels=256,
        axes_dims_rope=(32, 32, 32, 32),
    ),
    "chroma": dict(
        num_layers=19,
        num_single_layers=38,
        attention_head_dim=128,
        num_attention_heads=24,
        in_channels=64,
        axes_dims_rope=(16, 56, 56),
        approximator_num_channels=64,
        approximator_hidden_dim=5120,
        approximator_layers=5,
    ),
    "qwenimage": dict(
        num_layers=60,
        attention_head_dim=128,
        num_attention_heads=24,
        in_channels=64,
        out_channels=16,
        axes_dims_rope=(16, 56, 56),
    ),  # fmt: skip
    "sana": dict(
        in_channels=32,
        out_channels=32,
        num_attention_heads=70,
        attention_head_dim=32,
        num_layers=20,
        num_cross_attention_heads=20,
        cross_attention_head_dim=112,
        cross_attention_dim=2240,
        sample_size=32,
    ),
    "auraflow": dict(
        sample_size=64,
        num_mmdit_layers=4,
        num_single_dit_layers=32,
        attention_head_dim=256,
        num_attention_heads=12,
        caption_projection_dim=3072,
        pos_embed_max_size=9216,
    ),
    "lumina2": dict(
        hidden_size=2304,
        num_layers=26,
        num_refiner_layers=2,
        num_attention_heads=24,
        num_kv_heads=8,
        multiple_of=256,
        axes_dim_rope=(32, 32, 32),
        axes_lens=(300, 512, 512),
        in_channels=16,
        sample_size=128,
    ),
}
CONTEXT_DIM = ("joint_attention_dim", "caption_channels", "cap_feat_dim")
"""Config keys of the text input width: kept at the tiny encoder's."""
HEIGHT = {"flux2-klein": 256, "chroma": 256, "qwenimage": 256, "sana": 64, "auraflow": 256, "lumina2": 1024}
"""Pixels giving the published 1024 px token grid with the tiny VAEs (scale 2; Lumina 2's pipeline fixes 8)."""
TEXT = {"flux2-klein": 512, "chroma": 512, "sana": 300, "auraflow": 256, "lumina2": 256}
PROMPT = "a photo of a red bench next to a blue car"


def full_size(pipe, name: str, device: torch.device) -> None:
    """Replace the transformer by one of the published size (random weights, bf16, built on ``device``)."""
    tiny = pipe.transformer
    config = {k: v for k, v in dict(tiny.config).items() if not k.startswith("_")}
    config.update({k: v for k, v in FULL[name].items() if k not in CONTEXT_DIM})
    previous = torch.get_default_dtype()
    torch.manual_seed(0)
    try:
        torch.set_default_dtype(torch.bfloat16)
        with torch.device(device):
            model = type(tiny).from_config(config)
    finally:
        torch.set_default_dtype(previous)
    pipe.register_modules(transformer=model.eval())


def timed(fn, device: torch.device) -> tuple[object, float, float]:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return out, time.perf_counter() - t0, peak


def run_family(name: str, tiny: bool, steps: int, device: torch.device) -> dict:
    dtype = torch.float32 if tiny else torch.bfloat16
    pipe = interp.pipelines.tiny(name, dtype=dtype)
    if not tiny:
        full_size(pipe, name, device)
    pipe.to(device)
    kw = interp.pipelines.tiny_call_kwargs(name) | {"num_inference_steps": steps, "output_type": "latent"}
    if not tiny:
        kw |= {"height": HEIGHT[name], "width": HEIGHT[name]}
        if name in TEXT:
            kw["max_sequence_length"] = TEXT[name]

    def plain():
        gen = torch.Generator("cpu").manual_seed(0)
        return pipe(prompt=PROMPT, generator=gen, **kw).images

    def traced():
        with tracer.trace(pipe, PROMPT, seed=0, **kw) as t:
            record("mass", "entropy", layers="all")
        return t.output.images

    plain()  # warm-up of both paths (kernels, caches)
    traced()
    want, plain_s, plain_peak = timed(plain, device)
    got, traced_s, traced_peak = timed(traced, device)
    params = sum(p.numel() for p in pipe.transformer.parameters())
    sites = len(interp.adapters.adapter_for(pipe).sites(pipe))
    return {
        "family": name,
        "pipeline": type(pipe).__name__,
        "transformer_params_B": round(params / 1e9, 3),
        "sites": sites,
        "steps": steps,
        "height": kw.get("height"),
        "bit_identical": bool(torch.equal(want, got)),
        "plain_s": round(plain_s, 3),
        "traced_s": round(traced_s, 3),
        "ratio": round(traced_s / plain_s, 3),
        "peak_plain_GiB": round(plain_peak, 2),
        "peak_traced_GiB": round(traced_peak, 2),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "size": "tiny" if tiny else "published",
    }


def write(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "full_size_families.json").write_text(json.dumps(rows, indent=1))
    cols = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    (out / "full_size_families.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tiny", action="store_true", help="the tiny transformers on the CPU (a check of the script)")
    ap.add_argument("--families", default=",".join(FULL))
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if not args.tiny and device.type != "cuda":
        raise SystemExit("the published sizes need CUDA; pass --tiny for the CPU check")
    rows: list[dict] = []
    for name in args.families.split(","):
        try:
            rows.append(run_family(name, args.tiny, args.steps, device))
        except Exception as exc:  # a family that fails is reported, the others still run
            rows.append({"family": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
        print(json.dumps(rows[-1]), flush=True)
        write(rows, args.out)
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
