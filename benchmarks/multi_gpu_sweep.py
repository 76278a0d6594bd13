"""The H2 SD3-medium sweep under ``torchrun`` on 1, 2, 4, ... GPUs of one host: scaling, store equality, kill.

What runs
---------
The recipe of ``traces/sweeps/h2_sd3_medium.toml`` (records of every layer: mass, entropy, mass_topk,
query_topk over image queries; a baseline, the A1 edit (top-1 key per head at mid depth) and its
equal-budget random control; paired seeds) on a GenEval subset balanced by tag, bf16, 28 steps, CFG 7.

The model is the real ``StableDiffusion3Pipeline`` with SD3-medium's transformer at full size and random
weights (SD3 weights cannot be downloaded on the lent machines), saved once with ``save_pretrained`` and
loaded by every rank through ``interp.pipelines.load`` exactly as a real checkpoint is. Its text encoders
have the real widths (CLIP-L 768, CLIP-G 1280, T5 4096: the transformer's joint and pooled inputs) but
one layer each, and its VAE is the built-in tiny one (scale factor 2), so ``height = width = 256`` gives
the 128 x 128 latent of a 1024 px SD3 image: 4096 image + 333 text tokens per attention, as at full size.

For each number of GPUs N (those the machine has, from ``--gpus``):

- ``torchrun --standalone --nproc_per_node N -m interp.sweep.cli sweep CONFIG --store store_N`` is timed
  end to end (process start, model load, generation, writes); each rank's closing line gives its own
  generation time and the time generation was blocked by the store writer; ``nvidia-smi`` is sampled
  every 0.5 s for GPU utilisation.
- samples/s = samples / wall time; scaling efficiency = (samples/s at N) / (N x samples/s at 1 GPU).
- every store must equal the 1-GPU store (every variable, coordinate and attribute; generation time aside),
  compared with the sweep tests' own comparison.

Then the kill check: the sweep is started on the largest N, one rank is sent SIGKILL once a third of the
samples are done, the same command is started again, and the resumed store must equal the 1-GPU store
(nothing duplicated or missing). With ``--accelerate`` the largest N also runs under ``accelerate launch``.

    python benchmarks/multi_gpu_sweep.py --out OUTDIR --gpus 1,2,4      # results.md and results.json
    python benchmarks/multi_gpu_sweep.py --out /tmp/x --tiny --gpus 1   # CPU smoke test (built-in SD3)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration._sweep_helpers import assert_stores_equal, done_flags  # noqa: E402


def _env() -> dict[str, str]:
    """The launch environment: this checkout first on the path, and one CPU thread per process whatever N
    is (torchrun sets OMP_NUM_THREADS=1 only when N > 1; CPU kernels with another thread count round
    differently, so the 1-process store would differ from the N-process ones for no reason of ours)."""
    return dict(
        os.environ,
        PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )


SD3_MEDIUM = dict(
    sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64, num_attention_heads=24,
    joint_attention_dim=4096, caption_projection_dim=1536, pooled_projection_dim=2048, out_channels=16,
    pos_embed_max_size=192,
)  # fmt: skip

CONFIG = """
version = 1
name = "h2_multi_gpu"
store = "unused.zarr"
[model]
id = "{model}"
dtype = "{dtype}"
[sampler]
steps = {steps}
guidance_scale = 7.0
height = {size}
width = {size}
[prompts]
source = "geneval"
per_tag = {per_tag}
subset_seed = 0
[seeds]
base = 0
policy = "prompt_index"
[run]
progress = false
[[records]]
stats = ["mass", "entropy", "mass_topk", "query_topk"]
layers = "all"
queries = "image"
top = 8
k = 5
[[conditions]]
name = "baseline"
[[conditions]]
name = "A1_L12_top1"
[[conditions.plan]]
fn = "mask_topk"
layer = 0.5
k = 1
by = "image"
[[conditions]]
name = "A1_random"
[[conditions.plan]]
fn = "mask_random"
layer = 0.5
k = 1
by = "image"
seed = 0
"""

RANK_LINE = re.compile(
    r"rank (\d+)/(\d+): generated (\d+) samples .*? in ([\d.]+) s.*?generation ([\d.]+) s.*?"
    r"blocked by the writer ([\d.]+) s"
)


def build_model(folder: Path, tiny: bool) -> None:
    """Save the pipeline every rank loads: SD3-medium's transformer at full size (random weights)."""
    from diffusers import SD3Transformer2DModel

    import interp
    from interp.pipelines import components

    pipe = interp.pipelines.tiny("sd3")
    if not tiny:
        with components.seeded("bench/transformer"):
            pipe.transformer = SD3Transformer2DModel(**SD3_MEDIUM)
        with components.seeded("bench/encoders"):
            pipe.text_encoder = components.clip_text_encoder(
                "bench/te1", pipe.tokenizer, hidden_size=768, num_layers=1, num_heads=12, projection_dim=768
            )
            pipe.text_encoder_2 = components.clip_text_encoder(
                "bench/te2",
                pipe.tokenizer_2,
                hidden_size=1280,
                num_layers=1,
                num_heads=20,
                projection_dim=1280,
                hidden_act="gelu",
            )
            pipe.text_encoder_3 = components.t5_encoder(
                "bench/te3", pipe.tokenizer_3, d_model=4096, num_layers=1, num_heads=64, d_kv=64
            )
    pipe.save_pretrained(folder)


