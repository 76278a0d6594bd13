"""``interp score STORE --metrics ...``: score every done sample of a store in place (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_score_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from interp.metrics import list_metrics

    p = subparsers.add_parser("score", help="score the images of a store (CLIP-T, HPS, ImageReward, LPIPS, ...)")
    p.add_argument("store", type=Path, help="a Zarr store written by tracer.trace or interp sweep")
    p.add_argument("--metrics", nargs="+", required=True, choices=list_metrics(), help="metrics to compute")
    p.add_argument(
        "--weights-dir",
        type=Path,
        default=None,
        help="folder of weight files (default: $INTERP_WEIGHTS_DIR; see docs/metrics.md)",
    )
    p.add_argument("--baseline", default=None, help="condition LPIPS compares against (default: the sweep's)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when present)")
    p.set_defaults(func=run_score_command)
    return p


def run_score_command(args: argparse.Namespace) -> int:
    from interp.metrics import MetricSettings
    from interp.metrics.store_scoring import score_store

    settings = MetricSettings()
    overrides = {k: v for k, v in (("weights_dir", args.weights_dir), ("device", args.device)) if v is not None}
    if overrides:
        settings = settings.replace(**overrides)
    counts = score_store(args.store, args.metrics, settings, baseline=args.baseline, batch_size=args.batch_size)
    for name, n in counts.items():
        print(f"{name}: scored {n} sample(s)")
    return 0
