"""Intervention verification: Table 4 (measured removed mass) and Figure 5.

Design
------
An edit is verified by what it measurably did, never by a ratio against a floor constant (docs/design.md,
Statistics and their identities). For every edited condition and every site its edits acted on, from the bookkeeping:
the incoming mass of the edited keys before the edit (P, measured over the edit's query rows), after
it (for a score edit with eta, expected ``eta P / (1 - (1 - eta) P)``; exactly 0 for eta = 0), the
removed mass ``before - after`` (mean over the condition's samples, with a bootstrap CI over prompts),
the largest deviation of the measured after-mass from the expected one, the number of edited keys
per head, and the entropy after the edit beside the reference condition's entropy at the same site,
step, branch and head when the store recorded it. Figure 5 plots the edited keys' mass before and
after against t/T per site, one panel per condition.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from interp import stats
from interp.analysis import style
from interp.analysis.bookkeeping import edit_cells, require_bookkeeping
from interp.analysis.context import Context, Result
from interp.analysis.data import site_label, strings
from interp.analysis.tables import Column, Table, ci_cell, num

NAME = "verification"
MAX_PANELS = 12


def _ci(ctx: Context, per_sample: np.ndarray, prompts: np.ndarray) -> tuple[float, float, float]:
    ok = np.isfinite(per_sample)
    if ok.sum() < 2:
        v = float(np.nanmean(per_sample)) if ok.any() else np.nan
        return v, np.nan, np.nan
    p = prompts[ok]
    ci = stats.bootstrap_ci(per_sample[ok], clusters=p if np.unique(p).size < p.size else None, **ctx.cfg.boot)
    return ci.estimate, ci.low, ci.high


def _mean_over_cells(x: np.ndarray) -> np.ndarray:
    """(sample, step, call, branch, head) -> per-sample mean over finite cells."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x.reshape(x.shape[0], -1), axis=1)


def run(ctx: Context) -> Result:
    require_bookkeeping(ctx.ds, analysis=NAME)
    conds = ctx.edited(analysis=NAME)
    noop = ctx.design.noop()
    if noop and noop not in conds and (ctx.cfg.conditions is None or noop in ctx.cfg.conditions):
        conds = [noop, *conds]
    sites = [str(s) for s in ctx.ds["site"].values]
    prompts_all = strings(ctx.ds["prompt"].values)
    has_entropy = "entropy" in ctx.ds.data_vars
    rows: list[dict[str, Any]] = []
    curves: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]] = {}
    t = np.asarray(ctx.ds["t_over_T"].values, dtype=np.float64)
    for cond in conds:
        info = ctx.design.info(cond)
        cells = edit_cells(ctx.ds, cond, analysis=NAME, names=tuple(e.name for e in ctx.design.info(cond).edits))
        ref = ctx.design.reference(cond)
        ref_entropy = None
        if has_entropy:
            ref_entropy = _reference_entropy(ctx, cond, ref)
        for ec in cells:
            prompts = prompts_all[ec.samples]
            eta = info.eta if info.described and all(e.path == "score" for e in info.edits) else None
            for si in np.flatnonzero(ec.sites_acted):
                b = ec.before[:, :, :, si]  # (sample, step, call, branch, head)
                a = ec.after[:, :, :, si]
                acted = np.isfinite(b)
                removed = _mean_over_cells(np.where(acted, b - a, np.nan))
                row: dict[str, Any] = {
                    "condition": cond,
                    "edit": ec.name,
                    "site": sites[si],
                    "layer": site_label(ctx.ds, sites[si]),
                    "eta": eta,
                    "cells": int(acted.sum()),
                }
                for key, per in (("before", _mean_over_cells(b)), ("after", _mean_over_cells(a)), ("removed", removed)):
                    est, lo, hi = _ci(ctx, per, prompts)
                    row.update({key: est, f"{key}_low": lo, f"{key}_high": hi})
                if eta is not None:
                    expected = eta * b / (1 - (1 - eta) * b)
                    row["after_expected"] = float(np.nanmean(expected))
                    row["after_max_deviation"] = float(np.nanmax(np.abs(a - expected)))
                if ec.entropy_after is not None:
                    row["entropy_after"] = float(np.nanmean(ec.entropy_after[:, :, :, si]))
                if ref_entropy is not None:
                    ent = ref_entropy[:, :, :, si]
                    row["entropy_reference"] = float(np.nanmean(np.where(acted, ent, np.nan)))
                rows.append(row)
                if ec.samples.size and t.ndim == 2:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        curve_b = np.nanmean(b, axis=(0, 2, 3, 4))
                        curve_a = np.nanmean(a, axis=(0, 2, 3, 4))
                    tt = t[ec.samples[0]] if t.ndim == 2 else t  # the condition's own schedule
                    curves.setdefault(cond, []).append((sites[si], curve_b, curve_a, tt))
    queries = ctx.ds["entropy"].attrs.get("queries", "used") if has_entropy else "-"
    cols = [
        Column("condition", "condition"),
        Column("layer", "layer"),
        Column("eta", "eta", digits=2),
        Column("mass before [CI]", fmt=lambda r: ci_cell(r, "before")),
        Column("after: measured | expected", fmt=lambda r: f"{num(r.get('after'))} | {num(r.get('after_expected'))}"),
        Column("max |after - expected|", "after_max_deviation"),
        Column("removed [CI]", fmt=lambda r: ci_cell(r, "removed")),
        Column(
            "entropy after | reference (nats)",
            fmt=lambda r: f"{num(r.get('entropy_after'), 3)} | {num(r.get('entropy_reference'), 3)}",
        ),
        Column("edited cells", "cells", digits=0),
    ]
    notes = [
        "Mass of the edited keys (incoming mass over the edit's query rows), measured before and after the edit in "
        "every edited (step, call, branch, head); per sample the mean over edited cells, then the mean over samples "
        f"with a {int(ctx.cfg.level * 100)}% {ctx.cfg.ci_method} bootstrap CI over prompts.",
        "Expected after-mass of a score edit: eta P / (1 - (1 - eta) P); value-path edits leave the mass unchanged.",
        "Entropy reference: the unedited reference condition's recorded entropy at the same edited cells (same prompt "
        f"and seed), when recorded, over its record's query set ({queries!r}); entropy after is over the edit's query "
        "rows, so compare them only when the two sets agree.",
    ]
    res = Result(NAME)
    res.add_table(
        Table("table04_verification", "Table 4: intervention verification (measured removed mass)", cols, rows, notes),
        ctx.out,
    )
    res.files.append(_figure(ctx, curves))
    return res


