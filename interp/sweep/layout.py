"""The layout of a sweep store: every per-sample variable's dims, sizes and dtype, and how a trace fits in.

Design
------
A sweep store is created once, before workers write, so its axes must already be large enough for
every sample: conditions may differ in steps, recorded sites, CFG branches (guidance 1 has no uncond
branch), edits or recorded variables. :meth:`StoreLayout.from_traces` takes the traces of the first
prompt's conditions and forms their union: *label* axes (those indexed by strings: ``site``,
``branch``, ``stream``, ``norm_ord``, ``layout``) are unions of labels (sites in model order,
branches as ``[uncond, cond]``); *positional* axes (``step``, ``call``, ``head``, ``key``, ``rank``,
``edit``, image pixels, ...) take the largest size. Axes are classified by their index coordinate's
dtype, not by name, so variables the schema gains later (edit bookkeeping) need no change here.
:meth:`StoreLayout.from_store` reads the same description back from a store, so every worker conforms
its samples to the store that exists, whoever created it.

:func:`conform` places one trace into the store's shapes: label axes are matched by label, positional
axes by position, and everything else is the missing value (NaN for floats, -1 for integers, False,
"" for strings, 0 for uint8 images). Every variable of the store is written for every sample, so a
redone sample never keeps a stale chunk. A trace that does not fit (an unknown site, a longer axis,
a variable the store lacks, a site whose head or key count differs) raises :class:`LayoutError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from interp.adapters.base import BRANCHES
from interp.store.schema import ADDED_VARIABLES, STATIC_COORDS, strings

STRING = np.dtypes.StringDType()


class LayoutError(ValueError):
    """A trace that does not fit the store's layout, or traces that cannot share one store."""


@dataclass(frozen=True)
class VarLayout:
    dims: tuple[str, ...]
    dtype: np.dtype
    attrs: Mapping[str, Any]
    coord: bool  # a per-sample coordinate (timestep, key identities) rather than a data variable


def fill_value(dtype: np.dtype) -> Any:
    """The missing value of a dtype in a sweep store."""
    if dtype.kind == "f":
        return np.nan
    if dtype.kind == "b":
        return False
    if dtype.kind in "TUSO":
        return ""
    if dtype == np.uint8:
        return 0
    return -1


def _dtype(arr: Any) -> np.dtype:
    dt = np.asarray(arr).dtype if not isinstance(arr, np.dtype) else arr
    return STRING if dt.kind in "TUSO" else dt


def is_label_dim(ds: xr.Dataset, dim: str) -> bool:
    """An axis indexed by strings (sites, branches, ...): matched by label, not by position."""
    return dim in ds.coords and ds[dim].dtype.kind in "TUSO"


def per_sample_names(ds: xr.Dataset) -> list[str]:
    """Variables of a trace dataset that vary per sample: data variables and non-static coordinates."""
    coords = [n for n in ds.coords if n not in STATIC_COORDS and n not in ds.dims]
    return [*ds.data_vars, *coords]


def _count_varies(ds: xr.Dataset) -> bool:
    """Whether an edit of this trace chooses a data-dependent number of keys (``match="mass"``)."""
    if "edit_plan" not in ds:
        return False
    items = []
    for text in ds.edit_plan.values.ravel():
        value = json.loads(str(text) or "[]")
        items.extend(value if isinstance(value, list) else [value])
    return any(item.get("selector", {}).get("match") == "mass" for item in items)


def _static_names(ds: xr.Dataset) -> list[str]:
    return [n for n in ds.coords if n in STATIC_COORDS and n not in ds.dims]


