"""Tune the launch configurations of the fused Triton statistics kernels at SD3 size (one GPU, < 90 s).

What runs
---------
SD3-medium's attention at 1024 px: B = 2 (CFG), H = 24 heads of D = 64, N = 4096 image + 333 text =
4429 tokens, bf16, q and k in the layout SD3's processor hands to SDPA ((B, N, H, D) transposed to
(B, H, N, D), strided). Two call shapes are tuned, each with ``triton_tuning.tune_report``:

- ``image rows``: the 4096 image-token query rows against all 4429 keys (a gathered row subset: what
  the observer computes for the image stream);
- ``all rows``: every query row.

Before any timing the kernels (the current configuration, then the chosen one) are checked against
a torch fp32 reference (TF32 off) on a two-head slice of the same tensors, with and without a
per-key -inf bias, for both row sets; a failed check stops the run before anything is timed. Then,
for each shape, every candidate of ``triton_tuning.candidates()`` is compiled (in parallel threads),
checked against the current configuration's output and timed with CUDA events (median of 3 rounds
of ``--reps`` back-to-back launches), the stats pass given the log-sum-exp and the LSE pass
separately. Public SDPA on the same q, k (and a v) is timed for scale. Printed and written to
``--out``: ``tune.json`` (every timing, the checks, the chosen configurations) and ``tune.md``
(a markdown table per pass and shape, the chosen one in bold).

    python benchmarks/triton_tune.py --out out/triton_tune
    python benchmarks/triton_tune.py --device cpu      # smoke test under Triton's interpreter (small)

On CPU (``--device cpu``) the same steps run under Triton's interpreter on a small problem with a
handful of candidates: it checks the script and the kernels, its times mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

SD3 = dict(batch=2, heads=24, image=4096, text=333, head_dim=64)
SMOKE = dict(batch=1, heads=3, image=48, text=13, head_dim=16)
SMOKE_CONFIGS = {"stats": [(16, 16, 1, 1), (32, 32, 1, 1)], "lse": [(16, 16, 1, 1), (32, 16, 1, 1)]}


def make_inputs(shape: dict, device: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v as SD3's processor passes them to SDPA: (B, N, H, D) transposed to (B, H, N, D)."""
    g = torch.Generator(device).manual_seed(0)
    n = shape["image"] + shape["text"]
    b, h, d = shape["batch"], shape["heads"], shape["head_dim"]
    q, k, v = (torch.randn(b, n, h, d, device=device, generator=g, dtype=dtype).transpose(1, 2) for _ in range(3))
    return q, k, v


def reference(q: torch.Tensor, k: torch.Tensor, scale: float, rows: torch.Tensor | None, bias: torch.Tensor | None):
    """fp32 row log-sum-exp (over the rows), column sums and summed entropy, from the definitions."""
    s = (q.float() @ k.float().transpose(-1, -2)) * scale
    if bias is not None:
        s = s + bias.float()
    if rows is not None:
        s = s[:, :, rows]
    lse = torch.logsumexp(s, -1)
    a = torch.exp(s - lse[..., None])
    plogp = torch.where(a > 0, a * torch.log(a), torch.zeros((), device=a.device))
    return lse, a.sum(-2), -plogp.sum(-1).sum(-1)


def check(ts, q: torch.Tensor, k: torch.Tensor, scale: float, n_img: int, label: str) -> dict:
    """The kernels (with the launch configuration in force) against ``reference`` on the first two
    heads: rows all / image rows, without / with a per-key bias (-inf on a few keys, among them the
    last, in a partial key block; finite elsewhere). Max errors per statistic; ``ok`` overall."""
    qs, ks = q[:, :2], k[:, :2]
    nk = ks.shape[2]
    bias = torch.zeros(qs.shape[0], 2, 1, nk, device=q.device)
    bias[..., [3, 17, nk - 1]] = float("-inf")
    bias[:, 1, :, 40:60] = -1.5
    out: dict = {"label": label, "cases": [], "ok": True}
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for rows_name, rows in (("all rows", None), ("image rows", torch.arange(n_img, device=q.device))):
            for bias_name, b in (("no bias", None), ("key bias", bias)):
                lse_ref, col_ref, ent_ref = reference(qs, ks, scale, rows, b)
                lse_all = ts.row_lse(qs, ks, scale=scale, rows=rows, bias=b)  # only the rows are written
                lse = lse_all if rows is None else lse_all[:, :, rows]
                col, ent = ts.mass_entropy_sums(qs, ks, scale=scale, rows=rows, bias=b)  # two passes
                one_pass = ts.mass_entropy_sums(qs, ks, scale=scale, rows=rows, bias=b, lse=lse_all)
                errs = {
                    "lse": (lse - lse_ref).abs().max().item(),
                    "col": ((col - col_ref).abs() / (col_ref.abs() + 1e-3)).max().item(),
                    "entropy": ((ent - ent_ref).abs() / ent_ref.abs()).max().item(),
                    "one_pass_col": (one_pass[0] - col).abs().max().item(),
                }
                finite = bool(torch.isfinite(col).all() and torch.isfinite(ent).all() and torch.isfinite(lse).all())
                masked_zero = b is None or bool((col[b[:, :, 0] == float("-inf")] == 0).all())
                ok = (finite and masked_zero and errs["lse"] < 2e-3 and errs["col"] < 2e-3
                      and errs["entropy"] < 1e-4 and errs["one_pass_col"] < 1e-3)  # fmt: skip
                out["cases"].append({"rows": rows_name, "bias": bias_name, **errs, "finite": finite,
                                     "masked_keys_zero": masked_zero, "ok": ok})  # fmt: skip
                out["ok"] &= ok
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return out


