"""``interp sweep CONFIG``: the command-line face of ``interp.sweep.run``.

``add_sweep_command(subparsers)`` registers the subcommand on the ``interp`` parser;
``run_sweep_command(args)`` runs it and returns the exit status (2 for a bad config, with the
offending field in the message, or a store location that cannot hold the store; 3 when another
sweep is writing the store; nothing is generated then; docs/cli.md). ``--check`` validates the config, the
prompt set and (loading the model) the plans, and prints the sample count without generating.
Under ``torchrun`` / ``accelerate launch`` every rank runs the same command.
"""

from __future__ import annotations

import argparse
import sys

from interp.store.lock import StoreLocked
from interp.store.safety import StoreError
from interp.sweep.config import ConfigError, load_config


def add_sweep_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "sweep",
        help="run or resume a sweep (prompts x seeds x conditions) into one store",
        description="Run or resume the sweep described by a TOML config (see docs/sweeps.md). Under torchrun "
        "or accelerate launch, prompts are split across ranks.",
    )
    parser.add_argument("config", help="sweep config file (TOML)")
    parser.add_argument("--store", default=None, help="store path (overrides the config's `store`)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate config, prompts and plans (loads the model); generate nothing",
    )
    parser.set_defaults(func=run_sweep_command)
    return parser


def run_sweep_command(args: argparse.Namespace) -> int:
    from interp.sweep import runner

    try:
        cfg = load_config(args.config)
        if args.check:
            return _check(cfg)
        runner.run(cfg, store=args.store, progress=False if args.no_progress else None)
    except ConfigError as exc:
        print(f"interp sweep: bad config {args.config}: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # the store's location or type: before any generation
        print(f"interp sweep: {exc}", file=sys.stderr)
        return 2
    except StoreLocked as exc:  # another sweep holds the store: refused at once
        print(f"interp sweep: {exc}", file=sys.stderr)
        return 3
    return 0


def _check(cfg) -> int:
    from interp.sweep import distributed, runner
    from interp.sweep.samples import sample_table

    prompts, n_source = runner.load_prompts(cfg)
    table = sample_table(cfg, prompts, n_source)
    pipe = runner.load_pipeline(cfg, distributed.device_for(distributed.from_env(), cfg.model.device))
    runner.prepare(cfg, pipe, probe=table[0])
    print(
        f"{cfg.name}: ok: {len(prompts)} prompts x {cfg.seeds.per_prompt} seed(s) x {len(cfg.conditions)} "
        f"conditions = {len(table)} samples -> {cfg.store}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m interp.sweep.cli sweep CONFIG``."""
    parser = argparse.ArgumentParser(prog="interp")
    sub = parser.add_subparsers(dest="command", required=True)
    add_sweep_command(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
