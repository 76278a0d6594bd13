"""Which conditions each H2 table is about, chosen from the design by what the conditions are.

Design
------
Predicates over :class:`~interp.analysis.design.ConditionInfo` (score-path sink removal at the default
sampler, eta series, windows, key modality...) and the *main* sink condition that per-tag breakdowns,
robustness and qualitative panels follow (``--conditions`` first entry if given; else the single-layer,
per-head, full-time, eta = 0 top-k removal with the smallest k). Each ``*_conditions`` function raises
``StoreLacks`` naming the kind of condition the table needs when the store has none.
"""

from __future__ import annotations

from collections.abc import Callable

from interp.analysis.context import Context
from interp.analysis.design import ConditionInfo
from interp.analysis.errors import StoreLacks

Pred = Callable[[ConditionInfo], bool]


def default_sampler(ctx: Context, info: ConditionInfo) -> bool:
    base = ctx.design.info(ctx.baseline) if ctx.baseline in ctx.design.names else None
    return base is None or (info.sampler == base.sampler and info.seed_offset == base.seed_offset)


def plain_sink(ctx: Context, info: ConditionInfo) -> bool:
    """Score-path top-k removal (eta = 0), online per-head selection, all steps, any key modality."""
    return (
        info.family == "sink"
        and all(e.path == "score" and e.eta == 0.0 and e.selector == "topk" and e.select == "head" for e in info.edits)
        and info.window is None
        and all(e.window is None for e in info.edits)
        and all(e.key_modality is None for e in info.edits)
        and default_sampler(ctx, info)
    )


def pick(ctx: Context, pred: Pred, *, analysis: str, what: str, hint: str = "") -> list[str]:
    """Edited conditions satisfying ``pred`` (and ``cfg.conditions``); StoreLacks naming ``what``."""
    names = ctx.edited(analysis=analysis)
    ctx.design.require_described(names, analysis=analysis)
    out = [n for n in names if pred(ctx.design.info(n))]
    if not out:
        raise StoreLacks(
            "condition",
            [what],
            analysis=analysis,
            have=[f"{i.name} ({i.family})" for i in ctx.design.infos],
            hint=hint or "add such a condition to the sweep recipe",
        )
    return out


def main_condition(ctx: Context, *, analysis: str) -> str:
    """The main sink-removal condition (see the module docstring)."""
    if ctx.cfg.conditions:
        name = ctx.cfg.conditions[0]
        ctx.design.info(name)
        return name
    cands = pick(
        ctx,
        lambda i: plain_sink(ctx, i) and i.n_layers == 1,
        analysis=analysis,
        what="single-layer score-path sink removal (mask_topk, eta=0)",
    )
    return min(cands, key=lambda n: (ctx.design.info(n).k or 0, ctx.design.names.index(n)))


def random_control(ctx: Context, sink: str) -> str | None:
    """The plain (unmatched) random control at ``sink``'s budget, if any."""
    for name in ctx.design.controls(sink, kinds=("random",)):
        if ctx.design.info(name).match is None:
            return name
    return None


def sampler_difference(ctx: Context, info: ConditionInfo) -> str:
    """Sampler settings (and seed offset) where ``info`` differs from the baseline, as ``key=value``."""
    base = ctx.design.info(ctx.baseline).sampler_dict() if ctx.baseline in ctx.design.names else {}
    mine = info.sampler_dict()
    parts = [f"{k}={mine.get(k)}" for k in sorted(set(base) | set(mine)) if base.get(k) != mine.get(k)]
    if info.seed_offset:
        parts.append(f"seed offset {info.seed_offset}")
    return ", ".join(parts) or "default"
