"""Sink vs control at equal budget: Tables 3, 7, 19 and 20.

Design
------
A sink condition and a control condition at the same budget (same sites, k, eta, scope; keys chosen
otherwise: random, random matched on modality / token class / mass, bottom-k; see
``Design.controls``) run on the same prompts and seeds, so per pair ``i``

    d_i = (sink_i - base_i) - (control_i - base_i)

is the difference of differences (``interp.stats.difference_of_differences``; for LPIPS, already a
distance to the baseline image, ``d_i = lpips(sink)_i - lpips(control)_i``). The hypothesis is stated
before looking, per metric: sink removal changes the image more than the control, i.e. a *larger*
LPIPS (alternative ``greater``) and a *lower* quality / alignment score (alternative ``less``), one-sided.

- Table 3: each sink condition against its plain random control: both effects and their difference.
- Table 7, perceptual dissociation: LPIPS of sink vs random removal with the bootstrap CI of their
  ratio (the paper's "~6x" headline) and the one-sided test; beside it, whether the sink's effect on each
  score metric is *equivalent to zero* within the stated margin (TOST), since "the CI contains 0" is
  not evidence of no effect.
- Table 19, k-sweep: sink and random removal at each budget k, their difference, and the dose trend
  of the sink effect over log k.
- Table 20, sink specificity: each sink condition against every control at its budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp import stats
from interp.analysis.context import Context, Result
from interp.analysis.data import delta_label, is_distance, metric_label, require_metrics
from interp.analysis.effects import adjust, noise_floor, pair, paired_effect, stats_note
from interp.analysis.errors import StoreLacks
from interp.analysis.select import pick, plain_sink, random_control
from interp.analysis.tables import Column, Table, ci_cell, pval, stars


def alternative(metric: str) -> str:
    """The pre-stated one-sided direction of 'sink changes more than control'."""
    return "greater" if is_distance(metric) else "less"


def contrast(ctx: Context, metric: str, sink: str, control: str, *, analysis: str, ratio: bool = False):
    """Difference of differences of ``sink`` vs ``control`` (same reference) on ``metric``."""
    ref = ctx.design.reference(sink)
    if is_distance(metric):
        al = pair(ctx, metric, [sink, control], analysis=analysis)
        s, c, b = al.column(sink), al.column(control), None
    else:
        al = pair(ctx, metric, [sink, control, ref], analysis=analysis)
        s, c, b = al.column(sink), al.column(control), al.column(ref)
    return stats.difference_of_differences(
        s, c, b, alternative=alternative(metric), ratio=ratio, clusters=al.clusters, **ctx.cfg.boot
    )


def contrast_cells(prefix: str, r) -> dict[str, Any]:
    return {
        f"{prefix}_sink": r.sink_effect,
        f"{prefix}_control": r.control_effect,
        f"{prefix}_did": r.estimate,
        f"{prefix}_did_low": r.ci.low,
        f"{prefix}_did_high": r.ci.high,
        f"{prefix}_p": r.ttest.pvalue,
        f"{prefix}_p_wilcoxon": r.wilcoxon.pvalue,
        f"{prefix}_alternative": r.ttest.alternative,
        f"{prefix}_n": r.n,
    }


def _sinks_with(
    ctx: Context, kinds: tuple[str, ...], *, analysis: str, match_none: bool = False
) -> list[tuple[str, list[str]]]:
    sinks = pick(ctx, lambda i: i.family == "sink", analysis=analysis, what="sink removal (mask_topk)")
    out = []
    for s in sinks:
        ctrls = ctx.design.controls(s, kinds=kinds)
        if match_none:
            ctrls = [c for c in ctrls if ctx.design.info(c).match is None]
        if ctx.cfg.conditions:
            ctrls = [c for c in ctrls if c in ctx.cfg.conditions]
        if ctrls:
            out.append((s, ctrls))
    if not out:
        raise StoreLacks(
            "condition",
            [f"{'/'.join(kinds)} control at the budget of a sink condition"],
            analysis=analysis,
            have=[f"{i.name} ({i.family})" for i in ctx.design.infos],
            hint="add mask_random(...) (or mask_bottomk) with the same layer, k, eta and scope as the sink edit",
        )
    return out


def _contrast_table(
    ctx: Context, name: str, title: str, pairs: list[tuple[str, str]], metrics: list[str], *, analysis: str
) -> Table:
    rows: list[dict[str, Any]] = []
    for s, c in pairs:
        ic = ctx.design.info(c)
        row: dict[str, Any] = {
            "sink": s,
            "control": c,
            "control_kind": ic.family + (f" ({ic.match}-matched)" if ic.match else ""),
            "budget": ctx.design.info(s).describe(),
        }
        for m in metrics:
            try:
                row.update(contrast_cells(m, contrast(ctx, m, s, c, analysis=analysis)))
            except StoreLacks as exc:
                if exc.what != "pairs":
                    raise
        row["n_pairs"] = max([row.get(f"{m}_n", 0) for m in metrics] or [0])
        rows.append(row)
    keys = [(i, m) for i in range(len(rows)) for m in metrics]
    for (i, m), q in zip(keys, adjust([rows[i].get(f"{m}_p", np.nan) for i, m in keys], ctx.cfg.adjust), strict=True):
        rows[i][f"{m}_p_adj"] = q
    cols = [
        Column("sink", "sink"),
        Column("control", "control"),
        Column("control keys", "control_kind"),
        Column("n", "n_pairs", digits=0),
    ]
    for m in metrics:
        cols.append(Column(f"{metric_label(m)}: sink | control", fmt=lambda r, m=m: _pair_cell(r, m)))
        cols.append(Column(f"{metric_label(m)}: sink - control [CI]", fmt=lambda r, m=m: ci_cell(r, f"{m}_did")))
        cols.append(
            Column(
                f"p ({ctx.cfg.adjust}, one-sided)",
                fmt=lambda r, m=m: pval(r.get(f"{m}_p_adj")) + stars(r.get(f"{m}_p_adj"), ctx.cfg.alpha),
            )
        )
    notes = [
        "Effects against the shared reference (Δ score, or LPIPS to the baseline image); sink - control is the "
        "per-pair "
        "difference of differences. One-sided tests stated in advance: the sink edit lowers scores more "
        "(alternative 'less') and raises LPIPS more ('greater') than the control.",
        stats_note(ctx).replace("p: paired t-test", "p: one-sided paired t-test of the difference"),
    ]
    return Table(name, title, cols, rows, notes)


def _pair_cell(row: dict[str, Any], m: str) -> str:
    from interp.analysis.tables import num

    if f"{m}_sink" not in row:
        return "–"
    return f"{num(row[f'{m}_sink'])} | {num(row[f'{m}_control'])}"


def table3(ctx: Context) -> Result:
    name = "table03_sink_vs_random"
    metrics = require_metrics(ctx.ds, analysis=name)
    pairs = [(s, cs[0]) for s, cs in _sinks_with(ctx, ("random",), analysis=name, match_none=True)]
    table = _contrast_table(
        ctx, name, "Table 3: sink removal vs equal-budget random removal", pairs, metrics, analysis=name
    )
    _floor_rows(ctx, table, metrics, analysis=name)
    return Result.of_table(name, table, ctx.out)


def _floor_rows(ctx: Context, table: Table, metrics: list[str], *, analysis: str) -> None:
    """Note the noise floor's effect per metric under the table (contrasts have no floor row)."""
    if ctx.design.noop() is None:
        return
    parts = []
    for m in metrics:
        f = noise_floor(ctx, m, analysis=analysis)
        if f is not None:
            parts.append(f"{metric_label(m)} {ci_cell({'x': f.estimate, 'x_low': f.low, 'x_high': f.high}, 'x')}")
    table.notes.append(f"Noise floor ({ctx.design.noop()} vs baseline): " + "; ".join(parts) + ".")


