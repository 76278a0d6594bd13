"""The precision matrix of issue 16 as a table: every built-in family x {fp32, bf16, fp16} x {observe all
statistics, one edit, attention maps}, on the CPU.

Each cell is ``tests/integration/_precision.check`` (the same check the default test suite asserts):
the trace's output bit-identical to the plain pipeline (observe, maps), labels equal to the loop's steps
and the received timesteps to the scheduler's, the edit applied exactly at its step (edit).

    python benchmarks/precision_matrix.py --out benchmarks/RESULTS-precision.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import interp  # noqa: E402
from tests.integration._precision import DTYPES, MODES, check, plain  # noqa: E402


def cell(result: dict[str, bool] | str) -> str:
    if isinstance(result, str):
        return f"error: {result}"
    return ", ".join(f"{k} {'yes' if v else '**NO**'}" for k, v in result.items())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("benchmarks/RESULTS-precision.md"))
    ap.add_argument("--families", nargs="*", default=list(interp.pipelines.SUPPORTED_TINY))
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows: list[tuple[str, str, str, dict | str]] = []
    for name in args.families:
        for dt, dtype in DTYPES.items():
            pipe = interp.pipelines.tiny(name, dtype=dtype)
            ref = plain(pipe, name)
            for mode in MODES:
                try:
                    res: dict | str = check(pipe, name, mode, ref)
                except Exception as exc:  # a failing cell is a result of the table
                    res = f"{type(exc).__name__}: {exc}"[:300]
                rows.append((name, dt, mode, res))
                print(name, dt, mode, cell(res), flush=True)
    lines = [
        "# Precision matrix (issue 16)",
        "",
        f"`python benchmarks/precision_matrix.py`, CPU ({platform.processor() or platform.machine()}), torch "
        f"{torch.__version__}, {time.perf_counter() - t0:.0f} s. Built-in tiny pipelines, 2 steps, 32 px, "
        "latents out. observe: all six statistics on all layers; edit: `mask_topk(layer=0.5, k=1, steps=(1, 1))`; "
        "maps: `record('maps', layers=0.5, heads=[0], steps=[1])`. bit_identical: the trace's output equals the "
        "plain pipeline's exactly; labels: steps 0..n-1 in the loop's order, received timesteps equal the "
        "denoiser's, the timestep coordinate equals `scheduler.timesteps`; edit_applied: output differs, keys "
        "selected at step 1 only, no mass left on them (eta = 0).",
        "",
        "| family | dtype | " + " | ".join(MODES) + " |",
        "|---|---|" + "---|" * len(MODES),
    ]
    by_key = {(n, d, m): r for n, d, m, r in rows}
    for name in args.families:
        for dt in DTYPES:
            lines.append(f"| {name} | {dt} | " + " | ".join(cell(by_key[(name, dt, m)]) for m in MODES) + " |")
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps([list(r) for r in rows], indent=1))


if __name__ == "__main__":
    main()
