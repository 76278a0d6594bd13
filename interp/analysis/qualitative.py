"""Qualitative panels: Figures 7 and 8 (baseline / sink-removed / random-removed images).

Design
------
For the main sink-removal condition and its equal-budget random control (``--conditions SINK
CONTROL`` chooses others), each row shows one prompt and seed: the baseline image, the sink-removed
image and the random-removed image, each edited image captioned with its LPIPS to the baseline image
and its change in CLIP-T (per image, from the stored scores). Figure 7 shows the prompts where sink
removal changed the image most (largest LPIPS); Figure 8 a seeded random draw of prompts, so the
reader also sees typical cases rather than only the most striking ones.
"""

from __future__ import annotations

import numpy as np

from interp.analysis import style
from interp.analysis.context import Context, Result
from interp.analysis.data import is_distance, require_variables
from interp.analysis.errors import StoreLacks
from interp.analysis.pairing import aligned
from interp.analysis.select import main_condition, random_control

NAME = "qualitative"


def run(ctx: Context) -> Result:
    require_variables(ctx.ds, ["image"], analysis=NAME, hint="sweeps store each sample's image")
    lpips = next((m for m in ctx.metrics if is_distance(m)), None)
    if lpips is None:
        raise StoreLacks(
            "metric",
            ["lpips_vs_baseline"],
            analysis=NAME,
            have=ctx.metrics,
            hint="score LPIPS against the baseline: `interp score STORE --metrics lpips`",
        )
    clip = next((m for m in ctx.metrics if "clip_t" in m and "x100" not in m), None)
    if ctx.cfg.conditions and len(ctx.cfg.conditions) >= 2:
        sink, control = ctx.cfg.conditions[0], ctx.cfg.conditions[1]
    else:
        sink = main_condition(ctx, analysis=NAME)
        control = random_control(ctx, sink)
        if control is None:
            raise StoreLacks(
                "condition",
                [f"an equal-budget random control of {sink!r}"],
                analysis=NAME,
                have=ctx.design.names,
                hint="add mask_random(...) at the same layer, k and eta",
            )
    ref = ctx.design.reference(sink)
    al = aligned(ctx.samples, lpips, [ref, sink, control], by=ctx.cfg.pair_by, analysis=NAME)
    clip_al = aligned(ctx.samples, clip, [ref, sink, control], by=ctx.cfg.pair_by, analysis=NAME) if clip else None
    n = min(ctx.cfg.n_qualitative, al.n)
    lp_sink = al.column(sink)
    top = np.argsort(-np.nan_to_num(lp_sink, nan=-1.0))[:n]
    rnd = np.sort(np.random.default_rng(ctx.cfg.seed).choice(al.n, size=n, replace=False))
    res = Result(NAME)
    res.files.append(_panel(ctx, al, clip_al, top, sink, control, lpips, clip, 7, "largest LPIPS of sink removal"))
    res.files.append(
        _panel(ctx, al, clip_al, rnd, sink, control, lpips, clip, 8, f"random prompts (seed {ctx.cfg.seed})")
    )
    return res


def _caption(al, clip_al, i: int, j: int, lpips: str, clip: str | None) -> str:
    text = f"LPIPS {al.values[i, j]:.3g}"
    if clip_al is not None:
        ci = np.flatnonzero(clip_al.samples[:, 0] == al.samples[i, 0])
        if ci.size:
            d = clip_al.values[ci[0], j] - clip_al.values[ci[0], 0]
            text += f", ΔCLIP-T {d:+.2g}"
    return text


def _panel(ctx, al, clip_al, rows, sink, control, lpips, clip, number: int, how: str):
    n = len(rows)
    fig, axes = style.figure(n, 3, width=2.3, height=2.55)
    heads = ["baseline", f"sink removed\n({sink})", f"random removed\n({control})"]
    for r, i in enumerate(rows):
        for j in range(3):
            ax = axes[r, j]
            img = np.asarray(ctx.ds["image"].isel(sample=int(al.samples[i, j])).values)
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for sp in ax.spines.values():
                sp.set_visible(False)
            if r == 0:
                ax.set_title(heads[j], fontsize=8)
            if j > 0:
                ax.set_xlabel(_caption(al, clip_al, i, j, lpips, clip), fontsize=7)
            else:
                seed = ctx.samples.loc[int(al.samples[i, 0]), "seed"] if "seed" in ctx.samples else ""
                ax.set_xlabel(style.wrap(f"{al.prompts[i]} (seed {seed})", 34), fontsize=7)
    fig.suptitle(f"Figure {number}: baseline / sink removed / random removed\n{how}")
    return style.save(fig, ctx.out / f"figure{number:02d}_qualitative.png")
