"""Edits: the baseline and edited images of one prompt and seed side by side, the edit's recorded
verification, the sample's metric deltas and the condition's paired effect with its CI.

Design
------
Everything comes from the analyses' code (``interp.analysis``), so the view and ``interp analyze``
cannot disagree: the condition's reference (``Design.reference``: the plain condition with the same
sampler settings), the pairs (``pairing.aligned`` on ``AnalysisConfig.pair_by``, prompt and seed) and the
paired effect per metric with its bootstrap CI (``effects.paired_effect``, cached per store). The
verification of the shown sample is the bookkeeping the edit recorded (``edit_mass_before`` /
``edit_mass_after``, per site the mean over the cells the edit acted on, as Table 4 averages a sample).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from interp.view.payload import Payload, empty, image_source, image_uri, message, select, table
from interp.view.source import StoreSource

NAME = "view"


def _context(src: StoreSource) -> Any:
    from interp.analysis.config import AnalysisConfig
    from interp.analysis.context import Context

    if "edits_context" not in src.cache:
        src.cache["edits_context"] = Context(src.ds, AnalysisConfig(baseline=src.baseline))
    return src.cache["edits_context"]


def edited_conditions(src: StoreSource) -> list[str]:
    ctx = _context(src)
    return [c for c in ctx.design.names if c != ctx.baseline and ctx.design.info(c).family not in ("plain",)]


def pairs(src: StoreSource, cond: str) -> tuple[str, np.ndarray]:
    """(reference condition, (pair, 2) finished-sample positions: edited, reference)."""
    from interp.analysis.pairing import aligned

    ctx = _context(src)
    key = ("edits_pairs", cond)
    if key not in src.cache:
        ref = ctx.design.reference(cond)
        tab = ctx.samples.assign(_unit=1.0)
        src.cache[key] = (
            ref,
            aligned(tab, "_unit", [cond, ref], by=ctx.cfg.pair_by, analysis=NAME, min_units=1).samples,
        )
    return src.cache[key]


def payload(src: StoreSource, params: dict[str, str]) -> Payload:
    p = empty()
    for name in ("edit_base_src", "edit_edited_src"):
        p["sources"][name] = {"url": [], "x": [], "y": [], "w": [], "h": []}
    conds = edited_conditions(src)
    cond = select(p, "edit_condition", [(c, c) for c in conds], (params.get("condition") or ""))
    if not conds:
        select(p, "edit_pair", [], "")
        p["divs"]["edit_html"] = message(f"{src.name} has no edited condition: nothing to compare with the baseline")
        return p
    ref, units = pairs(src, cond)
    options = [(str(i), src.sample_label(int(e))) for i, (e, _) in enumerate(units)]
    unit = select(p, "edit_pair", options, (params.get("pair") or ""))
    if not options:
        p["divs"]["edit_html"] = message(f"no sample of {cond!r} pairs with one of {ref!r} (same prompt and seed)")
        return p
    edited, base = (int(v) for v in units[int(unit)])
    ds = src.ds
    parts = [f"<h4 class='edit-title'>{cond} vs {ref}: {src.sample_label(edited)}</h4>"]
    if "image" in ds.data_vars:
        for name, pos in (("edit_base_src", base), ("edit_edited_src", edited)):
            img = src.sample_values("image", pos)
            p["sources"][name] = image_source(image_uri(img), img.shape[0], img.shape[1])
            p["ranges"][name.replace("_src", "_x")] = [0, img.shape[1]]
            p["ranges"][name.replace("_src", "_y")] = [0, img.shape[0]]
        parts.append(f"<p class='edit-images'>left: {ref} (sample {base}); right: {cond} (sample {edited})</p>")
    parts.append(_verification(src, edited))
    parts.append(_metrics(src, cond, edited, base))
    p["divs"]["edit_html"] = "".join(parts)
    return p


def _verification(src: StoreSource, edited: int) -> str:
    ds = src.ds
    if "edit_mass_before" not in ds.data_vars:
        return message("the store has no edit bookkeeping (edit_mass_before / edit_mass_after)")
    before = np.asarray(ds["edit_mass_before"].isel(sample=edited).values, dtype=np.float64)
    after = np.asarray(ds["edit_mass_after"].isel(sample=edited).values, dtype=np.float64)
    names = [
        str(v)
        for v in (
            ds["edit_name"].isel(sample=edited).values
            if "edit_name" in ds.variables and "sample" in ds["edit_name"].dims
            else ds["edit"].values
        )
    ]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for e in range(before.shape[0]):  # (edit, step, call, site, branch, head)
            for si in range(before.shape[3]):
                b, a = before[e, :, :, si], after[e, :, :, si]
                acted = np.isfinite(b)
                if not acted.any():
                    continue
                label = src.site_labels[si] if si < len(src.site_labels) else str(si)
                rows.append(
                    (
                        names[e] or f"edit {e}",
                        label,
                        int(acted.sum()),
                        float(np.nanmean(b)),
                        float(np.nanmean(a)),
                        float(np.nanmean(np.where(acted, b - a, np.nan))),
                    )
                )
    if not rows:
        return message("this sample's edits acted on no recorded cell")
    return "<h4>verification (measured)</h4>" + table(
        ["edit", "layer", "cells", "mass before", "mass after", "removed"], rows, cls="edit-verification"
    )


def _metrics(src: StoreSource, cond: str, edited: int, base: int) -> str:
    from interp.analysis.data import is_distance
    from interp.analysis.effects import paired_effect

    ctx = _context(src)
    if not ctx.metrics:
        return message("the store has no metric (run `interp score` for CLIP-T, HPS, LPIPS, ...)")
    rows = []
    for m in ctx.metrics:
        vals = np.asarray(src.ds[m].isel(sample=[edited, base]).values, dtype=np.float64)
        delta = vals[0] if is_distance(m) else vals[0] - vals[1]
        key = ("edits_effect", m, cond)
        if key not in src.cache:
            try:
                src.cache[key] = paired_effect(ctx, m, cond, analysis=NAME)
            except Exception as exc:  # too few pairs for a CI: shown as such
                src.cache[key] = str(exc)
        e = src.cache[key]
        if isinstance(e, str):
            rows.append((m, delta, "", "", "", e))
        else:
            rows.append((m, delta, e.estimate, e.low, e.high, f"{e.n} pairs, p = {e.pvalue:.3g}"))
    return "<h4>metrics: this pair, and the condition's paired effect</h4>" + table(
        ["metric", "this pair (delta or distance)", "effect", "CI low", "CI high", "n"], rows, cls="edit-metrics"
    )
