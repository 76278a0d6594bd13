"""Reading what analyses need from a store: samples, metrics, sites, the baseline subset.

Design
------
Analyses never index a store by hand. This module turns an opened store (``interp.open_store``: done
samples only, lazily) into:

- a *sample table* (:func:`sample_table`, a pandas DataFrame, one row per sample): the sample's
  position in the store, its pairing coordinates (prompt, seed, replicate), condition, tag, and the
  per-sample scalar variables asked for (metric scores), loaded once;
- the list of metric variables (:func:`metric_variables`): per-sample ``score_*`` variables (higher is
  better) and ``lpips*`` distances to the sample's baseline; labels and axis units for each;
- sites by layer (:func:`select_sites`, :func:`site_label`) and the baseline subset
  (:func:`baseline_samples`).

Every "not there" raises :class:`~interp.analysis.errors.StoreLacks` naming the condition, metric,
layer or variable and how to produce it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from interp.analysis.errors import StoreLacks

METRIC_LABELS: tuple[tuple[str, str, str], ...] = (
    # (substring of the bare variable name, label, unit) - first match wins
    ("clip_t_x100", "CLIP-T x100", "100 x cosine"),
    ("clipscore", "CLIPScore", "2.5 x cosine"),
    ("clip_t", "CLIP-T", "cosine"),
    ("hps", "HPS-v2", "cosine"),
    ("imagereward", "ImageReward", "normalised reward"),
    ("image_reward", "ImageReward", "normalised reward"),
    ("lpips", "LPIPS", "distance to baseline"),
    ("vqa", "BLIP-2 VQA", "accuracy"),
)
METRIC_ORDER = ("clip_t", "image_reward", "imagereward", "hps", "clipscore", "vqa", "lpips")
DERIVED = {"score_clipscore": "score_clip_t", "score_clip_t_x100": "score_clip_t"}
"""Monotone transforms of another score (CLIPScore conventions of CLIP-T): left out when it is present."""
FEATURE_VARIABLES = ("inception_pool3", "score_inception_pool3", "inception_features")
"""Per-image Inception features for FID, first found wins (dims: sample, feature)."""


def load(store: str | os.PathLike | xr.Dataset) -> xr.Dataset:
    """An opened store: a path is opened with ``interp.open_store`` (done samples only)."""
    if isinstance(store, xr.Dataset):
        return store
    from interp.store.zarr_io import open_store

    return open_store(store)


def strings(values: Iterable[object]) -> np.ndarray:
    """Plain Python-string object array (xarray reads zarr strings as ``StringDType``)."""
    return np.array([str(v) for v in np.asarray(values).ravel()], dtype=object)


def require_variables(ds: xr.Dataset, names: Sequence[str], *, analysis: str, hint: str = "") -> None:
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise StoreLacks("variable", missing, analysis=analysis, hint=hint)


def is_distance(name: str) -> bool:
    """Metrics that are already a distance to the sample's baseline image (LPIPS)."""
    return name.removeprefix("score_").lower().startswith("lpips")


def metric_variables(ds: xr.Dataset) -> list[str]:
    """Per-sample metric variables: ``score_*`` and ``lpips*`` with dims ``(sample,)``, in paper order
    (CLIPScore-convention copies of CLIP-T are left out when ``score_clip_t`` is there)."""
    found = [
        str(n)
        for n, v in ds.data_vars.items()
        if v.dims == ("sample",)
        and (str(n).startswith("score_") or str(n).lower().startswith("lpips"))
        and np.issubdtype(v.dtype, np.number)
    ]
    found = [n for n in found if not (n in DERIVED and DERIVED[n] in found)]

    def order(name: str) -> tuple[int, str]:
        bare = name.removeprefix("score_").lower()
        for i, key in enumerate(METRIC_ORDER):
            if bare.startswith(key):
                return (i, name)
        return (len(METRIC_ORDER), name)

    return sorted(found, key=order)


def require_metrics(ds: xr.Dataset, *, analysis: str, names: Sequence[str] | None = None) -> list[str]:
    """The metrics an analysis uses (``names`` if given, else all); StoreLacks if none or one is missing."""
    have = metric_variables(ds)
    hint = "score the store first: `interp score STORE --metrics clip_t hps image_reward lpips`"
    if names is None:
        if not have:
            raise StoreLacks("metric", ["score_*", "lpips_vs_baseline"], analysis=analysis, have=[], hint=hint)
        return have
    missing = [n for n in names if n not in have]
    if missing:
        raise StoreLacks("metric", missing, analysis=analysis, have=have, hint=hint)
    return list(names)


def metric_label(name: str) -> str:
    bare = name.removeprefix("score_").lower()
    for key, label, _ in METRIC_LABELS:
        if key in bare:
            return label
    return name.removeprefix("score_")


def metric_unit(name: str) -> str:
    bare = name.removeprefix("score_").lower()
    for key, _, unit in METRIC_LABELS:
        if key in bare:
            return unit
    return "score units"


def delta_label(name: str) -> str:
    """Axis label of an effect on ``name``: a difference for scores, the distance itself for LPIPS."""
    if is_distance(name):
        return f"{metric_label(name)} ({metric_unit(name)})"
    return f"Δ {metric_label(name)} ({metric_unit(name)})"


