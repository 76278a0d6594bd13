"""Writing traces into a Zarr v3 store through xarray, and opening stores for analysis.

Design
------
A store is one Zarr v3 group written by xarray: one ``sample`` per trace, chunked one sample per
chunk, so appending a trace writes new chunks and never rewrites earlier ones. ``append_trace``
conforms the new trace to the store (pads the step, call, head, key and rank axes with missing values
up to the store's sizes, refuses a trace that needs larger axes or other sites, leaves out the
variables added to the schema after the store was created: ``schema.ADDED_VARIABLES``), appends it along
``sample`` with ``done = False``, then sets ``done = True`` in a separate region write, last: a reader
(or a resumed sweep) trusts only samples whose flag is set. Appends from several processes are
serialised by an exclusive lock on a sibling ``<store>.lock`` file (``interp.store.lock``); sweeps
(many workers) instead pre-create their rows and write disjoint regions.

A store's meaning is fixed by its first trace (``interp.store.meaning``): ``append_trace`` with a
``TraceMeaning`` re-checks it under the lock and records a new condition's edits and call options in the
root attributes. Where a store may live (``interp.store.safety.check_location``) is checked before
generation by the tracer.

Consolidated metadata is passed explicitly on every write and open (docs/design.md, The store).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from interp.store.lock import append_lock
from interp.store.meaning import CONDITIONS_ATTR, check_trace_fits, identity_attrs
from interp.store.safety import StoreError, check_location, is_zarr_store
from interp.store.schema import ADDED_VARIABLES, STATIC_COORDS, strings

_CONSOLIDATED_NOTE = "Consolidated metadata is currently not part"


@contextlib.contextmanager
def _consolidated_quietly() -> Iterator[None]:
    """Silence zarr's note that consolidated metadata is not in the v3 spec, only around interp's own
    calls (interp stores are consolidated on purpose: one read opens them); the filter is restored on
    exit, never installed for the whole process."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CONSOLIDATED_NOTE, category=UserWarning)
        yield


@dataclass(frozen=True)
class TraceMeaning:
    """What a trace adds to a store's meaning (``interp.store.meaning``), checked again at append time."""

    identity: dict[str, Any]
    condition: str
    entry: dict[str, Any]
    allow_duplicate: bool = False
    sample: dict[str, Any] = field(default_factory=dict)


def check_store_path(path: str | os.PathLike) -> Path:
    """Refuse, before any generation, a path that cannot hold or extend a trace store."""
    return check_location(path, kind="trace")


def _with_sample(ds: xr.Dataset, sample_coords: dict[str, object]) -> xr.Dataset:
    """Add the sample dimension to every data variable and per-sample coordinate."""
    per_sample = [c for c in ds.coords if c not in STATIC_COORDS and c not in ds.dims]
    out = ds.reset_coords(per_sample).expand_dims("sample")
    static = [n for n in ds.coords if n in STATIC_COORDS and n not in ds.dims]
    for name in static:  # static coordinates keep their own dims
        out[name] = ds[name]
    out = out.set_coords([n for n in per_sample])
    for name, value in sample_coords.items():
        arr = strings([value]) if isinstance(value, str) else np.asarray([value])
        out = out.assign_coords({name: ("sample", arr)})
    out["done"] = ("sample", np.zeros(1, dtype=bool))
    return out


