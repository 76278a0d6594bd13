"""Summary of every edit: Table 8 and the heatmap of Figure 3.

Design
------
One row per edited condition of the store (sinks, controls, value path, windows, sampling variants),
one column group per metric: the paired effect against the condition's reference with its CI,
Holm-adjusted over the whole table (the largest family, so the most conservative correction), and the
noise floor first. Figure 3 shows the same as a heatmap: colour = the effect divided by the largest
absolute effect of its metric (so metrics with different units share one diverging scale, and a tiny
but consistent no-op LPIPS stays pale, which a standardised d_z would not), each cell annotated
with its effect and significance marks (Holm: * < alpha, ** < alpha/10, *** < alpha/100)
when the table is small enough to read.
"""

from __future__ import annotations

import numpy as np

from interp.analysis import style
from interp.analysis.context import Context, Result
from interp.analysis.data import metric_label, require_metrics
from interp.analysis.effects import effect_table
from interp.analysis.tables import Column, num, stars

NAME = "summary"


def run(ctx: Context) -> Result:
    metrics = require_metrics(ctx.ds, analysis=NAME)
    conds = ctx.edited(analysis=NAME)
    table, effects = effect_table(
        ctx,
        name="table08_summary",
        title="Table 8: summary of all edits",
        conditions=conds,
        metrics=metrics,
        analysis=NAME,
        describe=lambda c: {"family": ctx.design.info(c).family},
        describe_columns=[Column("family", "family"), Column("edit", "edit")],
    )
    res = Result(NAME)
    res.add_table(table, ctx.out)
    res.files.append(_heatmap(ctx, table.rows, metrics))
    return res


def _heatmap(ctx: Context, rows: list[dict], metrics: list[str]):
    n = len(rows)
    eff = np.array([[r.get(m, np.nan) for m in metrics] for r in rows], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.nanmax(np.abs(eff), axis=0)
        dz = eff / np.where(scale > 0, scale, 1.0)
    annotate = n <= ctx.cfg.max_rows_annotated
    fig, axes = style.figure(1, 1, width=1.3 * len(metrics) + 3.4, height=max(0.32 * n + 1.6, 3.4))
    ax = axes[0, 0]
    lim = 1.0
    im = ax.imshow(
        np.nan_to_num(dz, nan=0.0), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest"
    )
    ax.set_xticks(np.arange(len(metrics)), [metric_label(m) for m in metrics])
    ax.set_yticks(np.arange(n), [r["condition"] for r in rows])
    ax.tick_params(axis="x", top=True, bottom=False, labeltop=True, labelbottom=False)
    ax.spines[:].set_visible(False)
    if annotate:
        for i, r in enumerate(rows):
            for j, m in enumerate(metrics):
                v = r.get(m)
                if v is None or not np.isfinite(v):
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="0.4")
                    continue
                txt = num(v, 3) + stars(r.get(f"{m}_p_adj"), ctx.cfg.alpha)
                color = "white" if abs(dz[i, j]) > 0.6 * lim else "black"
                ax.text(j, i, txt, ha="center", va="center", fontsize=7, color=color)
    cb = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
    cb.set_label("effect / largest |effect|\nof its metric")
    fig.suptitle(
        "Figure 3: effect of every edit vs its reference\n(cells: Δ or LPIPS; "
        f"* Holm p < {ctx.cfg.alpha:g}, ** < {ctx.cfg.alpha / 10:g}, *** < {ctx.cfg.alpha / 100:g})"
    )
    return style.save(fig, ctx.out / "figure03_summary_heatmap.png")
