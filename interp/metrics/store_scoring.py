"""Scoring every sample of a store and writing the scores into it (``interp score STORE``).

Design
------
Scores are new variables of the store, one value per sample (``score_<output>``, e.g.
``score_clip_t``, ``score_hps_v2_1``), ``lpips_vs_baseline`` (LPIPS of each sample's image against
the image of its baseline condition with the same prompt and seed; 0 for the baseline itself) and
``inception_pool3`` (sample, inception_feature) for FID_shift and KID with bootstrap CIs. Following
the store discipline of docs/design.md, The store, one process creates every new variable (filled with NaN)
and a per-metric flag ``scored_<metric>`` (sample) before scoring; batches are then written as region
writes, each batch's flags last, so a killed run resumes with the samples whose flag is unset. The
metric's ``version_info()`` (packages, settings, weight files) is stored as JSON in the attributes of
each variable it wrote. Only samples whose sweep ``done`` flag is set are scored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from PIL import Image
from tqdm.auto import tqdm

from interp.metrics import MetricSettings, load_metric

PAIR_METRICS = ("lpips",)


class ScoreError(ValueError):
    """A store that cannot be scored as asked."""


def _open(path: Path) -> xr.Dataset:
    return xr.open_zarr(path, consolidated=True)


def baseline_index(ds: xr.Dataset, baseline: str) -> np.ndarray:
    """For each sample, the index of the baseline sample with the same prompt and seed (-1 if none)."""
    prompts = [str(p) for p in ds.prompt.values]
    seeds = [int(s) for s in ds.seed.values]
    conds = [str(c) for c in ds.condition.values]
    where = {(p, s): i for i, (p, s, c) in enumerate(zip(prompts, seeds, conds, strict=True)) if c == baseline}
    return np.array([where.get((p, s), -1) for p, s in zip(prompts, seeds, strict=True)], dtype=np.int64)


def _images(ds: xr.Dataset, idx: Sequence[int]) -> list[Image.Image]:
    arr = np.asarray(ds.image.isel(sample=list(idx)).values)
    return [Image.fromarray(a) for a in arr]


def _create(
    path: Path, n: int, variables: dict[str, tuple[tuple[str, ...], tuple[int, ...], str]], attrs: dict[str, dict]
) -> None:
    """Create the metric's variables (NaN / False) and its flag once, before any scoring."""
    ds = _open(path)
    new = {}
    for name, (dims, shape, dtype) in variables.items():
        if name in ds:
            continue
        fill = False if dtype == "bool" else np.nan
        new[name] = xr.Variable(dims, np.full(shape, fill, dtype=dtype), attrs=attrs.get(name, {}))
    if not new:
        return
    enc = {
        name: {"chunks": tuple(1 if d == "sample" else s for d, s in zip(v.dims, v.shape, strict=True))}
        for name, v in new.items()
    }
    # mode "a" replaces the group's attributes with the written dataset's: carry the store's own along
    xr.Dataset(new, attrs=ds.attrs).to_zarr(path, mode="a", consolidated=True, encoding=enc)


def _write(path: Path, values: dict[str, np.ndarray], dims: dict[str, tuple[str, ...]], start: int) -> None:
    stop = start + len(next(iter(values.values())))
    data = {name: (dims[name], arr) for name, arr in values.items()}
    xr.Dataset(data).to_zarr(path, region={"sample": slice(start, stop)}, consolidated=True)


def score_store(
    path: str | os.PathLike,
    metrics: Sequence[str],
    settings: MetricSettings | None = None,
    *,
    baseline: str | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Score every done sample of ``path`` with each metric; returns the number of samples scored each."""
    p = Path(path)
    if not (p / "zarr.json").is_file():
        raise ScoreError(f"{p} is not a Zarr v3 store")
    settings = settings or MetricSettings()
    ds = _open(p)
    for need in ("image", "prompt", "seed", "condition", "done"):
        if need not in ds:
            raise ScoreError(f"store {p} has no {need!r}: score stores written by tracer.trace or interp sweep")
    n = ds.sizes["sample"]
    base_name = baseline or ds.attrs.get("sweep_baseline", "baseline")
    counts = {}
    for name in metrics:
        metric = load_metric(name, settings)
        info = json.dumps(metric.version_info(), sort_keys=True, default=str)
        flag = f"scored_{name}"
        ds = _open(p)
        done = np.asarray(ds.done.values, bool)
        if name in PAIR_METRICS:
            pairs = baseline_index(ds, base_name)
            if (pairs[done] < 0).all():
                raise ScoreError(
                    f"no sample of {p} has a {base_name!r} condition to compare with (LPIPS pairs "
                    "each sample with the baseline of its prompt and seed); pass --baseline"
                )
            variables = {"lpips_vs_baseline": (("sample",), (n,), "float64")}
        elif name == "inception":
            variables = {"inception_pool3": (("sample", "inception_feature"), (n, 2048), "float32")}
        else:
            probe = metric.score(_images(ds, [int(np.flatnonzero(done)[0])]), [str(ds.prompt.values[0])])
            variables = {f"score_{k}": (("sample",), (n,), "float64") for k in probe}
        attrs = {v: {"metric": name, "metric_version_info": info} for v in variables}
        variables[flag] = (("sample",), (n,), "bool")
        _create(p, n, variables, attrs)
        ds = _open(p)
        todo = np.flatnonzero(done & ~np.asarray(ds[flag].values, bool))
        if name in PAIR_METRICS:
            todo = todo[baseline_index(ds, base_name)[todo] >= 0]
        dims = {v: spec[0] for v, spec in variables.items()}
        size = batch_size or settings.batch_size
        bar = tqdm(total=len(todo), desc=f"score {name}", unit="img", disable=not progress)
        # contiguous runs of samples are written as one region each
        for run in np.split(todo, np.flatnonzero(np.diff(todo) != 1) + 1) if len(todo) else []:
            for start in range(0, len(run), size):
                idx = run[start : start + size]
                values = _score_batch(metric, name, ds, idx, base_name)
                _write(p, values, dims, int(idx[0]))
                _write(p, {flag: np.ones(len(idx), bool)}, dims, int(idx[0]))
                bar.update(len(idx))
        bar.close()
        counts[name] = int(len(todo))
    return counts


def _score_batch(metric, name: str, ds: xr.Dataset, idx: np.ndarray, base_name: str) -> dict[str, np.ndarray]:
    images = _images(ds, idx)
    if name in PAIR_METRICS:
        base = baseline_index(ds, base_name)[idx]
        return {"lpips_vs_baseline": np.asarray(metric.score_pairs(_images(ds, base), images)["lpips"], np.float64)}
    if name == "inception":
        return {"inception_pool3": np.asarray(metric.features(images), np.float32)}
    prompts = [str(p) for p in ds.prompt.isel(sample=list(idx)).values]
    return {f"score_{k}": np.asarray(v, np.float64) for k, v in metric.score(images, prompts).items()}