def _conform(new: xr.Dataset, store: xr.Dataset) -> xr.Dataset:
    """Pad ``new`` to the store's axis sizes; refuse what cannot fit."""
    for dim in ("site", "branch", "stream", "norm_ord", "layout"):
        a = [str(v) for v in np.asarray(store[dim].values)] if dim in store.dims else []
        b = [str(v) for v in np.asarray(new[dim].values)] if dim in new.dims else []
        if dim in store.dims and dim in new.dims and a != b:
            raise StoreError(
                f"this trace's {dim} axis {b} differs from the store's {a}; write traces of another plan "
                "or model to another store"
            )
    older = [n for n in ADDED_VARIABLES if n in new.data_vars and n not in store.variables]
    new = new.drop_vars(older)  # a store created before these variables keeps the ones it has
    missing = sorted(set(store.data_vars) - set(new.data_vars))
    extra = sorted(set(new.data_vars) - set(store.data_vars))
    if extra:
        raise StoreError(f"this trace records {extra}, which the store does not hold; use another store")
    if missing:
        raise StoreError(f"this trace lacks {missing}, which the store holds; use the same plan or another store")
    pads = {}
    for dim in ("step", "call", "head", "key", "rank"):
        if dim in store.dims:
            have, want = new.sizes.get(dim, 0), store.sizes[dim]
            if have > want:
                raise StoreError(f"this trace has {have} entries along {dim!r}, the store at most {want}")
            if have < want:
                pads[dim] = (0, want - have)
    if pads:
        padded = {}
        for name, var in new.variables.items():
            if name in new.dims:
                continue
            mine = {d: w for d, w in pads.items() if d in var.dims}
            if not mine:
                continue
            kind = var.dtype.kind
            fill = -1 if kind in "iu" else False if kind == "b" else "" if kind in "UST" else np.nan
            padded[name] = var.pad(mine, constant_values=fill).astype(var.dtype)
        coord_names = set(new.coords) - set(pads)
        data = {n: padded.get(n, new.variables[n]) for n in new.data_vars}
        coords = {n: padded.get(n, new.variables[n]) for n in coord_names}
        coords.update({dim: np.arange(store.sizes[dim]) for dim in pads})
        new = xr.Dataset(data, coords=coords, attrs=new.attrs)
        if "head_valid" in store.coords:
            new = new.assign_coords(head_valid=store["head_valid"].load())
    return new


def _encoding(ds: xr.Dataset) -> dict[str, dict]:
    """One sample per chunk; attention maps also one step and one site per chunk (they can be large)."""
    enc = {}
    for name, var in ds.variables.items():
        if "sample" in var.dims:
            one = ("sample", "step", "site") if "map_key" in var.dims else ("sample",)
            enc[name] = {"chunks": tuple(1 if d in one else s for d, s in zip(var.dims, var.shape, strict=True))}
    return enc


def append_trace(
    path: str | os.PathLike,
    ds: xr.Dataset,
    sample_coords: dict[str, object],
    meaning: TraceMeaning | None = None,
) -> int:
    """Append one trace as a new sample; returns its sample index. Earlier samples are not rewritten.

    With ``meaning``, the store's identity is checked (and, for a new store, recorded) under the lock.
    """
    p = check_store_path(path)
    new = _with_sample(ds, sample_coords)
    with append_lock(p), _consolidated_quietly():
        if meaning is not None:
            check_trace_fits(
                p,
                meaning.identity,
                meaning.condition,
                meaning.entry,
                {**sample_coords},
                allow_duplicate=meaning.allow_duplicate,
            )
        if not is_zarr_store(p):
            if meaning is not None:
                new.attrs.update(identity_attrs(meaning.identity, {meaning.condition: meaning.entry}))
            new.to_zarr(p, mode="w-", zarr_format=3, consolidated=True, encoding=_encoding(new))
            index = 0
        else:
            store = xr.open_zarr(p, consolidated=True)
            index = store.sizes["sample"]
            conditions = json.loads(store.attrs.get(CONDITIONS_ATTR, "{}"))
            new = _conform(new, store)
            keep = [n for n in new.variables if "sample" in new[n].dims or n in new.dims]
            new = new[keep].drop_vars([d for d in new.dims if d != "sample" and d in new.coords], errors="ignore")
            new.attrs = dict(store.attrs)  # the store's attributes stay those of its creation ...
            if meaning is not None and meaning.condition not in conditions:  # ... plus a new condition
                conditions[meaning.condition] = meaning.entry
                new.attrs[CONDITIONS_ATTR] = json.dumps(conditions, sort_keys=True)
            new.to_zarr(p, append_dim="sample", consolidated=True)
        flag = xr.Dataset({"done": ("sample", np.ones(1, dtype=bool))})
        flag.to_zarr(p, region={"sample": slice(index, index + 1)}, consolidated=True)
    return index


def open_store(path: str | os.PathLike, *, done_only: bool = True, chunks: dict | None = None) -> xr.Dataset:
    """Open a store lazily (dask); by default only samples whose ``done`` flag is set."""
    p = Path(path)
    if not is_zarr_store(p):
        raise StoreError(f"{p} is not a Zarr v3 store" + ("" if p.exists() else " (it does not exist)"))
    with _consolidated_quietly():
        ds = xr.open_zarr(p, consolidated=True, chunks=chunks if chunks is not None else {"sample": 64})
    if done_only and "done" in ds:
        ds = ds.isel(sample=np.flatnonzero(ds["done"].values))
    return ds
