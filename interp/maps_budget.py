"""The size guard of attention maps: refuse, before generation, a request that would not fit.

The size of a ``maps`` record is steps x calls x sites x branches x heads x query rows x keys x 4
bytes (float32). Steps come from the record (``steps=``) or the call (``num_inference_steps``, else
the pipeline's default of 28), calls are 2 with skip-layer guidance, true CFG, or CFG of a family that
runs each branch as its own call (``Adapter.cfg_calls``: Wan), and 1 otherwise, branches 2 under CFG
(guidance_scale > 1). Query and key counts come from the adapter's predicted token layout; where
it cannot predict one, the guard assumes the largest layout seen at the site's first call instead.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from interp.plan import Plan, PlanError


def _default(pipe: Any, name: str, fallback: Any) -> Any:
    try:
        param = inspect.signature(type(pipe).__call__).parameters.get(name)
    except (TypeError, ValueError):
        return fallback
    return param.default if param is not None and param.default is not inspect.Parameter.empty else fallback


def map_bytes(
    plan: Plan,
    requests: list,
    denoiser: Any,
    adapter: Any,
    pipe: Any,
    kwargs: dict[str, Any],
    texts: dict[str, str | None],
) -> dict[int, tuple[int, float]]:
    """Bytes per maps record (index in ``plan.records``) -> (bytes, budget in bytes)."""
    out: dict[int, tuple[int, float]] = {}
    n_steps = int(kwargs.get("num_inference_steps", _default(pipe, "num_inference_steps", 28)))
    guidance = float(kwargs.get("guidance_scale", _default(pipe, "guidance_scale", 1.0)) or 1.0)
    cfg_calls = bool(getattr(adapter, "cfg_calls", False)) and guidance > 1  # Wan: one call per CFG branch
    calls = 2 if kwargs.get("skip_guidance_layers") or kwargs.get("true_cfg_scale", 1.0) > 1 or cfg_calls else 1
    branches = 2 if guidance > 1 or kwargs.get("true_cfg_scale", 1.0) > 1 else 1
    for ri, rec in enumerate(plan.records):
        if "maps" not in rec.stats:
            continue
        steps = len(rec.steps) if rec.steps is not None else n_steps
        total = 0
        for req in requests:
            if rec not in req.records:
                continue
            heads = (
                len(rec.heads)
                if rec.heads is not None
                else int(getattr(denoiser.get_submodule(req.site.path), "heads", 1))
            )
            lay = adapter.planned_layout(pipe, req.site.key_layout, texts.get("cond"), kwargs)
            qlay = adapter.planned_layout(pipe, req.site.query_layout, texts.get("cond"), kwargs)
            if lay is None or qlay is None:
                continue
            if rec.queries in ("image", "text"):
                nq = int((qlay.modality == rec.queries).sum())
            elif rec.queries == "used":
                nq = int((~np.isin(qlay.modality, list(req.site.unused_query_streams))).sum())
            else:
                nq = len(qlay)
            if isinstance(rec.keys, str):
                nk = len(lay) if rec.keys == "all" else int((lay.modality == rec.keys).sum())
            else:
                nk = len(rec.keys)
            total += steps * calls * branches * heads * nq * nk * 4
        out[ri] = (total, rec.max_mb * 2**20)
    return out


def check_map_budget(
    plan: Plan,
    requests: list,
    denoiser: Any,
    adapter: Any,
    pipe: Any,
    kwargs: dict[str, Any],
    texts: dict[str, str | None],
) -> None:
    for _, (size, budget) in map_bytes(plan, requests, denoiser, adapter, pipe, kwargs, texts).items():
        if size > budget:
            raise PlanError(
                f"the attention maps requested need {size / 2**20:.1f} MiB, over the budget of "
                f"{budget / 2**20:.1f} MiB: choose fewer sites, steps, heads, queries or keys, or raise max_mb="
            )