class GpuSampler:
    """Samples ``nvidia-smi`` utilisation every 0.5 s in a thread; mean per GPU over the run."""

    def __init__(self) -> None:
        self.samples: list[list[float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                    capture_output=True, text=True, timeout=5,
                ).stdout  # fmt: skip
                self.samples.append([float(x) for x in out.split()])
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
            self._stop.wait(0.5)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mean(self, n: int) -> list[float]:
        rows = [s[:n] for s in self.samples if len(s) >= n]
        return [round(sum(r[i] for r in rows) / len(rows), 1) for i in range(n)] if rows else []


def launch(n: int, config: Path, store: Path, launcher: str = "torchrun") -> list[str]:
    sweep = ["-m", "interp.sweep.cli", "sweep", str(config), "--store", str(store), "--no-progress"]
    if launcher == "accelerate":
        return ["accelerate", "launch", "--num_processes", str(n), "--num_machines", "1", *sweep]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", *sweep]


def run_sweep(n: int, config: Path, store: Path, log: Path, launcher: str = "torchrun") -> dict:
    env = _env()
    t0 = time.perf_counter()
    with GpuSampler() as gpu, open(log, "w") as fh:
        rc = subprocess.run(launch(n, config, store, launcher), env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    text = log.read_text()
    ranks = [dict(zip(("rank", "world", "generated", "wall_s", "generate_s", "blocked_s"), m.groups(), strict=True))
             for m in RANK_LINE.finditer(text)]  # fmt: skip
    if rc != 0:
        raise SystemExit(f"{launcher} with {n} processes failed (exit {rc}); log: {log}\n{text[-3000:]}")
    samples = sum(int(r["generated"]) for r in ranks)
    return dict(gpus=n, launcher=launcher, wall_s=round(wall, 2), samples=samples,
                samples_per_s=round(samples / wall, 4), gpu_util=gpu.mean(n), ranks=ranks)  # fmt: skip


def kill_and_resume(n: int, config: Path, store: Path, log: Path) -> dict:
    """Start the sweep on n ranks, SIGKILL one worker once a third of the samples are done, rerun."""
    import psutil  # on the lent machines; only the kill check needs it

    env = _env()
    with open(log, "w") as fh:
        proc = subprocess.Popen(launch(n, config, store), env=env, stdout=fh, stderr=subprocess.STDOUT)
        killed = None
        while proc.poll() is None:
            time.sleep(1.0)
            try:
                flags = done_flags(store)
            except Exception:  # the store does not exist yet, or is being created
                continue
            if flags.sum() >= max(1, len(flags) // 3):
                workers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "interp.sweep.cli" in
                           " ".join(c.cmdline())]  # fmt: skip
                victim = workers[-1]
                os.kill(victim.pid, signal.SIGKILL)
                killed = dict(pid=victim.pid, done_at_kill=int(flags.sum()), total=len(flags))
                break
        proc.wait()
    done_after_kill = int(done_flags(store).sum())
    resumed = run_sweep(n, config, store, log.with_suffix(".resume.log"))
    return dict(gpus=n, killed=killed, first_exit=proc.returncode, done_after_kill=done_after_kill,
                resumed_generated=resumed["samples"])  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--gpus", default="1,2,4", help="numbers of processes to run (capped at the GPUs present)")
    ap.add_argument("--per-tag", type=int, default=2, help="GenEval prompts per tag (6 tags)")
    ap.add_argument("--steps", type=int, default=28)
    ap.add_argument("--tiny", action="store_true", help="built-in tiny SD3 on the CPU (smoke test)")
    ap.add_argument("--no-kill", action="store_true")
    ap.add_argument("--accelerate", action="store_true")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    present = torch.cuda.device_count()
    counts = [int(x) for x in args.gpus.split(",")]
    if not args.tiny:
        skipped = [n for n in counts if n > present]
        counts = [n for n in counts if n <= present]
        if skipped:
            print(f"skipping {skipped}: this machine has {present} GPU(s)", flush=True)
    model = out / "model"
    if not (model / "model_index.json").exists():
        t = time.perf_counter()
        build_model(model, args.tiny)
        print(f"model saved in {time.perf_counter() - t:.1f} s", flush=True)
    config = out / "sweep.toml"
    config.write_text(CONFIG.format(model=model, dtype="float32" if args.tiny else "bfloat16",
                                    steps=args.steps, size=64 if args.tiny else 256, per_tag=args.per_tag))  # fmt: skip
    results: dict = dict(
        machine=dict(gpu=torch.cuda.get_device_name(0) if present else "cpu", gpus_present=present,
                     torch=torch.__version__, python=platform.python_version()),  # fmt: skip
        config=dict(per_tag=args.per_tag, steps=args.steps, tiny=args.tiny), runs=[], equal_to_1=[],
    )  # fmt: skip

    def save() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=2))
        (out / "results.md").write_text(report(results))

    base_rate = None
    for n in counts:
        store = out / f"store_{n}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        r = run_sweep(n, config, store, out / f"sweep_{n}.log")
        base_rate = base_rate or (r["samples_per_s"] if n == 1 else None)
        r["efficiency"] = round(r["samples_per_s"] / (n * base_rate), 3) if base_rate else None
        results["runs"].append(r)
        print(json.dumps(r), flush=True)
        if n != counts[0]:
            assert_stores_equal(out / f"store_{counts[0]}.zarr", store)
            results["equal_to_1"].append(n)
        save()
    reference = out / f"store_{counts[0]}.zarr"
    if args.accelerate and shutil.which("accelerate"):
        n = counts[-1]
        store = out / f"store_acc_{n}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        r = run_sweep(n, config, store, out / f"sweep_acc_{n}.log", launcher="accelerate")
        assert_stores_equal(reference, store)
        r["equal_to_1"] = True
        results["accelerate"] = r
        save()
    if not args.no_kill:
        n = counts[-1]
        store = out / f"store_kill_{n}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        k = kill_and_resume(n, config, store, out / f"kill_{n}.log")
        assert_stores_equal(reference, store)
        k["resumed_equal_to_uninterrupted"] = True
        results["kill"] = k
        print(json.dumps(k), flush=True)
        save()
    save()
    print(report(results))


