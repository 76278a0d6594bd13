"""Shared pieces of the sweep integration tests: a tiny config, subprocess runs, store comparison, and one
uninterrupted reference sweep per test session (in-process, one torch thread like the subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[2]

# 8 GenEval prompts (balanced by tag) x 3 conditions on the built-in SD3 pipeline, 2-3 steps at 32 px:
# an edit (mask the top key at mid depth), and a sampler change (3 steps) with an extra record.
CONFIG = """
version = 1
name = "t"
store = "unused.zarr"
[model]
id = "tiny:sd3"
[sampler]
steps = 2
guidance_scale = 5.0
height = 32
width = 32
max_sequence_length = 8
[prompts]
source = "geneval"
n = 8
subset_seed = 1
[run]
progress = false
[[records]]
stats = ["mass", "entropy"]
layers = "all"
[[conditions]]
name = "baseline"
[[conditions]]
name = "top1_mid"
[[conditions.plan]]
fn = "mask_topk"
layer = 0.5
k = 1
[[conditions]]
name = "steps_3"
sampler = { steps = 3 }
[[conditions.plan]]
fn = "record"
stats = ["query_topk"]
layers = 0.5
"""
N_SAMPLES = 24
TIMING = ("gen_seconds",)


_CACHE: dict[str, object] = {}


def tiny_sd3():
    """The built-in SD3 pipeline, built once per session (tests that modify it must restore it)."""
    if "pipe" not in _CACHE:
        from interp import pipelines

        _CACHE["pipe"] = pipelines.tiny("sd3")
    return _CACHE["pipe"]


def reference(tmp_path_factory) -> tuple[Path, Path, object]:
    """(config path, store, SweepResult) of one uninterrupted single-process run of CONFIG."""
    if "reference" not in _CACHE:
        from interp.sweep import load_config, run

        folder = tmp_path_factory.mktemp("sweep_reference")
        config = write_config(folder)
        store = folder / "ref.zarr"
        result = run(load_config(config), store=store, pipe=tiny_sd3(), progress=False, log=lambda s: None)
        _CACHE["reference"] = (config, store, result)
    return _CACHE["reference"]  # type: ignore[return-value]


def write_config(folder: Path, text: str = CONFIG, name: str = "sweep.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        e.pop(k, None)
    e.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra})
    return e


def sweep_cmd(config: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "interp.sweep.cli", "sweep", str(config), "--store", str(store), "--no-progress"]


def run_cli(config: Path, store: Path, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(sweep_cmd(config, store), env=env(**extra_env), capture_output=True, text=True, timeout=600)


def kill_cmd(config: Path, store: Path, faults: str) -> list[str]:
    """A sweep that SIGKILLs itself at the write points ``faults`` (``point:sample,...``)."""
    return [sys.executable, str(ROOT / "tests" / "integration" / "_sweep_kill.py"), str(config), str(store), faults]


def run_killed(config: Path, store: Path, faults: str) -> subprocess.CompletedProcess:
    return subprocess.run(kill_cmd(config, store, faults), env=env(), capture_output=True, text=True, timeout=600)


def open_raw(path: Path) -> xr.Dataset:
    return xr.open_zarr(path, consolidated=True, chunks=None)


def done_flags(path: Path) -> np.ndarray:
    return np.asarray(open_raw(path)["done"].values, dtype=bool)


def assert_stores_equal(a: Path, b: Path, ignore: tuple[str, ...] = TIMING) -> None:
    """Same variables, values (NaN = NaN), images, coordinates and attributes; all samples done."""
    x, y = open_raw(a), open_raw(b)
    assert x["done"].values.all() and y["done"].values.all()
    assert set(x.variables) == set(y.variables)
    assert dict(x.sizes) == dict(y.sizes)
    for name in x.variables:
        if name in ignore:
            continue
        u, v = np.asarray(x[name].values), np.asarray(y[name].values)
        assert u.dtype == v.dtype, name
        if u.dtype.kind == "T":
            assert u.shape == v.shape and (u == v).all(), name
        else:
            assert np.array_equal(u, v, equal_nan=u.dtype.kind == "f"), name
    # sweep_config holds the store path; the commit moves in a live working tree; denoiser_config is
    # str(dict(config)) whose `_use_default_values` list comes from a set (its order varies by process).
    skip = {"sweep_config", "interp_git_commit", "denoiser_config"}
    differ = sorted(k for k in set(x.attrs) | set(y.attrs) if k not in skip and x.attrs.get(k) != y.attrs.get(k))
    assert not differ, {k: (x.attrs.get(k), y.attrs.get(k)) for k in differ}


def partial_files(path: Path) -> list[Path]:
    return list(path.rglob("*.partial"))