def table20(ctx: Context) -> Result:
    name = "table20_sink_specificity"
    metrics = require_metrics(ctx.ds, analysis=name)
    pairs = [(s, c) for s, cs in _sinks_with(ctx, ("random", "bottomk"), analysis=name) for c in cs]
    table = _contrast_table(
        ctx, name, "Table 20: sink specificity against every control at equal budget", pairs, metrics, analysis=name
    )
    _floor_rows(ctx, table, metrics, analysis=name)
    return Result.of_table(name, table, ctx.out)


def table7(ctx: Context) -> Result:
    name = "table07_dissociation"
    metrics = require_metrics(ctx.ds, analysis=name)
    lp = [m for m in metrics if is_distance(m)]
    if not lp:
        raise StoreLacks(
            "metric",
            ["lpips_vs_baseline"],
            analysis=name,
            have=metrics,
            hint="score LPIPS against the baseline: `interp score STORE --metrics lpips`",
        )
    lpips = lp[0]
    scores = [m for m in metrics if not is_distance(m)]
    pairs = [(s, cs[0]) for s, cs in _sinks_with(ctx, ("random",), analysis=name, match_none=True)]
    rows = []
    for s, c in pairs:
        r = contrast(ctx, lpips, s, c, analysis=name, ratio=True)
        row: dict[str, Any] = {"sink": s, "control": c, "budget": ctx.design.info(s).describe()}
        es, ec = paired_effect(ctx, lpips, s, analysis=name), paired_effect(ctx, lpips, c, analysis=name)
        row.update(
            lpips_sink=es.estimate,
            lpips_sink_low=es.low,
            lpips_sink_high=es.high,
            lpips_control=ec.estimate,
            lpips_control_low=ec.low,
            lpips_control_high=ec.high,
            ratio=r.ratio.estimate,
            ratio_low=r.ratio.low,
            ratio_high=r.ratio.high,
            lpips_did=r.estimate,
            lpips_did_low=r.ci.low,
            lpips_did_high=r.ci.high,
            lpips_p=r.ttest.pvalue,
            n_pairs=r.n,
        )
        for m in scores:
            e = paired_effect(ctx, m, s, analysis=name)
            row.update({f"{m}": e.estimate, f"{m}_low": e.low, f"{m}_high": e.high})
            margin = ctx.cfg.margin(m)
            if margin is not None:
                ref = ctx.design.reference(s)
                al = pair(ctx, m, [s, ref], analysis=name)
                t = stats.tost_paired(al.column(s), al.column(ref), margin, alpha=ctx.cfg.alpha, clusters=al.clusters)
                row.update({f"{m}_tost_p": t.pvalue, f"{m}_equivalent": t.equivalent, f"{m}_margin": margin})
        rows.append(row)
    for i, q in enumerate(adjust([r["lpips_p"] for r in rows], ctx.cfg.adjust)):
        rows[i]["lpips_p_adj"] = q
    cols = [
        Column("sink", "sink"),
        Column("control", "control"),
        Column("n", "n_pairs", digits=0),
        Column(f"{metric_label(lpips)} sink [CI]", fmt=lambda r: ci_cell(r, "lpips_sink")),
        Column(f"{metric_label(lpips)} random [CI]", fmt=lambda r: ci_cell(r, "lpips_control")),
        Column("ratio sink / random [CI]", fmt=lambda r: ci_cell(r, "ratio", 2)),
        Column(f"p sink > random ({ctx.cfg.adjust})", fmt=lambda r: pval(r.get("lpips_p_adj"))),
    ]
    for m in scores:
        cols.append(Column(f"sink {delta_label(m)} [CI]", fmt=lambda r, m=m: ci_cell(r, m)))
        if ctx.cfg.margin(m) is not None:
            cols.append(Column(f"≈0 within ±{ctx.cfg.margin(m):g}? (TOST p)", fmt=lambda r, m=m: _tost_cell(r, m)))
    notes = [
        "Perceptual dissociation: LPIPS to the baseline image after removing the sinks vs the same number of random "
        "keys (same sites, steps, eta). Ratio = mean LPIPS(sink) / mean LPIPS(random) with a paired bootstrap CI; "
        "p: one-sided paired t-test of LPIPS(sink) - LPIPS(random) > 0.",
        "Score columns: the sink edit's effect on the score and a TOST equivalence test of that effect against "
        f"±margin at alpha {ctx.cfg.alpha} (margins are this project's defaults, set with --margin METRIC=VALUE); "
        "'yes' means the effect is shown to lie inside the margin, 'no' that equivalence is not shown.",
        stats_note(ctx).split(";")[0] + f"; {int(ctx.cfg.level * 100)}% {ctx.cfg.ci_method} bootstrap CIs.",
    ]
    table = Table(name, "Table 7: perceptual dissociation of sink vs equal-budget random removal", cols, rows, notes)
    _floor_rows(ctx, table, metrics, analysis=name)
    return Result.of_table(name, table, ctx.out)