@dataclass
class StoreLayout:
    sizes: dict[str, int]
    labels: dict[str, tuple[str, ...]]  # label axes
    variables: dict[str, VarLayout]
    static: dict[str, tuple[tuple[str, ...], np.ndarray]]
    attrs: dict[str, Any]
    indexed: tuple[str, ...] = ()  # positional axes with an index coordinate (0, 1, ...)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.sizes[d] for d in self.variables[name].dims)

    def dim_coords(self) -> dict[str, np.ndarray]:
        """Index coordinates: labels for label axes, ``arange`` for the positional axes that had one."""
        out: dict[str, np.ndarray] = {d: strings(list(v)) for d, v in self.labels.items()}
        for d in self.indexed:
            out[d] = np.arange(self.sizes[d])
        return out

    # --- construction ------------------------------------------------------------------------------
    @classmethod
    def from_traces(
        cls, datasets: Sequence[xr.Dataset], site_order: Sequence[str] = (), key_capacity: int | None = None
    ) -> StoreLayout:
        """The union layout of several traces (the first prompt's conditions); ``key_capacity`` widens the
        ``key`` axis to the most keys any prompt can give (``Adapter.key_capacity``: text lengths that
        depend on the prompt, Qwen-Image's unpadded text)."""
        if not datasets:
            raise LayoutError("no trace to build a store layout from")
        labels: dict[str, list[str]] = {}
        sizes: dict[str, int] = {}
        variables: dict[str, VarLayout] = {}
        indexed: set[str] = set()
        for ds in datasets:
            for d, n in ds.sizes.items():
                if is_label_dim(ds, d):
                    have = labels.setdefault(d, [])
                    have.extend(v for v in (str(x) for x in ds[d].values) if v not in have)
                else:
                    sizes[d] = max(sizes.get(d, 0), int(n))
                    if d in ds.coords:
                        indexed.add(d)
            for name in per_sample_names(ds):
                var = ds[name]
                new = VarLayout(tuple(var.dims), _dtype(var.dtype), dict(var.attrs), name in ds.coords)
                old = variables.setdefault(name, new)
                if old.dims != new.dims or old.dtype != new.dtype:
                    raise LayoutError(
                        f"variable {name!r} has dims/dtype {new.dims}/{new.dtype} in one trace and "
                        f"{old.dims}/{old.dtype} in another"
                    )
                if old.attrs != new.attrs:
                    raise LayoutError(
                        f"variable {name!r} has attributes {new.attrs} in one trace and {old.attrs} "
                        "in another: one store gives each variable one meaning"
                    )
        order = {p: i for i, p in enumerate(site_order)}
        if "site" in labels:
            labels["site"].sort(key=lambda p: order.get(p, len(order)))
        if "branch" in labels:
            labels["branch"].sort(key=lambda b: BRANCHES.index(b) if b in BRANCHES else len(BRANCHES))
        for d, v in labels.items():
            sizes[d] = len(v)
        if key_capacity is not None and "key" in sizes:
            sizes["key"] = max(sizes["key"], int(key_capacity))
        if "edit_rank" in sizes and "key" in sizes and any(_count_varies(ds) for ds in datasets):
            # a mass-matched random control draws a data-dependent number of keys, at most a site's keys:
            # the first prompt's count is no bound for the others
            sizes["edit_rank"] = max(sizes["edit_rank"], sizes["key"])
        layout = cls(
            sizes,
            {d: tuple(v) for d, v in labels.items()},
            variables,
            {},
            dict(datasets[0].attrs),
            tuple(sorted(indexed)),
        )
        static: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
        for ds in datasets:
            idx = layout._indices(ds)
            for name in _static_names(ds):
                var = ds[name]
                dims = tuple(var.dims)
                if name not in static:
                    dt = _dtype(var.dtype)
                    static[name] = (dims, np.full([sizes[d] for d in dims], fill_value(dt), dtype=dt))
                cls._place(static[name][1], [idx[d] for d in dims], np.asarray(var.values))
        layout.static = static
        for ds in datasets:
            layout.check_static(ds)
        return layout

    @classmethod
    def from_store(cls, ds: xr.Dataset, per_sample: Sequence[str]) -> StoreLayout:
        """The layout of an opened sweep store; ``per_sample`` names the variables workers write."""
        labels = {d: tuple(str(v) for v in ds[d].values) for d in ds.dims if is_label_dim(ds, d)}
        indexed = tuple(sorted(d for d in ds.dims if d in ds.coords and d != "sample" and d not in labels))
        sizes = {d: int(n) for d, n in ds.sizes.items() if d != "sample"}
        variables = {}
        for name in per_sample:
            var = ds[name]
            variables[name] = VarLayout(tuple(var.dims[1:]), _dtype(var.dtype), dict(var.attrs), name in ds.coords)
        static = {
            n: (tuple(ds[n].dims), np.asarray(ds[n].values))
            for n in ds.coords
            if n in STATIC_COORDS and n not in ds.dims
        }
        return cls(sizes, labels, variables, static, dict(ds.attrs), indexed)

    # --- placing a trace -----------------------------------------------------------------------------
    def _indices(self, ds: xr.Dataset) -> dict[str, slice | np.ndarray]:
        """Where each axis of ``ds`` goes in the store: a leading slice, or label positions."""
        idx: dict[str, slice | np.ndarray] = {}
        for d, n in ds.sizes.items():
            if d in self.labels:
                pos = {v: i for i, v in enumerate(self.labels.get(d, ()))}
                values = [str(v) for v in ds[d].values]
                missing = [v for v in values if v not in pos]
                if missing:
                    raise LayoutError(
                        f"this trace has {d} {missing}, which the store does not hold (it holds {list(pos)})"
                    )
                where = np.array([pos[v] for v in values], dtype=np.int64)
                idx[d] = slice(0, n) if np.array_equal(where, np.arange(n)) else where
            else:
                if d not in self.sizes:
                    raise LayoutError(f"this trace has an axis {d!r} that the store does not have")
                if n > self.sizes[d]:
                    raise LayoutError(f"this trace has {n} entries along {d!r}, the store at most {self.sizes[d]}")
                idx[d] = slice(0, n)
        return idx

    @staticmethod
    def _place(out: np.ndarray, where: Sequence[slice | np.ndarray], values: np.ndarray) -> None:
        if all(isinstance(w, slice) for w in where):
            out[tuple(where)] = values
        else:
            out[np.ix_(*[np.arange(w.stop) if isinstance(w, slice) else w for w in where])] = values

    @staticmethod
    def _take(values: np.ndarray, where: Sequence[slice | np.ndarray]) -> np.ndarray:
        if all(isinstance(w, slice) for w in where):
            return values[tuple(where)]
        return values[np.ix_(*[np.arange(w.stop) if isinstance(w, slice) else w for w in where])]

    def check_static(self, ds: xr.Dataset) -> None:
        """The trace's static coordinates (site heads and keys, ...) must agree with the store's."""
        idx = self._indices(ds)
        for name in _static_names(ds):
            if name not in self.static:
                raise LayoutError(f"this trace has a static coordinate {name!r} that the store lacks")
            dims, values = self.static[name]
            mine = np.asarray(ds[name].values)
            theirs = self._take(values, [idx[d] for d in ds[name].dims])
            if tuple(ds[name].dims) != dims or not np.array_equal(mine.astype(theirs.dtype), theirs):
                raise LayoutError(f"this trace's {name} {mine.tolist()} differs from the store's {theirs.tolist()}")

    def conform(self, ds: xr.Dataset) -> dict[str, np.ndarray]:
        """Arrays of one sample in the store's shapes (no sample axis), missing values where absent."""
        idx = self._indices(ds)
        self.check_static(ds)
        # a store created before a variable was added to the schema keeps the variables it has
        extra = sorted(set(per_sample_names(ds)) - set(self.variables) - set(ADDED_VARIABLES))
        if extra:
            raise LayoutError(f"this trace records {extra}, which the store does not hold")
        out: dict[str, np.ndarray] = {}
        for name, vl in self.variables.items():
            shape = self.shape(name)
            if name not in ds.variables:
                out[name] = np.full(shape, fill_value(vl.dtype), dtype=vl.dtype)
                continue
            var = ds[name]
            if tuple(var.dims) != vl.dims:
                raise LayoutError(f"variable {name!r} has dims {var.dims} here and {vl.dims} in the store")
            values = np.asarray(var.values)
            values = strings(values) if vl.dtype == STRING else values.astype(vl.dtype, copy=False)
            if values.shape == shape and all(isinstance(idx[d], slice) for d in var.dims):
                out[name] = values  # the common case: the trace fills the store's axes exactly, no copy
                continue
            arr = np.full(shape, fill_value(vl.dtype), dtype=vl.dtype)
            self._place(arr, [idx[d] for d in var.dims], values)
            out[name] = arr
        return out
