"""``interp analyze STORE --out DIR [--only NAME ...]``: every table and figure of the paper from a store.

Design
------
:func:`add_analyze_command` adds the subcommand to the ``interp`` parser (the lead wires it into
``interp/cli.py``); :func:`script_main` gives each thin script in ``analyses/`` the same options for one
analysis. Options map one-to-one onto :class:`~interp.analysis.config.AnalysisConfig`. Exit status: 0
when everything asked for ran (skipped analyses of a full run are listed, not failures), 2 when an
analysis asked for by name lacks inputs, the arguments are bad or the store is incomplete (pending
samples without ``--partial``, or no done sample at all; ``interp.analysis.completeness``), 1 when an
analysis failed otherwise. The first line printed is the store's done/pending count per condition.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from interp.analysis.config import DEFAULT_MARGINS, AnalysisConfig
from interp.analysis.errors import StoreLacks


def _margins(items: Sequence[str] | None) -> tuple[tuple[str, float], ...]:
    margins = dict(DEFAULT_MARGINS)
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--margin takes METRIC=VALUE, got {item!r}")
        margins[name.removeprefix("score_").lower()] = float(value)
    return tuple(margins.items())


def add_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``interp analyze`` and the scripts in ``analyses/``."""
    p.add_argument("--out", default="analysis_out", help="output folder for tables (.md, .csv) and figures (.png)")
    p.add_argument("--baseline", default="baseline", help="the unedited condition (default: baseline)")
    p.add_argument("--conditions", nargs="+", default=None, help="restrict H2 analyses to these conditions")
    p.add_argument(
        "--design", default=None, help="JSON/TOML file describing conditions (stores without sweep_conditions)"
    )
    p.add_argument("--resamples", type=int, default=9999, help="bootstrap resamples (default 9999)")
    p.add_argument(
        "--fid-resamples", type=int, default=100, help="bootstrap resamples of FID CIs (default 100, 0 = none)"
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--ci-method", choices=("bca", "percentile"), default="bca", help="bootstrap CI method")
    p.add_argument("--adjust", choices=("holm", "bh"), default="holm", help="multiplicity correction within a table")
    p.add_argument("--alpha", type=float, default=0.05, help="test level (TOST, significance marks)")
    p.add_argument(
        "--margin", action="append", metavar="METRIC=VALUE", help="TOST margin, e.g. clip_t=0.01 (repeatable)"
    )
    p.add_argument("--identity-top", type=int, default=1, help="top keys counted as dominant for sink identity")
    p.add_argument("--n-qualitative", type=int, default=4, help="prompts per qualitative panel")
    p.add_argument("--pair-by", nargs="+", default=["prompt", "seed"], help="sample coordinates that pair conditions")
    p.add_argument(
        "--partial",
        action="store_true",
        help="analyse the done samples of an incomplete store (tables and figures are marked PARTIAL)",
    )


def config_from(args: argparse.Namespace) -> AnalysisConfig:
    return AnalysisConfig(
        baseline=args.baseline,
        pair_by=tuple(args.pair_by),
        level=args.level,
        ci_method=args.ci_method,
        n_resamples=args.resamples,
        seed=args.seed,
        adjust=args.adjust,
        alpha=args.alpha,
        margins=_margins(args.margin),
        fid_resamples=args.fid_resamples,
        n_qualitative=args.n_qualitative,
        identity_top=args.identity_top,
        conditions=tuple(args.conditions) if args.conditions else None,
        design=args.design,
    )


def list_text() -> str:
    from interp.analysis.registry import ANALYSES

    width = max(len(a.name) for a in ANALYSES)
    lines = ["available analyses (name: paper results - needs):"]
    for a in ANALYSES:
        lines.append(f"  {a.name:<{width}}  {', '.join(a.outputs)}: {a.title}")
        lines.append(f"  {'':<{width}}    needs: {a.needs}")
    return "\n".join(lines)


def cmd_analyze(args: argparse.Namespace) -> int:
    if args.list:
        print(list_text())
        return 0
    if not args.store:
        print("interp analyze: give a STORE (or --list)", file=sys.stderr)
        return 2
    from interp.analysis.completeness import completeness
    from interp.analysis.registry import run_analyses
    from interp.store.safety import is_zarr_store

    try:
        cfg = config_from(args)
        if not is_zarr_store(args.store):
            missing = "" if Path(args.store).exists() else " (it does not exist)"
            raise FileNotFoundError(f"{args.store} is not a Zarr v3 store{missing}")
        state = completeness(args.store)
        print(state.report())
        outcomes = run_analyses(args.store, args.out, args.only, cfg, partial=args.partial)
    except (StoreLacks, KeyError, ValueError, FileNotFoundError, argparse.ArgumentTypeError) as exc:
        print(f"interp analyze: {exc}", file=sys.stderr)
        return 2
    status = 0
    for o in outcomes:
        label = ", ".join(o.analysis.outputs)
        if o.status == "ok":
            print(f"ok       {o.analysis.name:<16} {label} ({o.seconds:.1f} s): {len(o.result.files)} file(s)")
        elif o.status == "skipped":
            print(f"skipped  {o.analysis.name:<16} {o.message}")
        else:
            print(f"FAILED   {o.analysis.name:<16} {o.message}", file=sys.stderr)
            status = 1
    if not state.complete:
        print(f"PARTIAL: {state.pending} of {state.total} samples pending; every table and figure is marked PARTIAL")
    print(f"written to {args.out} (index.md lists every file)")
    return status


def add_analyze_command(subparsers) -> argparse.ArgumentParser:
    """Add ``analyze`` to an ``argparse`` subparsers object (``interp analyze ...``)."""
    p = subparsers.add_parser(
        "analyze",
        help="tables and figures of the paper from a store",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("store", nargs="?", help="Zarr store written by interp (trace or sweep)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these analyses (names or labels like table2)")
    p.add_argument("--list", action="store_true", help="list the available analyses and exit")
    add_options(p)
    p.set_defaults(func=cmd_analyze)
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m interp.analysis.cli ...`` (the same as ``interp analyze ...``)."""
    parser = argparse.ArgumentParser(prog="interp")
    sub = parser.add_subparsers(dest="command", required=True)
    add_analyze_command(sub)
    args = parser.parse_args(["analyze", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


def script_main(name: str, argv: list[str] | None = None) -> int:
    """Entry point of one script in ``analyses/``: ``python analyses/X.py STORE --out DIR [options]``."""
    from interp.analysis.registry import resolve

    analysis = resolve(name)
    parser = argparse.ArgumentParser(
        prog=f"analyses/{name}",
        description=f"{', '.join(analysis.outputs)}: {analysis.title}. Needs: {analysis.needs}.",
    )
    parser.add_argument("store", help="Zarr store written by interp")
    add_options(parser)
    args = parser.parse_args(argv)
    args.only, args.list = [analysis.name], False
    return cmd_analyze(args)


if __name__ == "__main__":
    raise SystemExit(main())
