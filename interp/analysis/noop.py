"""The no-op check: Table 17.

Design
------
A zero-bias edit forced through the edit kernel (``noop_edit``) changes nothing in exact arithmetic;
what it changes in floating point is the kernel's numerical floor, which every other effect is read
against. Table 17 compares the no-op condition with its reference seed for seed: the share of
bit-identical images and the largest pixel difference (when images are stored), the effect on every
metric with its CI and a TOST equivalence test against the stated margin (evidence of *no* effect, not
just a CI containing 0), and, from the bookkeeping, the largest change of the edited keys' mass
(after - before), which should be at rounding level.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp import stats
from interp.analysis.bookkeeping import edit_cells
from interp.analysis.context import Context, Result
from interp.analysis.data import delta_label, is_distance, require_metrics
from interp.analysis.effects import effect_cells, pair, paired_effect
from interp.analysis.errors import StoreLacks
from interp.analysis.tables import Column, Table, ci_cell, num, pval

NAME = "noop"


def run(ctx: Context) -> Result:
    metrics = require_metrics(ctx.ds, analysis=NAME)
    noops = [i.name for i in ctx.design.infos if i.family == "noop"]
    if not noops:
        undescribed = [i.name for i in ctx.design.infos if not i.described]
        if undescribed:
            ctx.design.require_described(undescribed, analysis=NAME)
        raise StoreLacks(
            "condition",
            ["a no-op edit (noop_edit: eta = 1 forced through the edit kernel)"],
            analysis=NAME,
            have=ctx.design.names,
            hint="add a condition with plan [{fn = 'noop_edit', layer = ...}] to the sweep",
        )
    rows: list[dict[str, Any]] = []
    for noop in noops:
        ref = ctx.design.reference(noop)
        row: dict[str, Any] = {"condition": noop, "reference": ref, "edit": ctx.design.info(noop).describe()}
        if "image" in ctx.ds.data_vars:
            al = pair(ctx, metrics[0], [noop, ref], analysis=NAME) if metrics else None
            idx = al.samples if al is not None else None
            if idx is not None:
                a = np.asarray(ctx.ds["image"].isel(sample=idx[:, 0]).values, dtype=np.int16)
                b = np.asarray(ctx.ds["image"].isel(sample=idx[:, 1]).values, dtype=np.int16)
                diff = np.abs(a - b).reshape(a.shape[0], -1).max(axis=1)
                row.update(
                    identical_images=float(np.mean(diff == 0)), max_pixel_diff=int(diff.max()), n_images=int(diff.size)
                )
        for m in metrics:
            e = paired_effect(ctx, m, noop, ref, analysis=NAME)
            row.update(effect_cells(m, e))
            margin = ctx.cfg.margin(m)
            if margin is not None and not is_distance(m):
                al = pair(ctx, m, [noop, ref], analysis=NAME)
                d = al.column(noop) - al.column(ref)
                if np.all(d[np.isfinite(d)] == 0):
                    row.update({f"{m}_tost_p": 0.0, f"{m}_equivalent": True, f"{m}_margin": margin})
                else:
                    t = stats.tost_paired(
                        al.column(noop), al.column(ref), margin, alpha=ctx.cfg.alpha, clusters=al.clusters
                    )
                    row.update({f"{m}_tost_p": t.pvalue, f"{m}_equivalent": t.equivalent, f"{m}_margin": margin})
        try:
            cells = edit_cells(ctx.ds, noop, analysis=NAME, names=tuple(e.name for e in ctx.design.info(noop).edits))
        except StoreLacks:
            cells = []
        if cells:
            dev = np.concatenate([np.abs(c.after - c.before)[np.isfinite(c.before)] for c in cells])
            row["mass_max_change"] = float(dev.max()) if dev.size else np.nan
        rows.append(row)
    cols = [Column("condition", "condition"), Column("reference", "reference")]
    if any("identical_images" in r for r in rows):
        cols += [
            Column("bit-identical images", "identical_images", digits=3),
            Column("max pixel diff (0-255)", "max_pixel_diff", digits=0),
        ]
    for m in metrics:
        cols.append(Column(f"{delta_label(m)} [CI]", fmt=lambda r, m=m: ci_cell(r, m)))
        if ctx.cfg.margin(m) is not None and not is_distance(m):
            cols.append(
                Column(
                    f"≈0 within ±{ctx.cfg.margin(m):g}? (TOST p)",
                    fmt=lambda r, m=m: (
                        f"{'yes' if r.get(f'{m}_equivalent') else 'no'} ({pval(r.get(f'{m}_tost_p'))})"
                        if f"{m}_equivalent" in r
                        else "–"
                    ),
                )
            )
    cols.append(Column("max |mass after - before|", fmt=lambda r: num(r.get("mass_max_change"))))
    notes = [
        "No-op: a zero-bias edit forced through the edit kernel, paired seed for seed with its reference. "
        "TOST: equivalence of the mean difference to 0 within ±margin at alpha "
        f"{ctx.cfg.alpha}; with all differences exactly 0 the no-op is bit-identical on that metric (p shown as 0).",
        "max |mass after - before|: largest change of the edited keys' incoming mass over every edited cell "
        "(bookkeeping).",
    ]
    res = Result(NAME)
    res.add_table(
        Table("table17_noop", "Table 17: no-op check (the edit kernel's noise floor)", cols, rows, notes), ctx.out
    )
    return res
