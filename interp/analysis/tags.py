"""Effects by GenEval task type: Table 14.

Design
------
The main sink-removal condition (or every condition given with ``--conditions``) against its reference,
split by the sample coordinate ``tag`` (GenEval's six task types: single object, two objects, counting,
colours, position, colour attribution). Each cell is the paired effect within the tag's prompts with a
bootstrap CI; p-values are adjusted over the whole table. A tag with fewer than two pairs is shown
with n and no estimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp.analysis.context import Context, Result
from interp.analysis.data import require_metrics
from interp.analysis.effects import adjust, effect_cells, effect_from_values, metric_columns, pair, stats_note
from interp.analysis.errors import StoreLacks
from interp.analysis.select import main_condition
from interp.analysis.tables import Column, Table

NAME = "tags"


def tag_effects(ctx: Context, cond: str, metrics: list[str], *, analysis: str) -> list[dict[str, Any]]:
    ref = ctx.design.reference(cond)
    noop = ctx.design.noop(ref)
    rows: dict[str, dict[str, Any]] = {}
    for m in metrics:
        conds = [cond, ref] + ([noop] if noop and noop != cond and m.startswith("lpips") else [])
        al = pair(ctx, m, conds, analysis=analysis)
        for tag in sorted(set(al.tags)):
            sub = al.subset(al.tags == tag)
            row = rows.setdefault(tag, {"condition": cond, "tag": tag, "n_pairs": sub.n})
            floor = sub.column(noop) if len(conds) == 3 else None
            e = effect_from_values(ctx, m, cond, ref, sub.column(cond), sub.column(ref), sub.prompts, floor=floor)
            row.update(effect_cells(m, e))
    return list(rows.values())


def run(ctx: Context) -> Result:
    metrics = require_metrics(ctx.ds, analysis=NAME)
    tags = set(ctx.samples["tag"])
    if tags <= {""}:
        raise StoreLacks(
            "sample coordinate", ["tag"], analysis=NAME, hint="sweeps over GenEval prompts store each prompt's tag"
        )
    conds = list(ctx.cfg.conditions) if ctx.cfg.conditions else [main_condition(ctx, analysis=NAME)]
    rows: list[dict[str, Any]] = []
    for c in conds:
        rows += tag_effects(ctx, c, metrics, analysis=NAME)
    keys = [(i, m) for i in range(len(rows)) for m in metrics]
    for (i, m), q in zip(keys, adjust([rows[i].get(f"{m}_p", np.nan) for i, m in keys], ctx.cfg.adjust), strict=True):
        rows[i][f"{m}_p_adj"] = q
    cols = [Column("condition", "condition"), Column("tag", "tag"), Column("n", "n_pairs", digits=0)]
    cols += metric_columns(metrics, ctx.cfg.adjust)
    notes = [stats_note(ctx), "Tags are GenEval's task types (sample coordinate `tag`)."]
    res = Result(NAME)
    res.add_table(Table("table14_by_tag", "Table 14: effects by GenEval task type", cols, rows, notes), ctx.out)
    return res
