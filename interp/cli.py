"""The ``interp`` command line: ``interp demo`` (the main job) and the subcommands other parts add.

``interp demo`` runs, on the trained model organism shipped with the package (no download), the H1
observation and the A1 intervention over held-out captions (``interp.demo``) and prints the paired
result with its CI; ``--model sd3`` (or another tiny pipeline) runs an observation trace on a
random-weight built-in pipeline over GenEval prompts instead.

Design
------
Start-up is fast: :data:`COMMANDS` names, for each subcommand, the module and function that add it
and a one-line help, so ``interp --help`` imports nothing heavy (torch, diffusers, xarray load only
when a command runs), and only the chosen subcommand's module is imported to build its options. A new
subcommand (``interp view``) is one entry in :data:`COMMANDS` and an ``add_<name>_command(subparsers)``
function in its own module.

Exit status (docs/cli.md): 0 success; 1 a command that ran but failed (an analysis error, a bug:
bugs keep their traceback); 2 a user error (bad option, config, plan or store), reported as one line on
stderr; 3 the store is being written by another process. User errors are the exception classes in
:data:`USER_ERRORS`, matched only if their module was imported (so this module imports none of them).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUSY = 0, 1, 2, 3

DEMO_MODELS = (
    "organism",
    "sd3",
    "sd3.5",
    "sdxl",
    "flux",
    "pixart",
    "chroma",
    "sana",
    "flux2",
    "flux2-klein",
    "qwenimage",
    "wan",  # video families
    "cogvideox",
    "cogvideox1.5",
    "hunyuanvideo15",
    "auraflow",  # the generic adapter (last in ADAPTERS)
    "lumina2",
)
"""``--model`` choices: the organism and ``interp.pipelines.SUPPORTED_TINY`` (kept equal by a test,
spelled out here so that ``--help`` does not import the pipelines)."""

COMMANDS: dict[str, tuple[str, str, str]] = {
    # name: (module, function adding the subparser, one-line help for `interp --help`)
    "demo": ("interp.cli", "add_demo_command", "H1 observation + A1 intervention on the model organism"),
    "sweep": ("interp.sweep.cli", "add_sweep_command", "run or resume a sweep (prompts x seeds x conditions)"),
    "score": ("interp.metrics.cli", "add_score_command", "score the images of a store (CLIP-T, HPS, LPIPS, ...)"),
    "analyze": ("interp.analysis.cli", "add_analyze_command", "tables and figures of the paper from a store"),
    "findings": ("interp.analysis.findings_cli", "add_findings_command", "the study's findings page from its tables"),
    "view": ("interp.view.cli", "add_view_command", "explore stores in the browser, or export one HTML report"),
}

USER_ERRORS: tuple[tuple[str, str, int], ...] = (
    # (module, exception class, exit status): expected mistakes, reported in one line
    ("interp.store.lock", "StoreLocked", EXIT_BUSY),
    ("interp.store.safety", "StoreError", EXIT_USAGE),
    ("interp.plan", "PlanError", EXIT_USAGE),
    ("interp.sweep.config", "ConfigError", EXIT_USAGE),
    ("interp.sweep.runner", "SweepError", EXIT_USAGE),
    ("interp.analysis.errors", "StoreLacks", EXIT_USAGE),
    ("interp.view.source", "ViewError", EXIT_USAGE),
    ("interp.analysis.completeness", "IncompleteStore", EXIT_USAGE),
    ("interp.analysis.study_effects", "StudyError", EXIT_USAGE),
    ("interp.metrics.weights", "MissingWeightsError", EXIT_USAGE),
    ("interp.metrics.weights", "CorruptWeightsError", EXIT_USAGE),
)


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (the full usage is one ``--help`` away)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def cmd_demo(args: argparse.Namespace) -> int:
    from interp.store.safety import check_location, remove_store

    store = Path(args.store)
    if store.exists() and not args.overwrite:
        print(f"interp demo: {store} exists; pass --overwrite to replace it", file=sys.stderr)
        return EXIT_USAGE
    if args.overwrite:
        remove_store(store)  # refuses anything interp did not write; every option was checked by now
    check_location(store, kind="trace")
    if args.model == "organism":
        from interp.demo import run_organism_demo

        print(run_organism_demo(store, n_per_tag=args.per_tag, steps=args.steps, seed=args.seed))
        return EXIT_OK
    from tqdm.auto import tqdm

    import interp
    from interp import record, tracer
    from interp.summary import summarize
    from interp.sweep.prompts import balanced_subset, geneval

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
    return EXIT_OK


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_demo_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    demo = subparsers.add_parser("demo", help=COMMANDS["demo"][2], description=__doc__.splitlines()[0])
    demo.add_argument(
        "--model",
        default="organism",
        choices=DEMO_MODELS,
        help="'organism' (trained, default) or a random-weight built-in pipeline",
    )
    demo.add_argument("--per-tag", type=_positive, default=4, help="organism: held-out captions per GenEval tag")
    demo.add_argument("--prompts", type=_positive, default=6, help="tiny pipelines: GenEval prompts, spread over tags")
    demo.add_argument("--steps", type=_positive, default=None, help="denoising steps (default: the model's)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the first prompt (seed + index after)")
    demo.add_argument("--store", default="traces/out/demo.zarr", help="output Zarr store")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing store (only one that interp wrote)")
    demo.set_defaults(func=cmd_demo)
    return demo


def _version() -> str:
    from interp import __version__

    return f"interp {__version__}"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``interp`` parser; only ``command``'s module is imported (all of them with ``command="*"``)."""
    parser = Parser(prog="interp", description="Attention statistics and causal edits in text-to-image diffusion.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, adder, help_line) in COMMANDS.items():
        if command in (name, "*"):
            getattr(importlib.import_module(module), adder)(sub)
        else:  # listed in `interp --help`; its options are built only when it is the command
            sub.add_parser(name, help=help_line, add_help=False)
    return parser


def _user_error(exc: BaseException) -> int | None:
    for module, name, status in USER_ERRORS:
        mod = sys.modules.get(module)
        cls = getattr(mod, name, None) if mod is not None else None
        if isinstance(cls, type) and isinstance(exc, cls):
            return status
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as exc:
        status = _user_error(exc)
        if status is None:
            raise  # a bug: the traceback is what a report needs
        message = " ".join(str(exc).split("\n")[0].split()) or type(exc).__name__
        print(f"interp {args.command}: {message}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        print(f"interp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
