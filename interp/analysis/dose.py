"""Dose-response over eta: Tables 10 and 11, Figure 4.

Design
------
A dose series is a set of score-path edit conditions that differ only in eta (the logit bias log eta
on the edited keys; eta = 0 removes them, eta = 1 changes nothing), found in the design with
``ConditionInfo.differs_only_in``. The dose is ``1 - eta``.

- Table 10: per eta, the effect on every metric against the reference (paired, bootstrap CI, Holm
  over the table) and the measured mass of the edited keys before and after the edit (bookkeeping,
  mean over edited cells), beside the expected ``eta P / (1 - (1 - eta) P)`` from the measured P.
- Table 11: the dose trend per metric over ``1 - eta``: the mean per-pair OLS slope with a bootstrap
  CI and its t-test, and Page's L test of a monotone trend in the pre-stated direction (scores fall,
  LPIPS rises with the dose).
- Figure 4: effect against eta per metric with CIs and the noise floor band, and the measured mass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp import stats
from interp.analysis import style
from interp.analysis.bookkeeping import edit_cells
from interp.analysis.context import Context, Result
from interp.analysis.data import delta_label, is_distance, metric_label, require_metrics
from interp.analysis.effects import adjust, effect_cells, noise_floor, pair, paired_effect, stats_note
from interp.analysis.errors import StoreLacks
from interp.analysis.select import pick
from interp.analysis.tables import Column, Table, ci_cell, num, pval

NAME = "dose"


def dose_series(ctx: Context, *, analysis: str) -> list[list[str]]:
    """Groups of score-path edit conditions differing only in eta (>= 2 each), eta descending."""
    cands = pick(
        ctx,
        lambda i: i.family in ("sink", "random", "bottomk", "fixed") and all(e.path == "score" for e in i.edits),
        analysis=analysis,
        what="score-path edits at several eta (mask_topk(eta=...))",
    )
    groups: list[list[str]] = []
    for c in cands:
        for g in groups:
            if ctx.design.info(g[0]).differs_only_in(ctx.design.info(c), "eta"):
                g.append(c)
                break
        else:
            groups.append([c])
    groups = [sorted(g, key=lambda n: -ctx.design.info(n).eta) for g in groups if len(g) >= 2]
    if not groups:
        raise StoreLacks(
            "condition",
            ["an eta series (the same edit at two or more eta)"],
            analysis=analysis,
            have=cands,
            hint="add conditions mask_topk(..., eta=e) for several e",
        )
    return groups


def _mass(ctx: Context, cond: str, *, analysis: str) -> dict[str, float]:
    try:
        cells = edit_cells(ctx.ds, cond, analysis=analysis, names=tuple(e.name for e in ctx.design.info(cond).edits))
    except StoreLacks:
        return {}
    if not cells:
        return {}
    before = np.concatenate([c.before[np.isfinite(c.before)] for c in cells])
    after = np.concatenate([c.after[np.isfinite(c.before)] for c in cells])
    eta = ctx.design.info(cond).eta
    expected = eta * before / (1 - (1 - eta) * before) if eta is not None else np.full_like(before, np.nan)
    return {
        "mass_before": float(np.mean(before)),
        "mass_after": float(np.nanmean(after)),
        "mass_after_expected": float(np.mean(expected)),
        "mass_after_max_dev": float(np.nanmax(np.abs(after - expected))),
    }


def run(ctx: Context) -> Result:
    metrics = require_metrics(ctx.ds, analysis=NAME)
    groups = dose_series(ctx, analysis=NAME)
    res = Result(NAME)
    rows: list[dict[str, Any]] = []
    trend_rows: list[dict[str, Any]] = []
    for g in groups:
        series = g[-1]  # named after its strongest edit (smallest eta)
        for c in g:
            info = ctx.design.info(c)
            row: dict[str, Any] = {"series": series, "condition": c, "eta": info.eta, "dose": 1 - info.eta}
            row["edit"] = info.describe()
            for m in metrics:
                row.update(effect_cells(m, paired_effect(ctx, m, c, analysis=NAME)))
            row.update(_mass(ctx, c, analysis=NAME))
            rows.append(row)
        ref = ctx.design.reference(g[0])
        doses = [1 - ctx.design.info(c).eta for c in g]
        for m in metrics:
            al = pair(ctx, m, [*g, ref], analysis=NAME)
            eff = al.values[:, :-1] if is_distance(m) else al.values[:, :-1] - al.values[:, -1:]
            slope = stats.dose_trend(
                eff,
                doses,
                log_budget=False,
                clusters=al.clusters,
                ci_method=ctx.cfg.ci_method,
                n_resamples=ctx.cfg.n_resamples,
                seed=ctx.cfg.seed,
                level=ctx.cfg.level,
            )
            alt = "greater" if is_distance(m) else "less"
            try:
                page = stats.dose_trend(
                    eff,
                    doses,
                    method="page",
                    alternative=alt,
                    log_budget=False,
                    n_resamples=ctx.cfg.n_resamples,
                    seed=ctx.cfg.seed,
                    level=ctx.cfg.level,
                    ci_method=ctx.cfg.ci_method,
                ).test.pvalue
            except ValueError:
                page = np.nan
            trend_rows.append(
                {
                    "series": series,
                    "metric": m,
                    "etas": ",".join(f"{1 - d:g}" for d in doses),
                    "slope": slope.estimate,
                    "slope_low": slope.ci.low,
                    "slope_high": slope.ci.high,
                    "p_slope": slope.test.pvalue,
                    "p_page": page,
                    "page_alternative": alt,
                    "n": slope.n,
                }
            )
    keys = [(i, m) for i in range(len(rows)) for m in metrics]
    for (i, m), q in zip(keys, adjust([rows[i].get(f"{m}_p", np.nan) for i, m in keys], ctx.cfg.adjust), strict=True):
        rows[i][f"{m}_p_adj"] = q
    cols = [Column("series", "series"), Column("eta", "eta", digits=2)]
    for m in metrics:
        cols.append(Column(f"{delta_label(m)} [CI]", fmt=lambda r, m=m: ci_cell(r, m)))
        cols.append(Column(f"p ({ctx.cfg.adjust})", fmt=lambda r, m=m: pval(r.get(f"{m}_p_adj"))))
    cols += [
        Column("edited mass before", "mass_before"),
        Column(
            "after: measured | expected",
            fmt=lambda r: f"{num(r.get('mass_after'))} | {num(r.get('mass_after_expected'))}",
        ),
    ]
    notes = [stats_note(ctx)]
    floor = ctx.design.noop()
    notes.append(
        f"Noise floor ({floor}): "
        + "; ".join(
            f"{metric_label(m)} {ci_cell({'x': f.estimate, 'x_low': f.low, 'x_high': f.high}, 'x')}"
            for m in metrics
            if (f := noise_floor(ctx, m, analysis=NAME)) is not None
        )
        if floor
        else "No no-op condition in the store: no noise floor."
    )
    notes.append(
        "Edited mass: incoming mass of the edited keys before the edit and after it (measured, mean over edited "
        "heads, steps, branches and samples); expected after = eta P / (1 - (1 - eta) P) from the measured P."
    )
    res.add_table(Table("table10_dose_response", "Table 10: dose-response over eta", cols, rows, notes), ctx.out)
    tcols = [
        Column("series", "series"),
        Column("metric", fmt=lambda r: metric_label(r["metric"])),
        Column("eta values", "etas"),
        Column("slope per unit dose (1 - eta) [CI]", fmt=lambda r: ci_cell(r, "slope")),
        Column("p (slope t)", fmt=lambda r: pval(r["p_slope"])),
        Column("p (Page L, one-sided)", fmt=lambda r: pval(r["p_page"])),
        Column("n", "n", digits=0),
    ]
    tnotes = [
        "Slope: per-pair OLS slope of the effect on the dose 1 - eta, averaged over pairs (prompts when a prompt has "
        "several seeds), bootstrap CI and one-sample t-test; Page's L test of a monotone trend, one-sided in the "
        "pre-stated direction (scores fall, LPIPS rises with the dose). The reference itself (eta = 1) is not a column."
    ]
    res.add_table(Table("table11_dose_trend", "Table 11: dose trend over eta", tcols, trend_rows, tnotes), ctx.out)
    res.files.append(_figure(ctx, rows, metrics, groups))
    return res


def _figure(ctx: Context, rows: list[dict[str, Any]], metrics: list[str], groups: list[list[str]]):
    has_mass = any("mass_before" in r for r in rows)
    panels = len(metrics) + (1 if has_mass else 0)
    ncols = min(panels, 3)
    nrows = int(np.ceil(panels / ncols))
    fig, axes = style.figure(nrows, ncols, width=3.3, height=2.6)
    flat = axes.ravel()
    for j, m in enumerate(metrics):
        ax = flat[j]
        f = noise_floor(ctx, m, analysis=NAME)
        if f is not None and np.isfinite(f.low):
            ax.axhspan(f.low, f.high, color="0.85", label="noise floor (no-op) CI", zorder=0)
        style.zero_line(ax)
        for gi, g in enumerate(groups):
            sub = [r for r in rows if r["series"] == g[-1]]
            x = np.array([r["eta"] for r in sub])
            y = np.array([r.get(m, np.nan) for r in sub])
            lo = np.array([r.get(f"{m}_low", np.nan) for r in sub])
            hi = np.array([r.get(f"{m}_high", np.nan) for r in sub])
            ax.errorbar(
                x, y, yerr=[y - lo, hi - y], marker="o", ms=4, capsize=3, color=style.category_color(gi), label=g[-1]
            )
        ax.set_xlabel("eta (0 = keys removed, 1 = unchanged)")
        style.ylabel(ax, delta_label(m))
        ax.set_title(f"({'abcdefgh'[j]}) {metric_label(m)}", loc="left")
    if has_mass:
        ax = flat[len(metrics)]
        for gi, g in enumerate(groups):
            sub = [r for r in rows if r["series"] == g[-1] and "mass_before" in r]
            x = np.array([r["eta"] for r in sub])
            ax.plot(x, [r["mass_before"] for r in sub], marker="o", ms=4, color=style.category_color(gi), label=g[-1])
            ax.plot(x, [r["mass_after"] for r in sub], marker="s", ms=4, ls="--", color=style.category_color(gi))
        ax.set_xlabel("eta (0 = keys removed, 1 = unchanged)")
        style.ylabel(ax, "edited keys' mass (fraction)")
        ax.set_title(f"({'abcdefgh'[len(metrics)]}) mass: before (—) / after (--)", loc="left")
    for ax in flat[panels:]:
        ax.set_visible(False)
    handles, labels = [], []
    for ax in flat[:panels]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), frameon=False)
    fig.suptitle("Figure 4: dose-response over eta (mean effect, 95% CI)")
    return style.save(fig, ctx.out / "figure04_dose_response.png")
