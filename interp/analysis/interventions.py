"""Effects of edit conditions on image metrics: Tables 2, 5, 6, 12, 13, 15 and 16.

Design
------
Each table is :func:`interp.analysis.effects.effect_table` over a different set of conditions, chosen
by what the conditions are (:mod:`interp.analysis.select`), never by name:

- Table 2, dynamic sink interventions: score-path top-k removal (eta = 0), online per-head selection,
  all steps, default sampler (the paper's A1 / A2 / A3; on an SDXL store, the same table is the SDXL
  corroboration);
- Table 5, value path: ``replace_values`` conditions (zero / mean / lerp);
- Table 6, selection protocol: union vs per-head selection and replayed vs online sinks, each beside
  the per-head online removal at the same k and layers;
- Table 12, multi-layer: removal at several layers at once, beside single-layer removals;
- Table 13, phase windows: removal restricted to a t/T (or step, or sigma) window, beside full-time
  removal at the same k and layers;
- Table 15, sampling sensitivity: edits run under other sampler settings, each against the unedited
  run with the same settings, beside the same edit at the default settings, with a two-sided test of
  the change in effect (difference of differences of the per-pair effects);
- Table 16, text vs image: removal restricted to text keys or to image keys, with a two-sided
  difference-of-differences test of text vs image.

Every table has the noise-floor row first (when the store has a no-op condition) and Holm-adjusted
p-values over all its tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp import stats
from interp.analysis.context import Context, Result
from interp.analysis.data import is_distance, metric_label, require_metrics
from interp.analysis.effects import adjust, effect_table, pair
from interp.analysis.errors import StoreLacks
from interp.analysis.select import default_sampler, pick, plain_sink, sampler_difference
from interp.analysis.tables import Column, ci_cell, pval


def _describe(ctx: Context):
    return lambda c: {"edit": ctx.design.info(c).describe()}


EDIT_COL = Column("edit", "edit")


def _conditions_table(ctx: Context, name: str, title: str, keep, what: str) -> Result:
    """One table of effects of the edited conditions that ``keep`` (a predicate on condition info) picks."""
    metrics = require_metrics(ctx.ds, analysis=name)
    conds = pick(ctx, keep, analysis=name, what=what)
    table, _ = effect_table(
        ctx,
        name=name,
        title=title,
        conditions=conds,
        metrics=metrics,
        analysis=name,
        describe=_describe(ctx),
        describe_columns=[EDIT_COL],
    )
    return Result.of_table(name, table, ctx.out)


def table2(ctx: Context) -> Result:
    return _conditions_table(
        ctx,
        "table02_sink_interventions",
        "Table 2: dynamic sink interventions (score path, eta = 0)",
        lambda i: plain_sink(ctx, i),
        "score-path sink removal (mask_topk, eta=0)",
    )


def table5(ctx: Context) -> Result:
    return _conditions_table(
        ctx,
        "table05_value_path",
        "Table 5: value-path interventions",
        lambda i: i.family == "value",
        "value-path edit (replace_values)",
    )


def _same_place(a, b) -> bool:
    return a.layers == b.layers and a.k == b.k and a.sampler == b.sampler and a.seed_offset == b.seed_offset


def table6(ctx: Context) -> Result:
    name = "table06_selection"
    metrics = require_metrics(ctx.ds, analysis=name)

    def alt(i) -> bool:
        return i.family == "sink" and any(e.select == "union" or e.selector == "replay" for e in i.edits)

    alts = pick(ctx, alt, analysis=name, what="union-selected or replayed sink removal")
    online = [n for n in ctx.design.edited(only=ctx.cfg.conditions) if plain_sink(ctx, ctx.design.info(n))]
    conds: list[str] = []
    for a in alts:
        ia = ctx.design.info(a)
        conds += [o for o in online if _same_place(ctx.design.info(o), ia) and o not in conds]
        conds.append(a)

    def describe(c: str) -> dict[str, Any]:
        i = ctx.design.info(c)
        sel = "replay" if any(e.selector == "replay" for e in i.edits) else i.edits[0].select
        return {"edit": i.describe(), "selection": sel}

    table, _ = effect_table(
        ctx,
        name=name,
        title="Table 6: sink selection protocol (per head vs union; online vs replayed)",
        conditions=conds,
        metrics=metrics,
        analysis=name,
        describe=describe,
        describe_columns=[Column("selection", "selection"), EDIT_COL],
    )
    return Result.of_table(name, table, ctx.out)


def table12(ctx: Context) -> Result:
    name = "table12_multilayer"
    metrics = require_metrics(ctx.ds, analysis=name)
    multi = pick(
        ctx,
        lambda i: plain_sink(ctx, i) and i.n_layers > 1,
        analysis=name,
        what="sink removal at several layers (mask_topk(layers=[...]))",
    )
    ks = {ctx.design.info(m).k for m in multi}
    single = [
        n
        for n in ctx.design.edited(only=ctx.cfg.conditions)
        if plain_sink(ctx, ctx.design.info(n)) and ctx.design.info(n).n_layers == 1 and ctx.design.info(n).k in ks
    ]
    conds = sorted(single + multi, key=lambda n: (ctx.design.info(n).n_layers, ctx.design.names.index(n)))

    def describe(c: str) -> dict[str, Any]:
        i = ctx.design.info(c)
        return {"edit": i.describe(), "n_layers": i.n_layers, "layers": ", ".join(str(x) for x in i.layers), "k": i.k}

    table, _ = effect_table(
        ctx,
        name=name,
        title="Table 12: multi-layer sink removal",
        conditions=conds,
        metrics=metrics,
        analysis=name,
        describe=describe,
        describe_columns=[Column("layers", "layers"), Column("k", "k", digits=0)],
    )
    return Result.of_table(name, table, ctx.out)


def _full_time_twin(ctx: Context, info) -> list[str]:
    out = []
    for n in ctx.design.edited(only=ctx.cfg.conditions):
        o = ctx.design.info(n)
        if o.family == info.family and o.window is None and _same_place(o, info) and plain_sink(ctx, o):
            out.append(n)
    return out


def table13(ctx: Context) -> Result:
    name = "table13_phase_windows"
    metrics = require_metrics(ctx.ds, analysis=name)
    windowed = pick(
        ctx,
        lambda i: i.family == "sink" and i.window is not None and default_sampler(ctx, i),
        analysis=name,
        what="sink removal in a step window (mask_topk(phase=(a, b)))",
    )
    conds: list[str] = []
    for w in windowed:
        conds += [t for t in _full_time_twin(ctx, ctx.design.info(w)) if t not in conds]
    windowed.sort(key=lambda n: ctx.design.info(n).window[1])
    conds = conds + windowed

    def describe(c: str) -> dict[str, Any]:
        i = ctx.design.info(c)
        w = i.window
        return {"edit": i.describe(), "window": "all steps" if w is None else f"{w[0]} [{w[1][0]:g}, {w[1][1]:g}]"}

    table, _ = effect_table(
        ctx,
        name=name,
        title="Table 13: phase windows",
        conditions=conds,
        metrics=metrics,
        analysis=name,
        describe=describe,
        describe_columns=[Column("window", "window"), EDIT_COL],
    )
    table.notes.append(
        "Windows are closed intervals of t/T = step / (T - 1) (0 = noisiest step) unless labelled steps or sigma."
    )
    return Result.of_table(name, table, ctx.out)


def _effect_units(ctx: Context, metric: str, cond: str, ref: str, *, analysis: str):
    """Per-unit effects of ``cond`` vs ``ref`` (LPIPS: the distance itself), keyed by pairing keys."""
    al = pair(ctx, metric, [cond, ref], analysis=analysis)
    eff = al.column(cond) if is_distance(metric) else al.column(cond) - al.column(ref)
    keys = ctx.samples.loc[al.samples[:, 0], list(ctx.cfg.pair_by)].astype(str).agg("|".join, axis=1).to_numpy()
    return dict(zip(keys, eff, strict=True)), dict(zip(keys, al.prompts, strict=True))


def _did_columns(
    row: dict[str, Any], metric: str, label: str, a: str, b: str, ctx: Context, *, analysis: str, sign: str
) -> None:
    """Two-sided difference of the per-unit effects of ``a`` and ``b`` (each vs its own reference)."""
    ea, pa = _effect_units(ctx, metric, a, ctx.design.reference(a), analysis=analysis)
    eb, _ = _effect_units(ctx, metric, b, ctx.design.reference(b), analysis=analysis)
    keys = [k for k in ea if k in eb and np.isfinite(ea[k]) and np.isfinite(eb[k])]
    if len(keys) < 2:
        row.update({f"{label}_{metric}": np.nan, f"{label}_{metric}_p": np.nan})
        return
    x = np.array([ea[k] for k in keys])
    y = np.array([eb[k] for k in keys])
    prompts = np.array([pa[k] for k in keys], dtype=object)
    clusters = prompts if np.unique(prompts).size < prompts.size else None
    r = stats.difference_of_differences(x, y, alternative="two-sided", clusters=clusters, **ctx.cfg.boot)
    row.update(
        {
            f"{label}_{metric}": r.estimate,
            f"{label}_{metric}_low": r.ci.low,
            f"{label}_{metric}_high": r.ci.high,
            f"{label}_{metric}_p": r.ttest.pvalue,
            f"{label}_{metric}_sign": sign,
            f"{label}_{metric}_n": r.n,
        }
    )


def _shift_cell(row: dict[str, Any], prefix: str) -> str:
    if prefix not in row:
        return ""
    return f"{ci_cell(row, prefix)} (p {pval(row.get(prefix + '_p_adj'))})"


def table15(ctx: Context) -> Result:
    name = "table15_sampling"
    metrics = require_metrics(ctx.ds, analysis=name)
    variants = pick(
        ctx,
        lambda i: i.family not in ("plain", "noop") and not default_sampler(ctx, i),
        analysis=name,
        what="edit under other sampler settings (a condition with its own sampler and a plan-free twin)",
    )
    rows_for: list[tuple[str, str | None]] = []
    for v in variants:
        iv = ctx.design.info(v)
        twin = next(
            (
                n
                for n in ctx.design.edited(only=ctx.cfg.conditions)
                if default_sampler(ctx, ctx.design.info(n))
                and sorted(map(repr, (e.budget() for e in ctx.design.info(n).edits)))
                == sorted(map(repr, (e.budget() for e in iv.edits)))
            ),
            None,
        )
        rows_for.append((v, twin))
    conds: list[str] = []
    for v, twin in rows_for:
        if twin and twin not in conds:
            conds.append(twin)
        conds.append(v)

    def describe(c: str) -> dict[str, Any]:
        i = ctx.design.info(c)
        return {"edit": i.describe(), "sampler": sampler_difference(ctx, i), "reference_of": ctx.design.reference(c)}

    table, _ = effect_table(
        ctx,
        name=name,
        title="Table 15: sampling sensitivity",
        conditions=conds,
        metrics=metrics,
        analysis=name,
        describe=describe,
        describe_columns=[Column("sampler", "sampler"), Column("reference", "reference_of"), EDIT_COL],
    )
    tests = []
    for v, twin in rows_for:
        row = next(r for r in table.rows if r["condition"] == v)
        row["default_twin"] = twin or ""
        if twin is None:
            continue
        for m in metrics:
            _did_columns(row, m, "shift", v, twin, ctx, analysis=name, sign="variant - default")
            tests.append((row, m))
    adj = adjust([r.get(f"shift_{m}_p", np.nan) for r, m in tests], ctx.cfg.adjust)
    for (r, m), q in zip(tests, adj, strict=True):
        r[f"shift_{m}_p_adj"] = q
    for m in metrics:
        table.columns = [
            *table.columns,
            Column(f"shift in {metric_label(m)} effect [CI] (p)", fmt=lambda r, m=m: _shift_cell(r, f"shift_{m}")),
        ]
    table.notes.append(
        "Each condition is compared with the unedited run at its own sampler settings (column reference). "
        "Shift = (effect under the variant sampler) - (effect of the same edit at the default sampler), per pair, "
        f"two-sided test, p adjusted ({ctx.cfg.adjust}) over this table's shift tests. "
        "`interp score` measures LPIPS against the baseline condition of the same prompt and seed, so for a "
        "condition with other sampler settings its LPIPS includes the sampler change itself."
    )
    return Result.of_table(name, table, ctx.out)


def table16(ctx: Context) -> Result:
    name = "table16_text_vs_image"
    metrics = require_metrics(ctx.ds, analysis=name)
    mod = pick(
        ctx,
        lambda i: i.family in ("sink", "fixed") and i.key_modality in ("text", "image") and default_sampler(ctx, i),
        analysis=name,
        what="sink removal restricted to text or image keys (mask_topk(modality=...))",
    )
    texts = [m for m in mod if ctx.design.info(m).key_modality == "text"]
    images = [m for m in mod if ctx.design.info(m).key_modality == "image"]
    if not texts or not images:
        raise StoreLacks(
            "condition",
            ["text-only" if not texts else "image-only" + " sink removal"],
            analysis=name,
            have=mod,
            hint="Table 16 compares text-only with image-only removal at the same budget",
        )
    both = []
    for t in texts:
        both += [x for x in _full_time_twin(ctx, ctx.design.info(t)) if x not in both]
    conds = both + texts + images

    def describe(c: str) -> dict[str, Any]:
        i = ctx.design.info(c)
        return {"edit": i.describe(), "keys": i.key_modality or "any"}

    table, _ = effect_table(
        ctx,
        name=name,
        title="Table 16: text vs image sinks",
        conditions=conds,
        metrics=metrics,
        analysis=name,
        describe=describe,
        describe_columns=[Column("keys", "keys"), EDIT_COL],
    )
    tests = []
    for t in texts:
        it = ctx.design.info(t)
        for im in images:
            ii = ctx.design.info(im)
            if ii.k != it.k or ii.layers != it.layers:
                continue
            row: dict[str, Any] = {
                "condition": f"text - image: {t} vs {im}",
                "edit": "difference of effects",
                "keys": "text - image",
            }
            for m in metrics:
                _did_columns(row, m, "tvi", t, im, ctx, analysis=name, sign="text - image")
                row["n_pairs"] = max(row.get("n_pairs", 0), row.get(f"tvi_{m}_n", 0))
                row[m] = row.get(f"tvi_{m}")
                row[f"{m}_low"], row[f"{m}_high"] = row.get(f"tvi_{m}_low"), row.get(f"tvi_{m}_high")
                tests.append((row, m))
            table.rows.append(row)
    adj = adjust([r.get(f"tvi_{m}_p", np.nan) for r, m in tests], ctx.cfg.adjust)
    for (r, m), q in zip(tests, adj, strict=True):
        r[f"{m}_p_adj"] = q
    table.notes.append(
        "Rows 'text - image': per-pair difference of the two conditions' effects (same prompts and seeds), "
        f"two-sided paired test, adjusted ({ctx.cfg.adjust}) over these contrasts."
    )
    return Result.of_table(name, table, ctx.out)
