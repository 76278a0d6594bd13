"""From trained weights to the shipped pipeline folder, and loading it back (offline, deterministic).

Design
------
A training run leaves float16 ``transformer.safetensors`` and ``text_encoder.safetensors`` plus
``training.json`` (its configs). ``pipeline_from_run`` rebuilds the modules from the recorded config
and loads those weights; ``save_shipped`` writes the pipeline in diffusers' own folder layout
(``model_index.json``, one subfolder per component, float16 safetensors) through ``save_pretrained``,
so the shipped organism loads with the ordinary ``OrganismPipeline.from_pretrained`` path like any
checkpoint. ``load_organism`` does that from ``interp/data/organism`` (no network: a local folder).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from interp.organism.model import OrganismConfig, build_modules
from interp.organism.pipeline import OrganismPipeline

SHIPPED = Path(__file__).resolve().parent.parent / "data" / "organism"


def pipeline_from_run(
    run: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> OrganismPipeline:
    """The pipeline of a finished training run directory (weights and ``training.json``)."""
    run = Path(run)
    facts = json.loads((run / "training.json").read_text())
    config = OrganismConfig(**facts["model_config"])
    transformer, text_encoder, tokenizer, scheduler = build_modules(config)
    transformer.load_state_dict(load_file(str(run / "transformer.safetensors")), strict=True)
    text_encoder.load_state_dict(load_file(str(run / "text_encoder.safetensors")), strict=True)
    transformer.to(device=device, dtype=dtype)
    text_encoder.to(device=device, dtype=dtype)
    pipe = OrganismPipeline(
        transformer=transformer, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer
    )
    return _ready(pipe)


def _ready(pipe: OrganismPipeline) -> OrganismPipeline:
    pipe.transformer.eval()
    pipe.text_encoder.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_shipped(pipe: OrganismPipeline, dest: str | Path, extra_files: list[Path] = ()) -> Path:
    """Write ``pipe`` (as float16) in diffusers' folder layout at ``dest``, replacing what is there."""
    dest = Path(dest)
    for sub in ("transformer", "text_encoder", "tokenizer", "scheduler"):
        if (dest / sub).exists():
            shutil.rmtree(dest / sub)
    dest.mkdir(parents=True, exist_ok=True)
    pipe.transformer.to(dtype=torch.float16)
    pipe.text_encoder.to(dtype=torch.float16)
    pipe.save_pretrained(dest, safe_serialization=True)
    for f in extra_files:
        shutil.copy(f, dest / Path(f).name)
    return dest


def load_organism(
    dtype: torch.dtype = torch.float32, *, device: str | torch.device = "cpu", path: str | Path | None = None
) -> OrganismPipeline:
    """The trained organism (weights shipped in the package, float16 on disk), in eval mode, offline."""
    path = Path(path) if path is not None else SHIPPED
    if not (path / "model_index.json").exists():
        raise FileNotFoundError(f"no organism pipeline at {path} (model_index.json missing)")
    pipe = OrganismPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True)
    pipe.to(device)
    return _ready(pipe)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m interp.organism.export")
    ap.add_argument("--run", required=True, help="finished training run directory")
    ap.add_argument("--to", default=str(SHIPPED), help="destination folder (default: the shipped one)")
    ap.add_argument("--extra", nargs="*", default=[], help="files to copy beside (training/eval JSON)")
    args = ap.parse_args(argv)
    pipe = pipeline_from_run(args.run)
    dest = save_shipped(pipe, args.to, [Path(f) for f in args.extra])
    print(f"saved {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
