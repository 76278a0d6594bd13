"""A trace store's meaning, fixed when it is created, and the check that a new trace keeps it.

Design
------
A store written by ``tracer.trace(..., store=S)`` holds samples that must be comparable: the same
model (family, pipeline class, checkpoint, denoiser config, dtype) and the same records (statistics,
sites, query set, ``top``, ``k``, ...): together the store's *identity*, written as the root attribute
``trace_identity`` by the first trace. Conditions differ by design (that is what they are for), but a
condition's meaning is fixed too: its edits and its pipeline call options (steps, guidance, size, ...)
are recorded under ``trace_conditions`` when the condition first appears, and a later trace of that
condition must match them.

:func:`check_trace_fits` runs before generation (``Trace.__exit__``, once the plan is closed) and
again under the store's lock just before the append (a concurrent writer may have created the store
meanwhile). It names every field that differs, as a sweep does for its config (the same
:func:`~interp.store.safety.differences`). A sample with the same prompt, negative prompt, seed and
condition as a done sample is a duplicate: refused unless the trace was opened with
``allow_duplicate=True`` (replicates on purpose).

Stores written before these attributes existed are checked against what they do hold: the first
trace's ``plan`` and provenance attributes (model and records; conditions unchecked).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interp.store.safety import StoreError, differences, root_attributes

MODEL_ATTRS = ("model_family", "pipeline_class", "model_id", "denoiser_config")
IDENTITY_ATTR = "trace_identity"
CONDITIONS_ATTR = "trace_conditions"


def _items(plan_json: str, kind: str) -> dict[str, dict[str, Any]]:
    """The plan's items of one kind, keyed by position (so a difference names ``records.0.queries``)."""
    return {str(i): item for i, item in enumerate(i for i in json.loads(plan_json) if i.get("type") == kind)}


def trace_identity(
    plan_json: str, provenance: Mapping[str, Any], dtype: str, record_sites: Sequence[Sequence[str]] | None = None
) -> dict[str, Any]:
    """What every sample of a trace store shares: the model and the records.

    ``record_sites``: per record, the site paths its ``layers`` resolved to; they replace the spec, so
    ``layers=[0, 3]`` and ``layers=[0, "transformer_blocks.3.attn"]`` (one set of sites) are one meaning."""
    model = {k: str(provenance.get(k, "")) for k in MODEL_ATTRS}
    model["dtype"] = dtype
    records = _items(plan_json, "Record")
    if record_sites is not None:
        for item, paths in zip(records.values(), record_sites, strict=True):
            item["layers"] = list(paths)
    return {"model": model, "records": records}


def call_options(pipeline_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-scalar pipeline call options (steps, guidance, size, ...); tensors are per sample."""
    return {
        k: v
        for k, v in sorted(pipeline_kwargs.items())
        if isinstance(v, str | int | float | bool | type(None)) and k not in ("negative_prompt",)
    }


def condition_entry(plan_json: str, pipeline_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What fixes one condition's meaning: its edits and its call options."""
    return {"edits": _items(plan_json, "Edit"), "call": call_options(pipeline_kwargs)}


def stored_identity(attrs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The store's identity and condition entries (derived from older stores' attributes)."""
    if IDENTITY_ATTR in attrs:
        return json.loads(attrs[IDENTITY_ATTR]), json.loads(attrs.get(CONDITIONS_ATTR, "{}"))
    model = {k: str(attrs[k]) for k in MODEL_ATTRS if k in attrs}
    return {"model": model, "records": _items(attrs.get("plan", "[]"), "Record")}, {}


def _comparable(theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """Ours, restricted to the model fields an older store recorded."""
    out = dict(ours)
    out["model"] = {k: v for k, v in ours["model"].items() if k in theirs.get("model", {})}
    return out


def check_trace_fits(
    path: str | os.PathLike,
    identity: Mapping[str, Any],
    condition: str,
    entry: Mapping[str, Any],
    sample: Mapping[str, Any],
    *,
    allow_duplicate: bool = False,
) -> None:
    """Refuse a trace that would change the meaning of the existing store at ``path`` (see module doc)."""
    p = Path(path)
    attrs = root_attributes(p)
    if attrs is None:
        return  # a new store: this trace fixes its meaning
    theirs, conditions = stored_identity(attrs)
    ours = json.loads(json.dumps(_comparable(theirs, dict(identity))))
    diff = differences(theirs, ours)
    if diff:
        raise StoreError(
            f"store {p} holds traces of another {_what(diff)} (differs in {', '.join(diff)}); "
            "write this trace to another store"
        )
    if condition in conditions:
        diff = differences(conditions[condition], json.loads(json.dumps(dict(entry))))
        if diff:
            raise StoreError(
                f"store {p} holds condition {condition!r} with other {', '.join(diff)}; "
                "give this trace another condition name or another store"
            )
    steps = entry.get("call", {}).get("num_inference_steps")
    have = _axis_size(p, "step")
    if isinstance(steps, int) and have is not None and steps > have:
        raise StoreError(
            f"store {p} has room for {have} denoising steps, this trace asks for {steps}; use another store"
        )
    if not allow_duplicate and _has_sample(p, sample):
        raise StoreError(
            f"store {p} already holds prompt {str(sample['prompt'])[:60]!r} seed {sample['seed']} under condition "
            f"{condition!r}; pass allow_duplicate=True to add a replicate on purpose"
        )


def _what(diff: list[str]) -> str:
    return (
        "model"
        if all(d.startswith("model") for d in diff)
        else "plan"
        if all(d.startswith("records") for d in diff)
        else "model and plan"
    )


def _axis_size(path: Path, dim: str) -> int | None:
    import zarr  # lazily: only when a store exists

    group = zarr.open_group(str(path), mode="r", use_consolidated=True)
    return int(group[dim].shape[0]) if dim in group else None


def _has_sample(path: Path, sample: Mapping[str, Any]) -> bool:
    import zarr  # lazily: only when a store exists

    group = zarr.open_group(str(path), mode="r", use_consolidated=True)
    names = ("prompt", "negative_prompt", "seed", "condition")
    if not all(n in group for n in (*names, "done")):
        return False
    done = np.asarray(group["done"][:], dtype=bool)
    match = done.copy()
    for n in names:
        values = np.asarray(group[n][:])
        want = sample.get(n)
        match &= np.array([str(v) == str(want) for v in values]) if values.dtype.kind not in "iuf" else values == want
    return bool(match.any())


def identity_attrs(identity: Mapping[str, Any], conditions: Mapping[str, Any]) -> dict[str, str]:
    """Root attributes that record the store's meaning."""
    return {
        IDENTITY_ATTR: json.dumps(identity, sort_keys=True),
        CONDITIONS_ATTR: json.dumps(conditions, sort_keys=True),
    }
