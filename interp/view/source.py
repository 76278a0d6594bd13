"""One store opened for viewing: checked once, read lazily, with the small tables every view shares.

Design
------
:class:`StoreSource` opens a store through ``interp.open_store`` (xarray over dask: nothing is read until
a view asks for it), so a sweep of hundreds of prompts opens in the time it takes to read its metadata
and its per-sample coordinates. It refuses what cannot be viewed with a :class:`ViewError` whose message
says what is wrong and what to do (not a store, no finished sample); a half-finished store is viewed
over its finished samples, and the overview says how many are pending. Views never write to a store.

The sample table (condition, prompt, seed, tag per finished sample) is read once; everything else is
read per request, for the selection the request names.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from interp.analysis.data import conditions as store_conditions
from interp.analysis.data import site_label
from interp.analysis.token_identity import as_str

HEAT_VARIABLES: dict[str, str] = {
    # store variable: label in the sink-dynamics view (the first present is the default)
    "max_mass": "max incoming mass",
    "entropy": "entropy (nats)",
    "mass_topk": "top-k incoming mass",
    "query_topk": "query top-k mass",
    "act_pre_max": "act norm |AV| max (image, inf)",
    "act_pre_p95": "act norm |AV| p95 (image, inf)",
}


KEEP = 8
"""Loaded selections a store keeps for its views (``StoreSource.selection_values``)."""


class ViewError(ValueError):
    """A store (or a request) the viewer cannot show; the message says why and what to do."""


@dataclass(frozen=True)
class Selection:
    """Which samples a request covers: one condition, then all of its samples or one."""

    condition: str
    sample: int | None  # a position in the store's finished samples; None: every sample of the condition


class StoreSource:
    """A store opened lazily for the views (see the module docstring)."""

    def __init__(self, path: str | os.PathLike) -> None:
        from interp.store.safety import is_zarr_store
        from interp.store.zarr_io import open_store

        self.path = Path(path)
        if not self.path.exists():
            raise ViewError(f"{self.path} does not exist; give the path of a store that interp wrote")
        if not is_zarr_store(self.path):
            raise ViewError(f"{self.path} is not an interp store (no Zarr v3 metadata); give a store that interp wrote")
        try:
            everything = open_store(self.path, done_only=False)
        except Exception as exc:  # a Zarr group that xarray cannot read as a dataset
            raise ViewError(f"{self.path} cannot be read as an interp store: {exc}") from exc
        if "sample" not in everything.dims:
            raise ViewError(f"{self.path} has no sample axis: it is not a store of traces")
        done = (
            np.asarray(everything["done"].values, bool)
            if "done" in everything
            else np.ones(everything.sizes["sample"], bool)
        )
        self.n_total = int(done.size)
        self.n_done = int(done.sum())
        if self.n_done == 0:
            what = "is empty" if self.n_total == 0 else f"has no finished sample yet (0 of {self.n_total} done)"
            raise ViewError(f"{self.path} {what}: nothing to show; run or resume the sweep that writes it")
        self.ds: xr.Dataset = everything.isel(sample=np.flatnonzero(done))
        self.cache: dict[Any, Any] = {}  # results of this store's views (paired effects, pairs)

    @property
    def name(self) -> str:
        return self.path.name

    @cached_property
    def samples(self) -> pd.DataFrame:
        """One row per finished sample: position, condition, prompt, seed, tag (read once)."""
        n = self.ds.sizes["sample"]
        cols: dict[str, Any] = {"position": np.arange(n)}
        for name, default in (("condition", "baseline"), ("prompt", ""), ("seed", -1), ("tag", "")):
            if name in self.ds.variables:
                values = self.ds[name].values
                cols[name] = as_str(values) if name in ("condition", "prompt", "tag") else np.asarray(values)
            else:
                cols[name] = np.full(n, default)
        return pd.DataFrame(cols)

    @cached_property
    def conditions(self) -> list[str]:
        return store_conditions(self.ds)

    @cached_property
    def baseline(self) -> str:
        name = str(self.ds.attrs.get("sweep_baseline", "baseline"))
        return name if name in self.conditions else self.conditions[0]

    @cached_property
    def sites(self) -> list[str]:
        return [str(s) for s in self.ds["site"].values] if "site" in self.ds.dims else []

    @cached_property
    def site_labels(self) -> list[str]:
        return [site_label(self.ds, s) for s in self.sites]

    @cached_property
    def branches(self) -> list[str]:
        return [str(b) for b in self.ds["branch"].values] if "branch" in self.ds.dims else []

    @cached_property
    def heat_variables(self) -> list[str]:
        return [v for v in HEAT_VARIABLES if v in self.ds.data_vars and "site" in self.ds[v].dims]

    @cached_property
    def condition_entries(self) -> dict[str, Any]:
        """Each condition's recorded description (``sweep_conditions`` or ``conditions``), by name."""
        for attr in ("sweep_conditions", "conditions"):
            raw = self.ds.attrs.get(attr)
            if not raw:
                continue
            value = json.loads(raw)
            if isinstance(value, list):
                return {str(e.get("name")): e for e in value if isinstance(e, dict)}
            if isinstance(value, dict):
                return {str(k): v for k, v in value.items()}
        return {}

    def positions(self, sel: Selection) -> np.ndarray:
        """Finished-sample positions of a selection; ViewError for an unknown condition or sample."""
        table = self.samples
        if sel.condition not in self.conditions:
            raise ViewError(f"condition {sel.condition!r} is not in {self.name} (it has {self.conditions})")
        idx = table.index[table["condition"] == sel.condition].to_numpy()
        if sel.sample is None:
            return idx
        if sel.sample not in set(idx.tolist()):
            raise ViewError(f"sample {sel.sample} is not a finished sample of condition {sel.condition!r}")
        return np.array([sel.sample])

    def sample_label(self, position: int) -> str:
        row = self.samples.iloc[position]
        return f"#{position} seed {row['seed']}: {row['prompt']}"

    def layout_of(self, site: int, side: str = "key") -> int:
        """Index of the token layout of a site's keys (``side="key"``) or queries (``"query"``): the
        store's ``site_key_layout`` / ``site_query_layout`` (a video family's self-attention keys are the
        video tokens, its cross-attention keys the text), layout 0 for a store that names none and holds
        one. A site naming a layout the store does not hold is an error (never read in another layout)."""
        name = f"site_{side}_layout"
        if name not in self.ds.variables or "layout" not in self.ds.dims:
            if self.ds.sizes.get("layout", 1) != 1:
                raise ViewError(f"{self.name} holds several token layouts but no {name}")
            return 0
        layouts = [str(v) for v in self.ds["layout"].values]
        value = str(self.ds[name].values[site])
        if value not in layouts:
            raise ViewError(f"{self.name}: site {site} names {side} layout {value!r}, not among {layouts}")
        return layouts.index(value)

    def has_frames(self) -> bool:
        """Whether the store's layouts carry a video frame (``key_image_frame``)."""
        return "key_image_frame" in self.ds.variables

    def key_table(self, position: int, branch: str, layout: int) -> pd.DataFrame:
        """The token layout ``layout`` of one sample and branch: text, modality, class, image frame (video;
        -1 otherwise), row and col."""
        from interp.analysis.token_identity import key_classes
        from interp.edits.words import WORD_CLASSES

        if ("key_table", position, branch, layout) in self.cache:
            return self.cache[("key_table", position, branch, layout)]
        names = [n for n in self.ds.variables if str(n).startswith("key_") and "sample" in self.ds[n].dims]
        one = self.ds[names].isel(sample=[position]).load()
        b = self.branches.index(branch) if branch in self.branches else 0
        fields = {}
        for f in ("token_str", "modality", "image_row", "image_col", "is_bos", "is_eos", "is_pad"):
            name = f"key_{f}"
            if name not in one.variables:
                return pd.DataFrame()
            arr = one[name].isel(layout=layout).values[0, b]
            fields[f] = as_str(arr) if f in ("token_str", "modality") else np.asarray(arr)
        frame = one["key_image_frame"].isel(layout=layout).values[0, b] if self.has_frames() else None
        fields["image_frame"] = np.full(len(fields["modality"]), -1) if frame is None else np.asarray(frame)
        classes = key_classes(one, layout)[0, b]
        fields["class"] = np.array([WORD_CLASSES[c] if c >= 0 else "" for c in classes], dtype=object)
        table = pd.DataFrame(fields)
        self.cache[("key_table", position, branch, layout)] = table = table[table["modality"] != ""]
        return table

    def sample_values(self, name: str, position: int) -> np.ndarray:
        """One sample's values of a variable (its image, its map indices), read once."""
        key = ("sample_values", name, position)
        if key not in self.cache:
            da = self.ds[name]
            self.cache[key] = np.asarray((da.isel(sample=position) if "sample" in da.dims else da).values)
        return self.cache[key]

    def selection_values(self, da: xr.DataArray, name: str, positions: np.ndarray) -> xr.DataArray:
        """``da`` (a variable, maybe reduced to one stream and norm) at some samples, loaded; the last
        :data:`KEEP` selections are kept, so clicking through cells of one heat map reads the store once."""
        key = ("selection_values", name, tuple(int(p) for p in positions))
        if key not in self.cache:
            kept = [k for k in self.cache if isinstance(k, tuple) and k[0] == "selection_values"]
            for old in kept[: max(0, len(kept) - KEEP + 1)]:
                del self.cache[old]
            self.cache[key] = da.isel(sample=positions).load()
        return self.cache[key]

    def key_variables(self, positions: np.ndarray) -> xr.Dataset:
        """The token-identity variables (``key_*``) of some samples, loaded."""
        names = [n for n in self.ds.variables if str(n).startswith("key_") and "sample" in self.ds[n].dims]
        return self.ds[names].isel(sample=positions).load()
