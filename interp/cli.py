"""The ``interp`` command line: ``interp demo`` (the main job) and the subcommands other parts add.

``interp demo`` runs, on the trained model organism shipped with the package (no download), the H1
observation and the A1 intervention over held-out captions (``interp.demo``) and prints the paired
result with its CI; ``--model sd3`` (or another tiny pipeline) runs an observation trace on a
random-weight built-in pipeline over GenEval prompts instead.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tqdm.auto import tqdm

from interp.adapters import ADAPTERS


def cmd_demo(args: argparse.Namespace) -> int:
    import interp
    from interp import record, tracer
    from interp.summary import summarize
    from interp.sweep.prompts import balanced_subset, geneval

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
    prompts = balanced_subset(geneval(), n=args.prompts, seed=args.seed)
    for i, row in enumerate(tqdm(prompts, desc="tracing", unit="prompt")):
        with tracer.trace(pipe, row.text, seed=args.seed + i, store=store, tag=row.tag, **kwargs):
            record("mass", "entropy", "mass_topk", "query_topk", layers="all")
    ds = interp.open_store(store)
    print(f"store: {store} ({ds.sizes['sample']} samples, {ds.sizes['site']} sites, {ds.sizes['step']} steps)")
    print(summarize(ds))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="H1 observation + A1 intervention on the model organism (or a tiny pipeline)")
    demo.add_argument(
        "--model",
        default="organism",
        help="'organism' (trained, default) or a random-weight built-in: "
        + ", ".join(v for adapter in ADAPTERS for v in adapter.tiny_variants),
    )
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
