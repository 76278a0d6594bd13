"""The store schema (versioned): names, dimensions and meaning of everything a trace writes.

Design
------
One trace is one ``sample``. ``trace_dataset`` lays a finished trace out as an ``xarray.Dataset``
*without* the sample dimension (what ``Trace.stats`` shows); ``interp.store.zarr_io`` adds it when
writing. Dimensions:

- ``step`` (denoising step index), ``call`` (denoiser call within a step), ``site`` (module path of the
  attention, ragged sites padded: ``site_heads`` / ``site_keys`` say how many heads and keys are real,
  ``head_valid`` masks padded heads), ``branch`` (CFG branch: uncond / cond), ``head``, ``rank``
  (top-K keys), ``key`` (per-key tensors and token identities), ``stream`` (image / text rows),
  ``norm_ord`` ("2" / "inf"), ``layout`` (token layouts of the sites: SD3 has one, ``joint``).
- Static coordinates (the same for every sample of a store, checked on append) are listed in
  ``STATIC_COORDS``; everything else varies per sample (timesteps, token identities, prompt).

Missing values are NaN (floats) or -1 (integers): a site not recorded at a step, a head a site does
not have, a branch a call did not run. Strings are variable-length (numpy ``StringDType``). Every
bump of ``SCHEMA_VERSION`` must say here what changed. The statistics' variables come from the
catalogue (``interp.statistics``); the image, the clock and the edit-verification variables are
declared here.

Additions that keep the version (old stores stay valid, they just lack the variable) are listed in
``ADDED_VARIABLES``: a store created before one of them opens and analyses as before, and a trace
appended to such a store leaves the variable out (a store keeps the variables it was created with).

- ``timestep_received`` (step, call): the timestep each denoiser call received, at the precision it
  was used (its ``received_dtype`` attribute), scaled back to the scheduler's units by the adapter's
  ``timestep_scale`` (``StepClock.received``); NaN where a (step, call) did not run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from interp.adapters.base import LAYOUT_FIELDS, STREAMS, TokenLayout
from interp.statistics import CORE
from interp.statistics import variables as statistic_variables

SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class VarSpec:
    dims: tuple[str, ...]
    description: str


VARIABLES: dict[str, VarSpec] = {v.name: VarSpec(v.dims, v.description) for v in statistic_variables().values()}
"""Every variable a trace can write: the statistics' (``interp.statistics``) and their ``_before``
twins, the image, and the edit-verification variables."""
VARIABLES["image"] = VarSpec(("y", "x", "rgb"), "generated image, uint8")
VARIABLES["timestep_received"] = VarSpec(
    ("step", "call"),
    "timestep the denoiser received, at the precision it was used (attribute received_dtype), in the "
    "scheduler's units (times the adapter's timestep_scale); NaN where the call did not run",
)
ADDED_VARIABLES = ("timestep_received",)
"""Variables added without a schema version bump: a store created before them does not hold them."""

EDIT_DIMS = ("edit", *CORE)
EDIT_VARIABLES: dict[str, VarSpec] = {
    "edit_keys": VarSpec((*EDIT_DIMS, "edit_rank"), "keys the edit acted on (-1 padded), per head and branch"),
    "edit_n_keys": VarSpec(EDIT_DIMS, "number of keys the edit acted on"),
    "edit_mass_before": VarSpec(EDIT_DIMS, "incoming mass of the edited keys before the edit (measured, scope rows)"),
    "edit_mass_after": VarSpec(EDIT_DIMS, "incoming mass of the edited keys after the edit (measured, scope rows)"),
    "edit_entropy_after": VarSpec(EDIT_DIMS, "mean entropy of the scope rows after the edit (nats, bias included)"),
}
VARIABLES.update(EDIT_VARIABLES)
for _var in statistic_variables().values():
    if _var.before:
        VARIABLES[_var.name + "_before"] = VarSpec(_var.dims, _var.description + " (attention before the edits)")

STATIC_COORDS = (
    "site",
    "site_block",
    "site_kind",
    "site_heads",
    "site_keys",
    "site_key_layout",
    "site_query_layout",
    "head_valid",
    "branch",
    "stream",
    "norm_ord",
    "layout",
    "call",
    "step",
    "head",
    "rank",
    "key",
)
"""Coordinates that must agree across the samples of one store."""
KEY_FIELDS = LAYOUT_FIELDS
"""Token-identity fields stored per key as ``key_<field>`` coordinates (the fields of ``TokenLayout``);
``key_image_frame`` (the latent frame of a video token, -1 for text) only where a layout has frames."""


def strings(values: Sequence[str] | np.ndarray) -> np.ndarray:
    """Variable-length string array (what xarray reads back from zarr v3)."""
    return np.asarray([str(v) for v in np.asarray(values).ravel()], dtype=np.dtypes.StringDType()).reshape(
        np.shape(values)
    )


def _key_coords(
    layouts: Mapping[tuple[str, str], TokenLayout],
    layout_names: Sequence[str],
    branches: Sequence[str],
    n_key: int,
) -> dict[str, Any]:
    coords: dict[str, Any] = {}
    for f in KEY_FIELDS:
        given = [lay for lay in layouts.values() if getattr(lay, f) is not None]
        if f == "image_frame" and not given:
            continue  # an image family's layouts have no frames: no key_image_frame coordinate
        proto = given[0] if given else None
        kind = np.asarray(getattr(proto, f)).dtype if proto is not None else np.dtype(bool)
        if kind.kind in "US":
            arr = np.full((len(layout_names), len(branches), n_key), "", dtype=object)
        elif kind.kind == "b":
            arr = np.zeros((len(layout_names), len(branches), n_key), dtype=bool)
        else:
            arr = np.full((len(layout_names), len(branches), n_key), -1, dtype=np.int64)
        for li, name in enumerate(layout_names):
            for bi, br in enumerate(branches):
                lay = layouts.get((name, br))
                if lay is not None and getattr(lay, f) is not None:
                    v = np.asarray(getattr(lay, f))
                    arr[li, bi, : len(v)] = v
        if arr.dtype == object:
            arr = strings(arr)
        coords[f"key_{f}"] = (("layout", "branch", "key"), arr)
    return coords


def _pad_axis(arr: np.ndarray, axis: int, size: int) -> np.ndarray:
    if arr.shape[axis] >= size:
        return arr
    fill = -1 if np.issubdtype(arr.dtype, np.integer) else np.nan
    pad = list(arr.shape)
    pad[axis] = size - arr.shape[axis]
    return np.concatenate([arr, np.full(pad, fill, dtype=arr.dtype)], axis=axis)


def trace_dataset(
    *,
    arrays: Mapping[str, np.ndarray],
    sites: Sequence[Any],
    site_shapes: Mapping[str, tuple[int, int]],
    branches: Sequence[str],
    timesteps: Mapping[int, float],
    sigmas: Mapping[int, float],
    n_steps: int,
    n_calls: int,
    layouts: Mapping[tuple[str, str], TokenLayout],
    ords: Sequence[str],
    var_attrs: Mapping[str, Mapping[str, Any]],
    edit_names: Sequence[str] = (),
    edit_plans: Sequence[str] = (),
    map_index: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
    attrs: Mapping[str, Any],
    image: np.ndarray | None = None,
    received: Mapping[tuple[int, int], float] | None = None,
    received_dtype: str = "",
) -> xr.Dataset:
    """The dataset of one trace (no sample dimension). ``received``: the timestep each (step, call) of
    the denoiser got (``StepClock.received``), in ``received_dtype``; absent: no ``timestep_received``."""
    n_head = max([h for h, _ in site_shapes.values()] or [0])
    layout_names = sorted({name for name, _ in layouts})
    n_key = max([len(v) for v in layouts.values()] + [k for _, k in site_shapes.values()] + [0])
    data_vars: dict[str, Any] = {}
    per_edit = {n: a for n, a in arrays.items() if "#" in n}
    arrays = {n: a for n, a in arrays.items() if "#" not in n}
    for name, arr in arrays.items():
        spec = VARIABLES[name]
        if "head" in spec.dims:
            arr = _pad_axis(arr, spec.dims.index("head"), n_head)
        if "key" in spec.dims:
            arr = _pad_axis(arr, spec.dims.index("key"), n_key)
        data_vars[name] = xr.Variable(
            spec.dims, arr, attrs={"description": spec.description, **var_attrs.get(name, {})}
        )
    if image is not None:
        data_vars["image"] = xr.Variable(
            VARIABLES["image"].dims, image, attrs={"description": VARIABLES["image"].description}
        )
    if received is not None:
        got = np.full((n_steps, n_calls), np.nan, dtype=np.float64)
        for (step, call), value in received.items():
            got[step, call] = value
        spec = VARIABLES["timestep_received"]
        data_vars["timestep_received"] = xr.Variable(
            spec.dims,
            got,
            attrs={"description": spec.description, "received_dtype": received_dtype or "python number"},
        )
    heads = np.array([site_shapes.get(s.path, (0, 0))[0] for s in sites], dtype=np.int64)
    keys = np.array([site_shapes.get(s.path, (0, 0))[1] for s in sites], dtype=np.int64)
    steps = np.arange(n_steps)
    coords: dict[str, Any] = {
        "step": steps,
        "call": np.arange(n_calls),
        "site": strings([s.path for s in sites]),
        "branch": strings(list(branches)),
        "head": np.arange(n_head),
        "key": np.arange(n_key),
        "stream": strings(list(STREAMS)),
        "norm_ord": strings(list(ords)),
        "layout": strings(layout_names),
        "site_block": ("site", np.array([s.block for s in sites], dtype=np.int64)),
        "site_kind": ("site", strings([s.kind for s in sites])),
        "site_heads": ("site", heads),
        "site_keys": ("site", keys),
        "site_key_layout": ("site", strings([s.key_layout for s in sites])),
        "site_query_layout": ("site", strings([s.query_layout for s in sites])),
        "head_valid": (("site", "head"), np.arange(n_head)[None, :] < heads[:, None]),
        "timestep": ("step", np.array([timesteps.get(s, np.nan) for s in steps], dtype=np.float64)),
        "sigma": ("step", np.array([sigmas.get(s, np.nan) for s in steps], dtype=np.float64)),
        "t_over_T": ("step", steps / (n_steps - 1) if n_steps > 1 else np.zeros(n_steps)),
        **_key_coords(layouts, layout_names, branches, n_key),
    }
    edit_vars = _edit_arrays(per_edit, arrays, edit_names, n_head)
    for name, arr in edit_vars.items():
        spec = VARIABLES[name]
        data_vars[name] = xr.Variable(spec.dims, arr, attrs={"description": spec.description})
    if map_index:
        for dim, part in (("map_head", 0), ("map_query", 1), ("map_key", 2)):
            width = max(len(v[part]) for v in map_index.values())
            idx = np.full((len(sites), width), -1, dtype=np.int64)
            for si, s in enumerate(sites):
                if s.path in map_index:
                    vals = np.asarray(map_index[s.path][part])
                    idx[si, : len(vals)] = vals
            coords[f"{dim}_index"] = (("site", dim), idx)
    if edit_names:
        coords["edit"] = np.arange(len(edit_names))
        coords["edit_name"] = ("edit", strings(list(edit_names)))
        coords["edit_plan"] = ("edit", strings(list(edit_plans)))
    if any("rank" in VARIABLES[n].dims for n in arrays):
        coords["rank"] = np.arange(max(arrays[n].shape[-1] for n in arrays if "rank" in VARIABLES[n].dims))
    ds = xr.Dataset(data_vars, coords=coords, attrs={"schema_version": SCHEMA_VERSION, **attrs})
    return ds


def _edit_arrays(
    per_edit: Mapping[str, np.ndarray], arrays: Mapping[str, np.ndarray], edit_names: Sequence[str], n_head: int
) -> dict[str, np.ndarray]:
    """Stack per-edit buffers (``name#i``) into arrays with a leading ``edit`` axis."""
    if not edit_names:
        return {}
    out = {}
    core = next((a.shape[:4] for a in arrays.values()), None)
    for name, spec in EDIT_VARIABLES.items():
        per = [per_edit.get(f"{name}#{i}") for i in range(len(edit_names))]
        shape_src = next((a for a in per if a is not None), None)
        if shape_src is None and core is None:
            continue
        lead = shape_src.shape[:4] if shape_src is not None else core
        trailing = [n_head] + (
            [max(a.shape[5] for a in per if a is not None) if shape_src is not None else 1]
            if "edit_rank" in spec.dims
            else []
        )
        dtype = np.int32 if name in ("edit_keys", "edit_n_keys") else np.float32
        fill = -1 if dtype == np.int32 else np.nan
        arr = np.full((len(edit_names), *lead, *trailing), fill, dtype=dtype)
        for i, a in enumerate(per):
            if a is not None:
                arr[(i, *(slice(0, n) for n in a.shape))] = a
        out[name] = arr
    return out


def plan_attrs(plan_json: str) -> dict[str, str]:
    """The plan as a JSON string attribute (never pickled: opening a store executes no code)."""
    json.loads(plan_json)
    return {"plan": plan_json}