def time_ms(fn: Callable[[], object], device: str, reps: int = 20) -> float:
    """Median over 3 rounds of the mean time of ``reps`` back-to-back calls, after one warm-up call."""
    from triton_tuning import timer

    fn()
    return timer(torch.device(device))(fn, reps)


def markdown(results: dict) -> str:
    env = results["env"]
    lines = [
        "# Triton statistics kernels: launch configurations",
        "",
        f"{env.get('gpu', env.get('cpu'))}, torch {env['torch']}, triton {env['triton']}; "
        f"B={results['shape']['batch']} H={results['shape']['heads']} N={results['shape']['image']}"
        f"+{results['shape']['text']} D={results['shape']['head_dim']} {results['dtype']}; "
        f"{results['elapsed_s']:.1f} s in all",
        "",
        f"public SDPA on the same q, k, v: {results['sdpa_ms']:.4f} ms",
        "",
        "## Checks against the fp32 reference (2 heads)",
        "",
        "| configuration | rows | bias | lse abs | col rel | entropy rel | ok |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for chk in results["checks"]:
        for c in chk["cases"]:
            lines.append(f"| {chk['label']} | {c['rows']} | {c['bias']} | {c['lse']:.2e} | {c['col']:.2e} | "
                         f"{c['entropy']:.2e} | {'yes' if c['ok'] else '**NO**'} |")  # fmt: skip
    for name, shape in results.get("tuned", {}).items():
        lines += ["", f"## {name}", ""]
        d = shape["default_ms"]
        lines.append(f"default `GPU_CONFIG`: stats {d['stats']:.4f} ms, lse {d['lse']:.4f} ms; chosen: stats "
                     f"{shape['chosen_ms']['stats']:.4f} ms, lse {shape['chosen_ms']['lse']:.4f} ms")  # fmt: skip
        lines += ["", shape["markdown"], "", f"`{shape['chosen_repr']}`"]
    if results.get("errors"):
        lines += ["", "## Errors", ""] + [f"- {k}: {v}" for k, v in results["errors"].items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--reps", type=int, default=20, help="launches per timing round")
    ap.add_argument("--out", type=Path, default=Path("out/triton_tune"))
    args = ap.parse_args()
    t_start = time.perf_counter()
    if args.device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is first imported (interp imports it)
    elif not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for the interpreter smoke test", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, where not installed
    import triton
    import triton_tuning

    from interp.kernels import triton_stats as ts

    dev = args.device
    shape = SD3 if dev == "cuda" else SMOKE
    dtype = torch.bfloat16
    configs = None if dev == "cuda" else SMOKE_CONFIGS
    reps = args.reps if dev == "cuda" else 1
    scale = shape["head_dim"] ** -0.5
    args.out.mkdir(parents=True, exist_ok=True)
    env = {"python": platform.python_version(), "torch": torch.__version__, "triton": triton.__version__}
    if dev == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    else:
        env["cpu"] = (platform.processor() or platform.machine()) + ", Triton interpreter"
    results: dict = {"env": env, "shape": shape, "dtype": str(dtype).removeprefix("torch."), "checks": [],
                     "tuned": {}, "errors": {}}  # fmt: skip

    def save() -> None:
        results["elapsed_s"] = time.perf_counter() - t_start
        (args.out / "tune.json").write_text(json.dumps(results, indent=1))
        (args.out / "tune.md").write_text(markdown(results))

    q, k, v = make_inputs(shape, dev, dtype)
    n_img = shape["image"]
    image_rows = torch.arange(n_img, device=dev)
    results["sdpa_ms"] = time_ms(
        lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale), dev, reps
    )
    results["checks"].append(check(ts, q, k, scale, n_img, "default"))
    print(f"check (default configuration): {'ok' if results['checks'][-1]['ok'] else 'FAILED'}", flush=True)
    if not results["checks"][-1]["ok"]:
        results["errors"]["check"] = "the default configuration disagrees with the reference; nothing timed"
        save()
        print(markdown(results))
        return 1

    for name, rows in (("image rows (4096 of 4429 queries)", image_rows), ("all rows", None)):
        if dev == "cpu":
            name = name.split(" (")[0]
        t0 = time.perf_counter()
        try:
            report = triton_tuning.tune_report(q, k, rows=rows, configs=configs, reps=reps, scale=scale)
        except Exception as exc:  # no candidate ran: record, go on with the other shape
            results["errors"][name] = repr(exc)[:2000]
            save()
            continue
        by_cfg = {(t.kernel, t.config): t.ms for t in report.timings}
        default = ts.GPU_CONFIG if dev == "cuda" else ts.INTERPRETER_CONFIG
        results["tuned"][name] = {
            **report.to_json(),
            "markdown": report.markdown(),
            "tune_s": time.perf_counter() - t0,
            "default_ms": {p: by_cfg.get((p, getattr(default, p)), float("nan")) for p in ("stats", "lse")},
            "chosen_ms": {p: by_cfg[(p, getattr(report.best, p))] for p in ("stats", "lse")},
            "chosen_repr": f"LaunchConfig.from_passes(stats=PassConfig{tuple(report.best.stats)}, "
            f"lse=PassConfig{tuple(report.best.lse)})",
        }
        print(f"\n## {name} ({time.perf_counter() - t0:.1f} s)\n\n{report.markdown()}", flush=True)
        with ts.gpu_config(report.best):  # the winner against the reference as well
            results["checks"].append(check(ts, q, k, scale, n_img, f"chosen for {name}"))
        if not results["checks"][-1]["ok"]:
            results["errors"][f"check {name}"] = "the chosen configuration disagrees with the reference"
        save()
    save()
    print(markdown(results))
    print(f"written: {args.out / 'tune.json'}, {args.out / 'tune.md'} ({results['elapsed_s']:.1f} s)")
    return 0 if not results["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
