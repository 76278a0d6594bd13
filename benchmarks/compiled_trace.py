"""Compiled denoiser: the compiled plain pipeline against a trace of it (full-size SD3-medium, issue 16).

What runs
---------
The full-size SD3-medium architecture with random weights in bf16, built exactly as
``benchmarks/gpu_sd3_full.py`` builds it (real ``SD3Transformer2DModel``, SD3's prompt-embedding shapes,
1024 px = a 128 x 128 latent, CFG batch 2, ``output_type="latent"``), 28 steps. Cases, each one full
pipeline call:

- ``eager_plain`` / ``eager_trace``: the uncompiled pipeline, and a trace of it that records
  ``mass`` and ``entropy`` on all 24 layers (the reference for what tracing costs without compile);
- ``compiled_plain``: after ``pipe.transformer.compile()`` (in place, ``--form inplace``, default) or
  ``pipe.transformer = torch.compile(pipe.transformer)`` (``--form wrapper``) and one warm-up call;
- ``compiled_trace``: the same trace on the compiled pipeline (traced through the compiled denoiser's
  stable route, ``interp.sites.routed``; its first call compiles the traced graphs). An error is written
  to the results instead of a time, and nothing else is affected.

The first call of each compiled case (compilation, recompilation) is timed separately and not part of
the medians. Each case runs ``--runs`` times, interleaved in rounds; medians and minima are reported,
with the ratio of the compiled trace to the compiled plain run, and whether the compiled trace's output
is bit-identical to the compiled plain output. Results are written after every measurement
(``--out DIR``: ``compiled.md``, ``compiled.json``), and no new round starts after ``--budget-s``
seconds, so a run cut short by a time limit still leaves its numbers.

    python benchmarks/compiled_trace.py --out OUTDIR              # CUDA, full size
    python benchmarks/compiled_trace.py --tiny --device cpu --out OUTDIR   # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from gpu_sd3_full import build, environment, run_plain, sync  # noqa: E402

from interp import record, tracer  # noqa: E402

PROMPT = "a photo of a red bench"


def run_trace(pipe, kw, steps):
    with tracer.trace(pipe, PROMPT, seed=0, num_inference_steps=steps, **kw) as t:
        record("mass", "entropy", layers="all")
    assert len(t.stats.data_vars) > 0, "the trace recorded nothing"
    return t.output.images


def timed(fn: Callable[[], object], device: str) -> tuple[float, object]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def compile_denoiser(pipe, form: str) -> None:
    if form == "inplace":
        pipe.transformer.compile()
    else:
        pipe.transformer = torch.compile(pipe.transformer)


def summary(times: list[float]) -> dict[str, float | int]:
    if not times:
        return {"n": 0}
    return {"n": len(times), "median_s": statistics.median(times), "min_s": min(times)}


def markdown(res: dict) -> str:
    lines = [
        "# Compiled denoiser: plain vs trace (mass + entropy, all layers)",
        "",
        f"Command: `{res['command']}`",
        "",
        f"Machine: {res['environment']}",
        "",
        f"Config: {res['config']}",
        "",
        "| case | n | median s | min s | first call s |",
        "|---|---|---|---|---|",
    ]
    for name, case in res["cases"].items():
        s = summary(case["times"])
        first = case.get("first_call_s")
        lines.append(
            f"| {name} | {s['n']} | {s.get('median_s', float('nan')):.3f} | {s.get('min_s', float('nan')):.3f} | "
            f"{'' if first is None else f'{first:.1f}'} |"
        )
    lines.append("")
    for key in (
        "ratio_compiled_trace_to_compiled_plain",
        "ratio_eager_trace_to_eager_plain",
        "ratio_compiled_plain_to_eager_plain",
    ):
        if key in res:
            lines.append(f"- {key}: median {res[key]['median']:.3f}, min {res[key]['min']:.3f}")
    if "bit_identical_compiled" in res:
        lines.append(f"- compiled trace output bit-identical to compiled plain: {res['bit_identical_compiled']}")
    if "bit_identical_eager" in res:
        lines.append(f"- eager trace output bit-identical to eager plain: {res['bit_identical_eager']}")
    for name, err in res["errors"].items():
        lines.append(f"- **{name}** failed: `{err}`")
    return "\n".join(lines) + "\n"


def ratio(res: dict, a: str, b: str, key: str) -> None:
    ta, tb = res["cases"][a]["times"], res["cases"][b]["times"]
    if ta and tb:
        res[key] = {"median": statistics.median(ta) / statistics.median(tb), "min": min(ta) / min(tb)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="small model (smoke test, e.g. on CPU)")
    ap.add_argument("--form", choices=["inplace", "wrapper"], default="inplace")
    ap.add_argument("--steps", type=int, default=None, help="default 28 (2 with --tiny)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=110.0, help="start no new round after this many seconds")
    ap.add_argument("--out", type=Path, default=Path("out/compiled_trace"))
    args = ap.parse_args()
    dev = args.device
    steps = args.steps or (2 if args.tiny else 28)
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    res: dict = {
        "command": " ".join(["python", *sys.argv]),
        "environment": environment(dev),
        "config": dict(tiny=args.tiny, device=dev, dtype=str(dtype), steps=steps, form=args.form, cfg=5.0),
        "cases": {k: {"times": []} for k in ("eager_plain", "eager_trace", "compiled_plain", "compiled_trace")},
        "errors": {},
    }

    def save() -> None:
        (args.out / "compiled.json").write_text(json.dumps(res, indent=1, default=str))
        (args.out / "compiled.md").write_text(markdown(res))

    def over() -> bool:
        return time.perf_counter() - start > args.budget_s

    pipe, kw, _ = build(dev, dtype, args.tiny)
    res["build_s"] = time.perf_counter() - start
    fns = {"plain": lambda: run_plain(pipe, kw, steps), "trace": lambda: run_trace(pipe, kw, steps)}
    outs: dict[str, object] = {}

    def measure(prefix: str, first: bool) -> None:
        for kind, fn in fns.items():
            name = f"{prefix}_{kind}"
            if name in res["errors"]:
                continue
            try:
                dt, out = timed(fn, dev)
            except Exception as exc:  # a refusal or failure is a result: recorded, the others go on
                res["errors"][name] = f"{type(exc).__name__}: {exc}"[:2000]
                save()
                continue
            outs.setdefault(name, out)
            if first:
                res["cases"][name]["first_call_s"] = dt
            else:
                res["cases"][name]["times"].append(dt)
            save()

    measure("eager", first=True)  # warm-up (kernels, caches)
    for r in range(args.runs):  # one measured round always; more while within the budget
        if r > 0 and over():
            break
        measure("eager", first=False)
    if "eager_plain" in outs and "eager_trace" in outs:
        res["bit_identical_eager"] = bool(torch.equal(outs["eager_plain"], outs["eager_trace"]))
    ratio(res, "eager_trace", "eager_plain", "ratio_eager_trace_to_eager_plain")
    compile_denoiser(pipe, args.form)
    measure("compiled", first=True)  # compilation (plain), recompilation or refusal (trace)
    for r in range(args.runs):
        if r > 0 and over():
            break
        measure("compiled", first=False)
    if "compiled_plain" in outs and "compiled_trace" in outs:
        res["bit_identical_compiled"] = bool(torch.equal(outs["compiled_plain"], outs["compiled_trace"]))
    ratio(res, "compiled_trace", "compiled_plain", "ratio_compiled_trace_to_compiled_plain")
    ratio(res, "compiled_plain", "eager_plain", "ratio_compiled_plain_to_eager_plain")
    res["total_s"] = time.perf_counter() - start
    save()
    print(markdown(res))


if __name__ == "__main__":
    main()
