"""Paired effects of a condition on a metric, the noise floor beside them, and tables of both.

Design
------
One function, :func:`paired_effect`, turns (metric, condition, reference) into an :class:`Effect`
with ``interp.stats``: pairs joined by prompt and seed (:mod:`interp.analysis.pairing`), the mean
difference ``condition - reference`` with a seeded bootstrap CI (prompt-clustered when prompts have
several seeds), the paired t-test and Wilcoxon signed-rank p-values, and Cohen's d_z. LPIPS is already
a distance to the baseline image: its effect is its mean (bootstrap CI), tested against the no-op
condition's LPIPS (the edit kernel's floor) when the store has it, untested otherwise.

:func:`effect_table` lays out several conditions x metrics as one table, one row per condition and a
group of columns per metric, adjusts all p-values of the table as one family (Holm by default), and
puts the noise floor (the store's no-op condition vs the same reference) as the first row, so every
effect is read beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from interp import stats
from interp.analysis.context import Context
from interp.analysis.data import delta_label, is_distance
from interp.analysis.errors import StoreLacks
from interp.analysis.pairing import Aligned, aligned
from interp.analysis.tables import Column, Table, ci_cell, pval

NAN = float("nan")


@dataclass(frozen=True)
class Effect:
    """Effect of ``condition`` vs ``reference`` on ``metric`` over ``n`` pairs (``n_prompts`` prompts)."""

    metric: str
    condition: str
    reference: str
    kind: str  # "difference" (score) or "distance" (LPIPS to the baseline)
    n: int
    n_prompts: int
    mean_reference: float
    mean_condition: float
    estimate: float
    low: float
    high: float
    pvalue: float
    test: str
    pvalue_wilcoxon: float
    dz: float
    sd: float


def _nan_effect(metric: str, condition: str, reference: str, kind: str, n: int = 0) -> Effect:
    return Effect(metric, condition, reference, kind, n, 0, NAN, NAN, NAN, NAN, NAN, NAN, "none", NAN, NAN, NAN)


def effect_from_values(
    ctx: Context,
    metric: str,
    condition: str,
    reference: str,
    edited: np.ndarray,
    base: np.ndarray,
    prompts: np.ndarray,
    *,
    floor: np.ndarray | None = None,
) -> Effect:
    """The effect from already-paired arrays (``floor``: the no-op's values on the same units)."""
    cfg = ctx.cfg
    clusters = prompts if np.unique(prompts).size < prompts.size else None
    n_prompts = int(np.unique(prompts).size)
    if is_distance(metric):
        ok = np.isfinite(edited)
        if ok.sum() < 2:
            return _nan_effect(metric, condition, reference, "distance", int(ok.sum()))
        x, cl = edited[ok], None if clusters is None else clusters[ok]
        ci = stats.bootstrap_ci(x, clusters=cl, **cfg.boot)
        p, test, pw = NAN, "none (distance; no no-op floor in the store)", NAN
        if floor is not None and np.isfinite(floor[ok]).sum() >= 2:
            t = stats.paired_ttest(x, floor[ok], clusters=cl)
            p, test = t.pvalue, "paired t vs no-op floor"
            try:
                pw = stats.wilcoxon_signed_rank(x, floor[ok], clusters=cl).pvalue
            except ValueError:
                pw = NAN
        sd = float(np.std(x, ddof=1))
        return Effect(
            metric,
            condition,
            reference,
            "distance",
            int(x.size),
            n_prompts,
            float(np.nanmean(floor)) if floor is not None else NAN,
            float(np.mean(x)),
            ci.estimate,
            ci.low,
            ci.high,
            p,
            test,
            pw,
            float(np.mean(x) / sd) if sd > 0 else NAN,
            sd,
        )
    ok = np.isfinite(edited) & np.isfinite(base)
    if ok.sum() < 2:
        return _nan_effect(metric, condition, reference, "difference", int(ok.sum()))
    e, b, cl = edited[ok], base[ok], None if clusters is None else clusters[ok]
    d = e - b
    ci = stats.paired_difference_ci(e, b, prompts=cl, **cfg.boot)  # the demo's method too
    t = stats.paired_ttest(e, b, clusters=cl)
    pw = NAN  # undefined when every difference is 0 (a bit-identical no-op)
    if np.any(d != 0):
        try:
            pw = stats.wilcoxon_signed_rank(e, b, clusters=cl).pvalue
        except ValueError:
            pw = NAN
    sd = float(np.std(d, ddof=1))
    dz = float(np.mean(d) / sd) if sd > 0 else (0.0 if np.all(d == 0) else NAN)
    return Effect(
        metric,
        condition,
        reference,
        "difference",
        int(d.size),
        n_prompts,
        float(np.mean(b)),
        float(np.mean(e)),
        ci.estimate,
        ci.low,
        ci.high,
        t.pvalue,
        "paired t",
        pw,
        dz,
        sd,
    )


def pair(ctx: Context, metric: str, conditions: Sequence[str], *, analysis: str) -> Aligned:
    return aligned(ctx.samples, metric, conditions, by=ctx.cfg.pair_by, analysis=analysis)


def paired_effect(ctx: Context, metric: str, condition: str, reference: str | None = None, *, analysis: str) -> Effect:
    """Effect of ``condition`` on ``metric`` against its reference (default: the design's); cached."""
    ref = reference or ctx.design.reference(condition)
    key = ("effect", metric, condition, ref)
    if key not in ctx.cache:
        ctx.cache[key] = _paired_effect(ctx, metric, condition, ref, analysis=analysis)
    return ctx.cache[key]


def _paired_effect(ctx: Context, metric: str, condition: str, ref: str, *, analysis: str) -> Effect:
    noop = ctx.design.noop(ref)
    conds = [condition, ref] + ([noop] if noop and is_distance(metric) and noop != condition else [])
    al = pair(ctx, metric, conds, analysis=analysis)
    floor = al.column(noop) if len(conds) == 3 else None
    return effect_from_values(
        ctx, metric, condition, ref, al.column(condition), al.column(ref), al.prompts, floor=floor
    )


def noise_floor(ctx: Context, metric: str, reference: str | None = None, *, analysis: str) -> Effect | None:
    """The no-op condition's effect on ``metric`` (None when the store has no no-op condition)."""
    ref = reference or ctx.baseline
    noop = ctx.design.noop(ref)
    if noop is None:
        return None
    key = ("floor", metric, noop, ref)
    if key not in ctx.cache:
        al = pair(ctx, metric, [noop, ref], analysis=analysis)
        ctx.cache[key] = effect_from_values(ctx, metric, noop, ref, al.column(noop), al.column(ref), al.prompts)
    return ctx.cache[key]


def adjust(pvalues: Sequence[float], method: str) -> list[float]:
    """Adjusted p-values of the finite entries (NaN stays NaN), one family."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.adjust_pvalues(p[ok], method).adjusted
    return out.tolist()


def effect_cells(prefix: str, e: Effect | None) -> dict[str, Any]:
    """Raw CSV cells of one effect under ``prefix`` (the metric name)."""
    if e is None:
        return {}
    d = asdict(e)
    return {
        f"{prefix}": d["estimate"],
        f"{prefix}_low": d["low"],
        f"{prefix}_high": d["high"],
        f"{prefix}_p": d["pvalue"],
        f"{prefix}_p_wilcoxon": d["pvalue_wilcoxon"],
        f"{prefix}_dz": d["dz"],
        f"{prefix}_n": d["n"],
        f"{prefix}_mean_reference": d["mean_reference"],
        f"{prefix}_mean_condition": d["mean_condition"],
        f"{prefix}_test": d["test"],
    }


def metric_columns(metrics: Sequence[str], adjust_name: str) -> list[Column]:
    cols = []
    for m in metrics:
        cols.append(Column(delta_label(m) + " [CI]", fmt=lambda r, m=m: ci_cell(r, m)))
        cols.append(Column(f"p ({adjust_name})", fmt=lambda r, m=m: pval(r.get(f"{m}_p_adj"))))
    return cols


def floor_note(ctx: Context, floor_name: str | None) -> str:
    if floor_name is None:
        return (
            "No no-op condition in the store: effects are shown without the edit kernel's noise floor "
            "(add a `noop_edit` condition to the sweep to measure it)."
        )
    return (
        f"First row: the noise floor, condition {floor_name!r} (a zero-bias edit forced through the edit kernel) "
        "against the same reference; LPIPS effects are tested against it."
    )


def stats_note(ctx: Context) -> str:
    c = ctx.cfg
    return (
        f"Δ = condition - reference, paired by {'+'.join(c.pair_by)}; {int(c.level * 100)}% "
        f"{'BCa' if c.ci_method == 'bca' else c.ci_method} bootstrap CI of the mean difference "
        f"(interp.stats.paired_difference_ci, as `interp demo`; {c.n_resamples} resamples, seed {c.seed}; "
        "prompts resampled when a prompt has several seeds); "
        f"p: paired t-test, adjusted ({c.adjust}) over every test of this table."
    )


def effect_table(
    ctx: Context,
    *,
    name: str,
    title: str,
    conditions: Sequence[str],
    metrics: Sequence[str],
    analysis: str,
    describe: Callable[[str], dict[str, Any]] | None = None,
    describe_columns: Sequence[Column] = (),
    with_floor: bool = True,
) -> tuple[Table, dict[tuple[str, str], Effect]]:
    """One row per condition (after the noise-floor row), a column group per metric."""
    effects: dict[tuple[str, str], Effect] = {}
    rows: list[dict[str, Any]] = []
    for cond in conditions:
        ref = ctx.design.reference(cond)
        row: dict[str, Any] = {"condition": cond, "reference": ref, "edit": ctx.design.info(cond).describe()}
        if describe is not None:
            row.update(describe(cond))
        n = 0
        for m in metrics:
            try:
                e = paired_effect(ctx, m, cond, ref, analysis=analysis)
            except StoreLacks as exc:
                if exc.what != "pairs":
                    raise
                e = _nan_effect(m, cond, ref, "distance" if is_distance(m) else "difference")
            effects[(cond, m)] = e
            row.update(effect_cells(m, e))
            n = max(n, e.n)
        row["n_pairs"] = n
        rows.append(row)
    keys = [(r["condition"], m) for r in rows for m in metrics]
    adj = adjust([effects[k].pvalue for k in keys], ctx.cfg.adjust)
    for (cond, m), q in zip(keys, adj, strict=True):
        next(r for r in rows if r["condition"] == cond)[f"{m}_p_adj"] = q
    floor_name = ctx.design.noop() if with_floor else None
    if floor_name is not None:
        frow: dict[str, Any] = {"condition": f"noise floor: {floor_name}", "reference": ctx.baseline, "edit": "no-op"}
        if describe is not None:
            frow.update({k: "" for k in describe(conditions[0])} if conditions else {})
        for m in metrics:
            try:
                f = noise_floor(ctx, m, analysis=analysis)
            except StoreLacks:
                f = None
            frow.update(effect_cells(m, f))
            if f is not None:
                frow[f"{m}_p_adj"] = f.pvalue  # the floor is not part of the family
        frow["n_pairs"] = max((frow.get(f"{m}_n", 0) or 0) for m in metrics) if metrics else 0
        rows.insert(0, frow)
    columns = [Column("condition", "condition"), *describe_columns, Column("n", "n_pairs", digits=0)]
    columns += metric_columns(metrics, ctx.cfg.adjust)
    table = Table(name, title, columns, rows, [stats_note(ctx), floor_note(ctx, floor_name)])
    return table, effects


def finite(x: float) -> bool:
    return x is not None and not math.isnan(float(x))
