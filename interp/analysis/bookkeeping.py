"""The edit bookkeeping of a store: which edit acted where, and the mass it removed (measured).

Design
------
Edited traces store, per edit (dim ``edit``) and per step, call, site, branch and head, the keys the
edit acted on (``edit_keys``, -1 padded along ``edit_rank``), their incoming mass before the edit
(``edit_mass_before``) and after it (``edit_mass_after``), and the entropy after the edit
(``edit_entropy_after``); NaN where the edit did not act. The edit's name is the ``edit`` coordinate
or, when the store keeps positional edits, the ``edit_name`` coordinate (per edit or per sample and
edit). :func:`edit_cells` returns, for one condition, the bookkeeping of each of its edits as arrays
(sample, step, call, site, branch, head) over that condition's samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from interp.analysis.data import strings
from interp.analysis.errors import StoreLacks

BOOK = ("edit_mass_before", "edit_mass_after")
HINT = "stores of edited traces record it (interp >= the edits release); re-run the sweep with edits"


@dataclass(frozen=True)
class EditCells:
    """One edit of one condition: arrays (sample, step, call, site, branch, head) and sample positions."""

    name: str
    before: np.ndarray
    after: np.ndarray
    entropy_after: np.ndarray | None
    samples: np.ndarray  # positions in the store

    @property
    def sites_acted(self) -> np.ndarray:
        """Boolean per site: the edit acted there at least once."""
        return np.isfinite(self.before).any(axis=(0, 1, 2, 4, 5))


def require_bookkeeping(ds: xr.Dataset, *, analysis: str) -> None:
    missing = [v for v in BOOK if v not in ds.data_vars]
    if missing:
        raise StoreLacks("edit bookkeeping variable", missing, analysis=analysis, hint=HINT)


def _names(ds: xr.Dataset, samples: np.ndarray) -> list[str]:
    if "edit_name" in ds.variables:
        en = ds["edit_name"]
        if "sample" in en.dims:
            en = en.isel(sample=int(samples[0]))
        return list(strings(en.values))
    return list(strings(ds["edit"].values)) if "edit" in ds.coords else [str(i) for i in range(ds.sizes["edit"])]


def edit_cells(
    ds: xr.Dataset, condition: str, *, analysis: str, names: tuple[str, ...] | None = None
) -> list[EditCells]:
    """Bookkeeping of every edit that acted in ``condition``'s samples.

    ``names``: the condition's edit names (from its plan), to read only those entries of ``edit`` when
    the ``edit`` coordinate holds names (a sweep's store holds every condition's edits side by side).
    """
    require_bookkeeping(ds, analysis=analysis)
    cond = strings(ds["condition"].values)
    samples = np.flatnonzero(cond == condition)
    if samples.size == 0:
        raise StoreLacks("condition", [condition], analysis=analysis, have=list(dict.fromkeys(cond)))
    dims = ("sample", "edit", "step", "call", "site", "branch", "head")
    sub = ds.isel(sample=samples)
    all_names = _names(ds, samples)
    if names and "edit_name" not in ds.variables and set(names) & set(all_names):
        keep = [i for i, n in enumerate(all_names) if n in names]
        sub = sub.isel(edit=keep)
        all_names = [all_names[i] for i in keep]
    before = np.asarray(sub["edit_mass_before"].transpose(*dims).values, dtype=np.float64)
    after = np.asarray(sub["edit_mass_after"].transpose(*dims).values, dtype=np.float64)
    ent = (
        np.asarray(sub["edit_entropy_after"].transpose(*dims).values, dtype=np.float64)
        if "edit_entropy_after" in sub
        else None
    )
    names = all_names
    out = []
    for e in range(before.shape[1]):
        b = before[:, e]
        if not np.isfinite(b).any():
            continue
        out.append(EditCells(names[e], b, after[:, e], None if ent is None else ent[:, e], samples))
    return out
