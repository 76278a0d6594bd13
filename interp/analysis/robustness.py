"""Robustness of the main sink effect: Figure 6.

Design
------
A forest plot, one panel per metric: the main sink-removal condition's effect (mean with its bootstrap
CI) at the default sampler, under every other sampler setting the store has for the same edit
(each against the unedited run with the same settings), and within every GenEval tag; the no-op's CI is
the grey band (the edit kernel's floor) and 0 is dotted. If the effect keeps its sign and size across
rows, it is robust to sampling settings and task type.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from interp.analysis import style
from interp.analysis.context import Context, Result
from interp.analysis.data import delta_label, metric_label, require_metrics
from interp.analysis.effects import noise_floor, paired_effect
from interp.analysis.select import main_condition, sampler_difference
from interp.analysis.tables import Column, Table, ci_cell
from interp.analysis.tags import tag_effects

NAME = "robustness"


def run(ctx: Context) -> Result:
    metrics = require_metrics(ctx.ds, analysis=NAME)
    main = main_condition(ctx, analysis=NAME)
    info = ctx.design.info(main)
    variants = [
        n
        for n in ctx.design.edited()
        if n != main
        and sorted(map(repr, (e.budget() for e in ctx.design.info(n).edits)))
        == sorted(map(repr, (e.budget() for e in info.edits)))
        and ctx.design.info(n).sampler != info.sampler
    ]
    rows: list[dict] = []
    for c in [main, *variants]:
        row = {"row": f"{c} ({sampler_difference(ctx, ctx.design.info(c))})", "group": "sampler"}
        for m in metrics:
            e = paired_effect(ctx, m, c, analysis=NAME)
            row.update({m: e.estimate, f"{m}_low": e.low, f"{m}_high": e.high, f"{m}_n": e.n})
        rows.append(row)
    if len(set(ctx.samples["tag"])) > 1:
        for r in tag_effects(ctx, main, metrics, analysis=NAME):
            rows.append(
                {
                    "row": f"tag: {r['tag']}",
                    "group": "tag",
                    **{k: v for k, v in r.items() if k.startswith(tuple(metrics))},
                }
            )
    res = Result(NAME)
    cols = [Column("row", "row")] + [
        Column(f"{delta_label(m)} [CI]", fmt=lambda r, m=m: ci_cell(r, m)) for m in metrics
    ]
    res.add_table(
        Table("figure06_robustness", f"Figure 6 data: robustness of {main}", cols, rows, ["Data of Figure 6."]), ctx.out
    )
    res.files.append(_forest(ctx, main, rows, metrics))
    return res


def _forest(ctx: Context, main: str, rows: list[dict], metrics: list[str]):
    n = len(rows)
    ncols = len(metrics)
    fig, axes = style.figure(1, ncols, width=3.0, height=0.3 * n + 1.6, sharey=True)
    y = np.arange(n)
    for j, m in enumerate(metrics):
        ax = axes[0, j]
        f = noise_floor(ctx, m, analysis=NAME)
        if f is not None and np.isfinite(f.low):
            ax.axvspan(
                f.low, f.high if f.high > f.low else f.low + 1e-12, color="0.85", zorder=0, label="no-op floor (CI)"
            )
        ax.axvline(0.0, color="0.5", lw=0.8, ls=":")
        est = np.array([r.get(m, np.nan) for r in rows], dtype=float)
        lo = np.array([r.get(f"{m}_low", np.nan) for r in rows], dtype=float)
        hi = np.array([r.get(f"{m}_high", np.nan) for r in rows], dtype=float)
        colors = [style.category_color(0 if r["group"] == "sampler" else 1) for r in rows]
        ax.xaxis.set_major_locator(MaxNLocator(nbins=3))
        for i in range(n):
            if not np.isfinite(est[i]):
                ax.text(0.02, y[i], "n < 2", transform=ax.get_yaxis_transform(), va="center", fontsize=7, color="0.5")
            else:
                ax.errorbar(
                    est[i],
                    y[i],
                    xerr=[[est[i] - lo[i]], [hi[i] - est[i]]] if np.isfinite(lo[i]) else None,
                    fmt="o",
                    ms=4,
                    capsize=2,
                    color=colors[i],
                )
        style.xlabel(ax, delta_label(m), 26)
        ax.set_title(metric_label(m), loc="left")
    ax0 = axes[0, 0]
    ax0.set_yticks(y, [style.wrap(r["row"], 34) for r in rows])
    ax0.set_ylim(n - 0.5, -0.5)  # first row on top, half a row of margin at both ends
    title = f"Figure 6: robustness of {main} across sampler settings and GenEval tags (mean, 95% CI)"
    fig.suptitle(style.wrap(title, int(3.0 * ncols * 9)))
    return style.save(fig, ctx.out / "figure06_robustness.png")
