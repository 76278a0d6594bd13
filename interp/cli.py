"""The ``interp`` command line: ``interp demo`` (the main job) and the subcommands other parts add.

``interp demo`` runs, on the trained model organism shipped with the package (no download), the H1
observation and the A1 intervention over held-out captions (``interp.demo``) and prints the paired
result with its CI; ``--model sd3`` (or another tiny pipeline) runs an observation trace on a
random-weight built-in pipeline over GenEval prompts instead.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from importlib import resources
from pathlib import Path

from tqdm.auto import tqdm


def geneval_one_per_tag(n: int, seed: int = 0) -> list[dict]:
    """``n`` GenEval prompts spread over the six tags (round robin, a seeded choice within each tag)."""
    import numpy as np

    text = resources.files("interp").joinpath("data/geneval/evaluation_metadata.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    by_tag: dict[str, list[dict]] = {}
    for r in rows:
        by_tag.setdefault(r["tag"], []).append(r)
    rng = np.random.default_rng(seed)
    order = {t: list(rng.permutation(len(v))) for t, v in by_tag.items()}
    out: list[dict] = []
    while len(out) < n and any(order.values()):
        for tag in by_tag:
            if order[tag] and len(out) < n:
                out.append(by_tag[tag][order[tag].pop(0)])
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    import interp
    from interp import record, tracer
    from interp.summary import summarize

    store = Path(args.store)
    if store.exists():
        if not args.overwrite:
            print(f"{store} exists; pass --overwrite to replace it", file=sys.stderr)
            return 2
        shutil.rmtree(store)
    if args.model == "organism":
        from interp.demo import run_organism_demo

        print(run_organism_demo(store, n_per_tag=args.per_tag, steps=args.steps, seed=args.seed))
        return 0
    pipe = interp.pipelines.tiny(args.model)
    kwargs = interp.pipelines.tiny_call_kwargs(args.model)
    kwargs["num_inference_steps"] = args.steps or 8
    prompts = geneval_one_per_tag(args.prompts)
    for i, row in enumerate(tqdm(prompts, desc="tracing", unit="prompt")):
        with tracer.trace(pipe, row["prompt"], seed=args.seed + i, store=store, tag=row["tag"], **kwargs):
            record("mass", "entropy", "mass_topk", "query_topk", layers="all")
    ds = interp.open_store(store)
    print(f"store: {store} ({ds.sizes['sample']} samples, {ds.sizes['site']} sites, {ds.sizes['step']} steps)")
    print(summarize(ds))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="H1 observation + A1 intervention on the model organism (or a tiny pipeline)")
    demo.add_argument("--model", default="organism",
                      help="'organism' (trained, default) or a random-weight built-in: sd3, sd3.5, sdxl, flux, pixart")
    demo.add_argument("--per-tag", type=int, default=4, help="organism: held-out captions per GenEval tag")
    demo.add_argument("--prompts", type=int, default=6, help="tiny pipelines: GenEval prompts, spread over tags")
    demo.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the first prompt (seed + index after)")
    demo.add_argument("--store", default="traces/out/demo.zarr", help="output Zarr store")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing store")
    demo.set_defaults(func=cmd_demo)
    for extra in _extensions():
        extra(sub)
    return parser


def _extensions() -> list:
    """Subcommands contributed by other parts of the package (sweep, score, analyze), if present."""
    found = []
    for module, attr in (
        ("interp.sweep.cli", "add_sweep_command"),
        ("interp.metrics.cli", "add_score_command"),
        ("interp.analysis.cli", "add_analyze_command"),
    ):
        try:
            mod = __import__(module, fromlist=[attr])
        except ImportError:
            continue
        found.append(getattr(mod, attr))
    return found


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