def _tost_cell(row: dict[str, Any], m: str) -> str:
    if f"{m}_equivalent" not in row:
        return "–"
    return f"{'yes' if row[f'{m}_equivalent'] else 'no'} ({pval(row[f'{m}_tost_p'])})"


def table19(ctx: Context) -> Result:
    name = "table19_k_sweep"
    metrics = require_metrics(ctx.ds, analysis=name)
    sinks = pick(ctx, lambda i: plain_sink(ctx, i) and i.n_layers == 1, analysis=name, what="sink removal at several k")
    # group sinks that differ only in k
    groups: list[list[str]] = []
    for s in sinks:
        for g in groups:
            if ctx.design.info(g[0]).differs_only_in(ctx.design.info(s), "k"):
                g.append(s)
                break
        else:
            groups.append([s])
    groups = [sorted(g, key=lambda n: ctx.design.info(n).k) for g in groups if len(g) >= 2]
    if not groups:
        raise StoreLacks("condition", ["sink removals that differ only in k (a k-sweep)"], analysis=name, have=sinks)
    rows: list[dict[str, Any]] = []
    trend_rows: list[dict[str, Any]] = []
    for g in groups:
        for s in g:
            c = random_control(ctx, s)
            row: dict[str, Any] = {
                "k": ctx.design.info(s).k,
                "sink": s,
                "control": c or "",
                "edit": ctx.design.info(s).describe(),
            }
            for m in metrics:
                e = paired_effect(ctx, m, s, analysis=name)
                row.update({f"{m}_sink": e.estimate, f"{m}_sink_low": e.low, f"{m}_sink_high": e.high})
                if c:
                    r = contrast(ctx, m, s, c, analysis=name)
                    row.update(
                        {
                            f"{m}_control": r.control_effect,
                            f"{m}_did": r.estimate,
                            f"{m}_did_low": r.ci.low,
                            f"{m}_did_high": r.ci.high,
                            f"{m}_p": r.ttest.pvalue,
                        }
                    )
            rows.append(row)
        for m in metrics:
            ref = ctx.design.reference(g[0])
            al = pair(ctx, m, [*g, ref], analysis=name)
            eff = al.values[:, :-1] if is_distance(m) else al.values[:, :-1] - al.values[:, -1:]
            ks = [ctx.design.info(s).k for s in g]
            t = stats.dose_trend(
                eff,
                ks,
                log_budget=True,
                clusters=al.clusters,
                ci_method=ctx.cfg.ci_method,
                n_resamples=ctx.cfg.n_resamples,
                seed=ctx.cfg.seed,
                level=ctx.cfg.level,
            )
            trend_rows.append(
                {
                    "group": g[0],
                    "metric": m,
                    "slope": t.estimate,
                    "slope_low": t.ci.low,
                    "slope_high": t.ci.high,
                    "p": t.test.pvalue,
                    "ks": ks,
                }
            )
    keys = [(i, m) for i in range(len(rows)) for m in metrics]
    for (i, m), q in zip(keys, adjust([rows[i].get(f"{m}_p", np.nan) for i, m in keys], ctx.cfg.adjust), strict=True):
        rows[i][f"{m}_p_adj"] = q
    cols = [Column("k", "k", digits=0), Column("sink", "sink"), Column("random control", "control")]
    for m in metrics:
        cols.append(Column(f"{delta_label(m)} sink [CI]", fmt=lambda r, m=m: ci_cell(r, f"{m}_sink")))
        cols.append(
            Column(
                "sink - random [CI] (p)",
                fmt=lambda r, m=m: (
                    f"{ci_cell(r, f'{m}_did')} ({pval(r.get(f'{m}_p_adj'))})" if f"{m}_did" in r else "–"
                ),
            )
        )
    table = Table(
        name,
        "Table 19: k-sweep, sink vs equal-budget random removal",
        cols,
        rows,
        [
            "sink - random: per-pair difference of differences, one-sided as in Table 3, p adjusted "
            f"({ctx.cfg.adjust}) over this table.",
            "Dose trend of the sink effect over log k (per-pair OLS slope, t-test over pairs): "
            + "; ".join(
                f"{metric_label(t['metric'])} {ci_cell(t, 'slope')} per log k, p {pval(t['p'])}" for t in trend_rows
            )
            + ".",
        ],
    )
    _floor_rows(ctx, table, metrics, analysis=name)
    res = Result(name)
    res.add_table(table, ctx.out)
    trend = Table(
        "table19_k_sweep_trend",
        "Table 19b: dose trend of sink removal over log k",
        [
            Column("series", "group"),
            Column("metric", fmt=lambda r: metric_label(r["metric"])),
            Column("slope per log k [CI]", fmt=lambda r: ci_cell(r, "slope")),
            Column("p (slope t)", fmt=lambda r: pval(r["p"])),
        ],
        [{**t, "ks": ",".join(map(str, t["ks"]))} for t in trend_rows],
        [],
    )
    res.add_table(trend, ctx.out)
    return res
