"""Time writing one full-SD3-size sample through the sweep store path (docs/design.md, The store).

``python benchmarks/bench_write.py [--dtype float16|float32] [--repeats 3] [--dir DIR]``

A trace dataset of SD3-medium's size at 1024 px is synthesised with the tracing core's own schema
function (``interp.store.schema.trace_dataset``): 24 joint sites x 28 steps x 1 call x 2 branches x
24 heads, 4429 keys per site (4096 image patches + 77 CLIP + 256 T5), full per-key incoming mass
(``mass_per_key``, float32 as the schema stores it, or float16 sums over queries), every summary
statistic, activation norms, token identities and a 1024 x 1024 RGB image. A store for a few
samples is created with ``create_store`` and the sample is written with ``SampleStore.write_sample``
after ``StoreLayout.conform``, exactly the writer thread's path. Reported: bytes per sample, conform
time, write time (data + done flag), and the throughput.

The overlap run (``--overlap``) measures what the background writer costs a generating thread: the
main thread runs a fixed CPU workload (matrix products standing in for generation) alone, then again
while the writer writes samples in the background, and reports the slowdown.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from interp.adapters.base import SiteInfo, TokenLayout, image_layout
from interp.store.schema import trace_dataset
from interp.sweep import store as store_module
from interp.sweep.layout import StoreLayout
from interp.sweep.store import SampleStore, create_store

SD3 = {
    "sites": 24,
    "steps": 28,
    "branches": 2,
    "heads": 24,
    "rank": 8,
    "image_side": 64,
    "clip": 77,
    "t5": 256,
}


def synthetic_sd3_trace(mass_dtype: str = "float32", seed: int = 0, px: int = 1024) -> object:
    """An ``xarray.Dataset`` laid out exactly as ``Trace.stats`` of an SD3-medium trace at 1024 px."""
    rng = np.random.default_rng(seed)
    s = SD3
    n_text = s["clip"] + s["t5"]
    n_key = s["image_side"] ** 2 + n_text
    core = (s["steps"], 1, s["sites"], s["branches"], s["heads"])
    sites = [SiteInfo(f"transformer_blocks.{i}.attn", i, "joint", True, "joint", "joint") for i in range(s["sites"])]
    text = TokenLayout(
        modality=np.array(["text"] * n_text),
        encoder=np.array(["CLIP"] * s["clip"] + ["T5"] * s["t5"]),
        token_id=rng.integers(0, 32000, n_text).astype(np.int64),
        token_str=np.array([f"tok{i}" for i in range(n_text)]),
        is_bos=np.zeros(n_text, bool),
        is_eos=np.zeros(n_text, bool),
        is_pad=np.zeros(n_text, bool),
        image_row=np.full(n_text, -1, np.int64),
        image_col=np.full(n_text, -1, np.int64),
    )
    layout = TokenLayout.concat([image_layout(s["image_side"], s["image_side"]), text])
    mass = rng.random((*core, n_key), dtype=np.float32)
    mass /= mass.sum(-1, keepdims=True)
    if mass_dtype == "float16":
        mass = (mass * s["image_side"] ** 2).astype(np.float16)  # sums over 4096 image queries
    arrays = {
        "max_mass": mass.max(-1).astype(np.float32),
        "argmax_key": mass.argmax(-1).astype(np.int32),
        "topk_keys": rng.integers(0, n_key, (*core, s["rank"])).astype(np.int32),
        "topk_mass": rng.random((*core, s["rank"]), dtype=np.float32),
        "mass_per_key": mass,
        "entropy": rng.random(core, dtype=np.float32) * 8,
        "mass_topk": rng.random(core, dtype=np.float32),
        "query_topk": rng.random(core, dtype=np.float32),
        "act_pre_max": rng.random((*core, 2, 2), dtype=np.float32),
        "act_pre_p95": rng.random((*core, 2, 2), dtype=np.float32),
        "act_post_max": rng.random((*core[:4], 2, 2), dtype=np.float32),
        "act_post_p95": rng.random((*core[:4], 2, 2), dtype=np.float32),
    }
    return trace_dataset(
        arrays=arrays,
        sites=sites,
        site_shapes={x.path: (s["heads"], n_key) for x in sites},
        branches=["uncond", "cond"],
        timesteps={i: 1000.0 - 35.0 * i for i in range(s["steps"])},
        sigmas={i: 1.0 - i / s["steps"] for i in range(s["steps"])},
        n_steps=s["steps"],
        n_calls=1,
        layouts={("joint", "uncond"): layout, ("joint", "cond"): layout},
        ords=["2", "inf"],
        var_attrs={},
        attrs={"plan": "[]"},
        image=rng.integers(0, 256, (px, px, 3), dtype=np.uint8),
    )


def time_writes(mass_dtype: str, repeats: int, root: Path, n_samples: int = 4) -> dict[str, float]:
    ds = synthetic_sd3_trace(mass_dtype)
    nbytes = sum(v.nbytes for v in ds.variables.values())
    layout = StoreLayout.from_traces([ds])
    path = root / f"bench_{mass_dtype}.zarr"
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    create_store(path, layout, n_samples, {"condition": np.array(["c"] * n_samples, dtype=object)}, {})
    create_s = time.perf_counter() - t0
    store = SampleStore(path)
    conform, write = [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        arrays = store.layout.conform(ds)
        arrays["noise_sha"] = np.asarray("x")
        arrays["gen_seconds"] = np.asarray(1.0)
        t1 = time.perf_counter()
        store.write_sample(r % n_samples, arrays)
        t2 = time.perf_counter()
        conform.append(t1 - t0)
        write.append(t2 - t1)
    on_disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    shutil.rmtree(path, ignore_errors=True)
    return {
        "sample_MB": nbytes / 1e6,
        "store_MB_per_sample_on_disk": on_disk / 1e6 / min(repeats, n_samples),
        "create_s": create_s,
        "conform_s_median": float(np.median(conform)),
        "write_s_median": float(np.median(write)),
        "write_s_min": float(np.min(write)),
        "MB_per_s": nbytes / 1e6 / float(np.median(write)),
    }


def _workload(n: int) -> float:
    a = torch.randn(512, 512)
    t0 = time.perf_counter()
    for _ in range(n):
        a = torch.tanh(a @ a * 1e-2)
    return time.perf_counter() - t0


def time_overlap(mass_dtype: str, root: Path, n_writes: int = 3, work: int = 200) -> dict[str, float]:
    """Slowdown of a CPU workload in the main thread while the writer thread writes samples."""
    ds = synthetic_sd3_trace(mass_dtype)
    layout = StoreLayout.from_traces([ds])
    path = root / f"overlap_{mass_dtype}.zarr"
    shutil.rmtree(path, ignore_errors=True)
    create_store(path, layout, n_writes, {"condition": np.array(["c"] * n_writes, dtype=object)}, {})
    store = SampleStore(path)
    alone = min(_workload(work) for _ in range(2))

    def write_all() -> None:
        for i in range(n_writes):
            arrays = store.layout.conform(ds)
            arrays["noise_sha"] = np.asarray("x")
            arrays["gen_seconds"] = np.asarray(1.0)
            store.write_sample(i, arrays)

    th = threading.Thread(target=write_all)
    t0 = time.perf_counter()
    th.start()
    busy = _workload(work)
    th.join()
    total = time.perf_counter() - t0
    shutil.rmtree(path, ignore_errors=True)
    return {
        "workload_alone_s": alone,
        "workload_with_writer_s": busy,
        "wall_s": total,
        "slowdown": busy / alone,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("float32", "float16"), nargs="+", default=["float32", "float16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="folder for the temporary stores (default: a temp dir)")
    parser.add_argument("--overlap", action="store_true", help="also measure the overlap with a CPU workload")
    parser.add_argument("--chunk-mb", type=float, default=None, help="inner chunk size limit (MiB) to try")
    args = parser.parse_args(argv)
    if args.chunk_mb is not None:
        store_module.INNER_CHUNK_BYTES = int(args.chunk_mb * 2**20)
    torch.set_num_threads(1)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="interp_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    for dt in args.dtype:
        print(dt, {k: round(v, 3) for k, v in time_writes(dt, args.repeats, root).items()}, flush=True)
        if args.overlap:
            print(dt, "overlap", {k: round(v, 3) for k, v in time_overlap(dt, root).items()}, flush=True)


if __name__ == "__main__":
    main()