def feature_variable(ds: xr.Dataset, *, analysis: str) -> str:
    for name in FEATURE_VARIABLES:
        if name in ds.data_vars and ds[name].dims[0] == "sample" and ds[name].ndim == 2:
            return name
    raise StoreLacks(
        "Inception features",
        FEATURE_VARIABLES,
        analysis=analysis,
        hint="score the store with the inception metric: `interp score STORE --metrics inception`",
    )


PAIR_COORDS = ("prompt", "seed", "replicate", "prompt_index", "condition", "tag")


def sample_table(ds: xr.Dataset, variables: Sequence[str] = ()) -> pd.DataFrame:
    """One row per sample: ``sample`` (position in ``ds``), the pairing coordinates, ``variables``."""
    n = ds.sizes.get("sample", 0)
    cols: dict[str, object] = {"sample": np.arange(n)}
    for name in PAIR_COORDS:
        if name in ds.variables and ds[name].dims == ("sample",):
            values = ds[name].values
            cols[name] = strings(values) if values.dtype.kind not in "iufb" else values
    if "condition" not in cols:
        cols["condition"] = np.array(["baseline"] * n, dtype=object)
    if "tag" not in cols:
        cols["tag"] = np.array([""] * n, dtype=object)
    for name in variables:
        cols[name] = np.asarray(ds[name].values, dtype=np.float64)
    return pd.DataFrame(cols)


def conditions(ds: xr.Dataset) -> list[str]:
    """Condition names in store order (first appearance)."""
    if "condition" not in ds.variables:
        return ["baseline"]
    return list(dict.fromkeys(strings(ds["condition"].values)))


def baseline_samples(ds: xr.Dataset, baseline: str, *, analysis: str) -> xr.Dataset:
    """The samples of the baseline condition (all samples of a store without conditions)."""
    if "condition" not in ds.variables:
        return ds
    names = strings(ds["condition"].values)
    idx = np.flatnonzero(names == baseline)
    if idx.size == 0:
        raise StoreLacks(
            "condition",
            [baseline],
            analysis=analysis,
            have=list(dict.fromkeys(names)),
            hint="observation analyses read the unedited condition; pass --baseline NAME to choose another",
        )
    return ds.isel(sample=idx)


def steps_run(ds: xr.Dataset) -> list[int]:
    """The numbers of denoising steps the samples of ``ds`` ran (sorted, distinct).

    A store's ``step`` axis is as long as its longest condition; a sample of a shorter one is padded
    with missing values, so the axis length is not a sample's step count. Read from the per-sample
    ``num_inference_steps`` coordinate (sweeps) or else the steps with a finite ``t_over_T``."""
    if "num_inference_steps" in ds.variables and ds["num_inference_steps"].dims == ("sample",):
        return sorted({int(v) for v in np.asarray(ds["num_inference_steps"].values).ravel()})
    if "t_over_T" in ds.variables:
        t = np.asarray(ds["t_over_T"].values, dtype=np.float64)
        counts = np.isfinite(t).sum(axis=-1)
        return sorted({int(c) for c in np.atleast_1d(counts).ravel()})
    return [int(ds.sizes.get("step", 0))]


def steps_text(steps: Sequence[int]) -> str:
    """``4 steps`` or ``4 or 8 steps`` (samples with different step counts)."""
    return f"{' or '.join(str(s) for s in steps)} step{'' if list(steps) == [1] else 's'}"


def site_paths(ds: xr.Dataset) -> list[str]:
    return [str(s) for s in ds["site"].values]


def site_label(ds: xr.Dataset, site: str) -> str:
    """Short layer label: ``L12`` (block index), with the module's attention name if a block has several."""
    paths = site_paths(ds)
    blocks = dict(zip(paths, (int(b) for b in ds["site_block"].values), strict=True)) if "site_block" in ds else {}
    block = blocks.get(site)
    if block is None:
        return site
    same_block = [p for p, b in blocks.items() if b == block]
    label = f"L{block}"
    if len(same_block) > 1:
        label += " " + site.rsplit(".", 1)[-1]
    return label


def select_sites(ds: xr.Dataset, layers: Sequence[int | str] | None, *, analysis: str) -> list[str]:
    """Sites by block index or module path (None: all); StoreLacks naming an absent layer."""
    paths = site_paths(ds)
    if layers is None:
        return paths
    blocks = [int(b) for b in ds["site_block"].values] if "site_block" in ds else []
    out: list[str] = []
    missing: list[str] = []
    for spec in layers:
        if isinstance(spec, int | np.integer) or (isinstance(spec, str) and spec.isdigit()):
            hits = [p for p, b in zip(paths, blocks, strict=True) if b == int(spec)]
        else:
            hits = [p for p in paths if p == spec]
        if not hits:
            missing.append(str(spec))
        out.extend(h for h in hits if h not in out)
    if missing:
        raise StoreLacks("layer", missing, analysis=analysis, have=paths, hint="record these layers in the sweep")
    return out


def same_prompt_repeats(prompts: np.ndarray) -> bool:
    """Whether some prompt occurs more than once (several seeds): CIs must then resample prompts."""
    values = np.asarray(prompts)
    return np.unique(values).size < values.size
