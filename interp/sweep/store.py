"""Sweep stores: created once with every row, then filled by disjoint one-sample region writes.

Design (docs/design.md, The store)
----------------------------
:func:`create_store` writes, once and before any worker writes data, every array with all
``n_samples`` rows (one sample per chunk; large per-sample arrays are also split along their first
inner axis), the static coordinates, the per-sample index coordinates known from the config (prompt,
tag, seed, condition, ...: single-chunk arrays written only here), the attributes and the consolidated
metadata. It builds the store in a hidden sibling folder and renames it into place, so the store either
exists complete or not at all: its existence is the creation marker other ranks wait for.

Workers then only write regions: :meth:`SampleStore.write_sample` writes every per-sample array of one
sample through ``zarr`` directly, concurrently, in two halves (the arrays and their encodings exist;
going through ``xarray.to_zarr`` per sample would reopen and re-validate the store each time), and
then, last and in its own write, the sample's ``done`` flag. Metadata is never rewritten after
creation. Zarr's local store writes each chunk to a ``*.partial`` file and renames it into place,
so a kill leaves whole chunks but possibly a sample with data and no flag (redone on resume) and
stray ``*.partial`` files, which :func:`remove_partials` deletes for samples that no live worker is
writing.

Compression: zarr's default (zstd) for everything except float variables with a ``key`` axis (full
per-key mass), which barely compress (docs/design.md, The store) and are stored uncompressed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from zarr.core.sync import sync as zarr_sync

from interp.store.schema import strings
from interp.store.zarr_io import is_zarr_store
from interp.sweep.layout import STRING, StoreLayout

SWEEP_FORMAT = "1"
SWEEP_VARS: dict[str, tuple[np.dtype, str]] = {
    "noise_sha": (STRING, "sha256 of the initial latents the pipeline drew (pairing check)"),
    "gen_seconds": (np.dtype(np.float64), "wall time of the traced generation of this sample (s)"),
}
DONE = "done"
INNER_CHUNK_BYTES = 32 * 2**20


class SweepStoreError(RuntimeError):
    """A sweep store that cannot be created, opened or written as asked."""


def _inner_chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """One sample per chunk; arrays over INNER_CHUNK_BYTES are also split along their first axis."""
    if not shape:
        return ()
    nbytes = int(np.prod(shape)) * itemsize
    if nbytes <= INNER_CHUNK_BYTES or shape[0] <= 1:
        return shape
    per = max(1, int(shape[0] * INNER_CHUNK_BYTES // nbytes))
    while shape[0] % per:  # a divisor: zarr stores edge chunks at full size
        per -= 1
    return (per, *shape[1:])


def create_store(
    path: str | os.PathLike,
    layout: StoreLayout,
    n_samples: int,
    index: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any],
) -> None:
    """Create the complete store (every array, coordinate, attribute; consolidated) atomically."""
    final = Path(path)
    if final.is_dir() and not final.is_symlink() and not any(final.iterdir()):
        final.rmdir()  # an empty folder made for the store (check_location accepts it): replaced
    if final.exists():
        raise SweepStoreError(f"cannot create {final}: it exists already")
    tmp = final.with_name(f".{final.name}.creating-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    data_vars: dict[str, Any] = {}
    coords: dict[str, Any] = {}
    encoding: dict[str, dict[str, Any]] = {}
    for name, vl in layout.variables.items():
        shape = layout.shape(name)
        itemsize = 16 if vl.dtype == STRING else vl.dtype.itemsize
        chunks = (1, *_inner_chunks(shape, itemsize))
        var = xr.Variable(
            ("sample", *vl.dims),
            da.empty((n_samples, *shape), dtype=vl.dtype, chunks=chunks),
            attrs=dict(vl.attrs),
        )
        (coords if vl.coord else data_vars)[name] = var
        encoding[name] = {"chunks": chunks}
        if vl.dtype.kind == "f" and "key" in vl.dims:
            encoding[name]["compressors"] = None
    for name, (dtype, description) in {**SWEEP_VARS, DONE: (np.dtype(bool), "sample complete")}.items():
        data_vars[name] = xr.Variable(
            ("sample",), da.empty((n_samples,), dtype=dtype, chunks=(1,)), attrs={"description": description}
        )
        encoding[name] = {"chunks": (1,)}
    for name, values in index.items():
        values = strings(values) if np.asarray(values).dtype.kind in "TUSO" else np.asarray(values)
        if len(values) != n_samples:
            raise SweepStoreError(f"index coordinate {name!r} has {len(values)} values for {n_samples} samples")
        coords[name] = ("sample", values)
    for name, (dims, values) in layout.static.items():
        coords[name] = (dims, values)
    coords.update(layout.dim_coords())
    ds = xr.Dataset(data_vars, coords=coords, attrs={**layout.attrs, **attrs})
    ds.attrs["sweep_format"] = SWEEP_FORMAT
    ds.attrs["sweep_per_sample"] = json.dumps(sorted(layout.variables))
    ds.attrs["sweep_index"] = json.dumps(sorted(index))
    ds.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=True, compute=False, encoding=encoding)
    try:
        os.rename(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SweepStoreError(f"could not move the new store into place at {final}: {exc}") from exc


def remove_stale_creations(path: str | os.PathLike) -> None:
    """Delete hidden half-built stores left by a creator that died (only call while none can be live)."""
    final = Path(path)
    if final.parent.is_dir():
        for p in final.parent.glob(f".{final.name}.creating-*"):
            shutil.rmtree(p, ignore_errors=True)


def wait_for_store(path: str | os.PathLike, timeout_s: float, poll_s: float = 0.2) -> None:
    """Block until the store exists (rank 0 creates it); ``SweepStoreError`` after ``timeout_s``."""
    p = Path(path)
    deadline = time.monotonic() + timeout_s
    while not is_zarr_store(p):
        if time.monotonic() > deadline:
            raise SweepStoreError(f"store {p} was not created within {timeout_s:.0f} s (did rank 0 fail?)")
        time.sleep(poll_s)


def open_sweep(path: str | os.PathLike) -> xr.Dataset:
    """Open a sweep store lazily with xarray (all samples; see ``done``)."""
    p = Path(path)
    if not is_zarr_store(p):
        raise SweepStoreError(f"{p} is not a Zarr v3 store")
    return xr.open_zarr(p, consolidated=True, chunks={})


def store_attrs(path: str | os.PathLike) -> dict[str, Any]:
    return dict(zarr.open_group(str(path), mode="r", use_consolidated=True).attrs)


def remove_partials(path: str | os.PathLike, removable: Callable[[int], bool]) -> int:
    """Delete ``*.partial`` chunk files whose sample index satisfies ``removable``; returns how many.

    A chunk key is ``<array>/c/<sample>/<...>``; files of arrays without a sample axis (written only at
    creation) are always removable.
    """
    root = Path(path)
    removed = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".partial"):
                continue
            full = Path(dirpath) / f
            parts = full.relative_to(root).parts
            sample = None
            if "c" in parts:
                i = parts.index("c")
                if i + 1 < len(parts) - 1:
                    with contextlib.suppress(ValueError):
                        sample = int(parts[i + 1])
            if sample is None or removable(sample):
                full.unlink(missing_ok=True)
                removed += 1
    return removed


class SampleStore:
    """Region writer of one existing sweep store (one per process)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not is_zarr_store(self.path):
            raise SweepStoreError(f"{self.path} is not a Zarr v3 store")
        self.group = zarr.open_group(str(self.path), mode="r+", use_consolidated=True)
        attrs = dict(self.group.attrs)
        if "sweep_per_sample" not in attrs:
            raise SweepStoreError(f"{self.path} is not a sweep store (no sweep_per_sample attribute)")
        self.per_sample: list[str] = json.loads(attrs["sweep_per_sample"])
        self.layout = StoreLayout.from_store(open_sweep(self.path), self.per_sample)
        names = [*self.per_sample, *SWEEP_VARS, DONE]
        # write_empty_chunks=True skips zarr's per-chunk "all fill value?" scan (np.array_equal with NaN
        # handling), measured 2-3x faster for large chunks; ``sparse`` is the default zarr behaviour for
        # arrays a sample does not record (all missing values): nothing written, any stale chunk deleted.
        self.arrays = {n: self.group[n].with_config({"write_empty_chunks": True}) for n in names}
        self.sparse = {n: self.group[n].with_config({"write_empty_chunks": False}) for n in names}
        self.n_samples = int(self.arrays[DONE].shape[0])

    def done(self) -> np.ndarray:
        return np.asarray(self.arrays[DONE][:], dtype=bool)

    def read(self, name: str, samples: Iterable[int] | None = None) -> np.ndarray:
        arr = self.arrays[name]
        return np.asarray(arr[:] if samples is None else arr.get_orthogonal_selection(list(samples)))

    def write_sample(
        self,
        index: int,
        arrays: Mapping[str, np.ndarray],
        fault: Callable[[str, int], None] | None = None,
        missing: Iterable[str] = (),
    ) -> None:
        """Write one sample's arrays, then its ``done`` flag last, in its own write.

        ``missing`` names arrays that hold only missing values for this sample (variables its trace does
        not record): their chunks are not written (and any earlier chunk of the sample is removed).
        """
        if not 0 <= index < self.n_samples:
            raise SweepStoreError(f"sample {index} is outside the store's 0..{self.n_samples - 1}")
        missing = sorted(set(self.arrays) - {DONE} - set(arrays))
        if missing:
            raise SweepStoreError(f"sample {index} lacks {missing}")
        hit = fault or (lambda point, i: None)
        hit("before_data", index)
        names = [n for n in self.arrays if n != DONE]
        half = len(names) // 2
        sparse = set(missing)
        self._write_arrays(index, {n: arrays[n] for n in names[:half]}, sparse)
        hit("mid_data", index)
        self._write_arrays(index, {n: arrays[n] for n in names[half:]}, sparse)
        hit("before_done", index)
        self.arrays[DONE][index] = True
        hit("after_done", index)

    def _write_arrays(self, index: int, arrays: Mapping[str, np.ndarray], sparse: set[str]) -> None:
        """Write several arrays' regions concurrently (zarr's own event loop; 2-4x faster than one by one
        for the many small per-sample arrays, the same for large ones)."""

        async def write_all() -> None:
            await asyncio.gather(
                *(
                    (self.sparse if n in sparse else self.arrays)[n].async_array.setitem(index, v)
                    for n, v in arrays.items()
                )
            )

        zarr_sync(write_all())