def _reference_entropy(ctx: Context, cond: str, ref: str) -> np.ndarray | None:
    """The reference's entropy (sample, step, call, site, branch, head) aligned with ``cond``'s samples."""
    table = ctx.samples
    keys = list(ctx.cfg.pair_by)
    mine = table[table["condition"] == cond]
    theirs = table[table["condition"] == ref].set_index(keys)["sample"]
    idx = [theirs.get(tuple(r) if len(keys) > 1 else r[0]) for r in mine[keys].itertuples(index=False)]
    if any(i is None for i in idx):
        return None
    da = ctx.ds["entropy"].isel(sample=np.asarray(idx, dtype=np.int64))
    return np.asarray(da.transpose("sample", "step", "call", "site", "branch", "head").values, dtype=np.float64)


def _figure(ctx: Context, curves: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]):
    names = list(curves)[:MAX_PANELS]
    n = max(len(names), 1)
    ncols = min(n, 3)
    nrows = int(np.ceil(n / ncols))
    fig, axes = style.figure(nrows, ncols, width=3.2, height=2.4, sharey=True)
    flat = axes.ravel()
    order = [str(x) for x in ctx.ds["site"].values]
    all_sites = sorted({c[0] for cs in curves.values() for c in cs}, key=order.index)
    colors = dict(zip(all_sites, style.layer_colors(len(all_sites)), strict=True))
    for ax, cond in zip(flat, names, strict=False):
        for site, b, a, tt in curves[cond]:
            ok = np.isfinite(b)
            ax.plot(tt[ok], b[ok], color=colors[site], marker="o", ms=3, label=site_label(ctx.ds, site))
            ax.plot(tt[ok], a[ok], color=colors[site], marker="s", ms=3, ls="--")
        ax.set_title(style.wrap(cond, 30), loc="left")
        ax.set_xlabel("t/T (0 = noisiest step)")
        ax.set_xlim(-0.05, 1.05)
    for ax in axes[:, 0]:
        style.ylabel(ax, "edited keys' mass (fraction)")
    for ax in flat[len(names) :]:
        ax.set_visible(False)
    handles, labels = [], []
    for ax in flat[: len(names)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    from matplotlib.lines import Line2D

    handles += [Line2D([], [], color="0.3", marker="o", ms=3), Line2D([], [], color="0.3", marker="s", ms=3, ls="--")]
    labels += ["before the edit", "after the edit"]
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), frameon=False)
    more = f" (first {MAX_PANELS} of {len(curves)} conditions)" if len(curves) > MAX_PANELS else ""
    fig.suptitle(f"Figure 5: mass of the edited keys before and after the edit{more}")
    return style.save(fig, ctx.out / "figure05_verification.png")