def report(res: dict) -> str:
    m = res["machine"]
    lines = [
        f"Machine: {m['gpus_present']} x {m['gpu']}; torch {m['torch']}, Python {m['python']}.",
        f"Sweep: H2 recipe, {res['config']['per_tag']} GenEval prompts per tag x 3 conditions, "
        f"{res['config']['steps']} steps, all layers observed.",
        "",
        "| GPUs | launcher | samples | wall s | samples/s | efficiency | GPU util % "
        "| rank wall s (gen s, writer-blocked s) |",
        "|---:|---|---:|---:|---:|---:|---|---|",
    ]
    runs = list(res["runs"]) + ([res["accelerate"]] if "accelerate" in res else [])
    for r in runs:
        per_rank = "; ".join(f"{x['rank']}: {x['wall_s']} ({x['generate_s']}, {x['blocked_s']})" for x in r["ranks"])
        lines.append(f"| {r['gpus']} | {r['launcher']} | {r['samples']} | {r['wall_s']} | {r['samples_per_s']} | "
                     f"{r.get('efficiency')} | {r['gpu_util']} | {per_rank} |")  # fmt: skip
    lines.append("")
    lines.append(
        f"Stores equal to the {res['runs'][0]['gpus'] if res['runs'] else '?'}-GPU store: {res['equal_to_1']}."
    )
    if "kill" in res:
        k = res["kill"]
        lines.append(f"Kill check: {k}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
