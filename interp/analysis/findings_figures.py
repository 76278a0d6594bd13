"""The findings page's figures, drawn from :func:`interp.analysis.findings.compute`'s results only.

Design
------
Like the page's tables, every figure is a view of the results dict (no statistic is computed here), so
figures and tables cannot disagree. :func:`write_figures` writes PNGs (``interp.analysis.style``:
Agg, constrained layout, 150 dpi) into one folder and returns, per figure, its file name and a
caption; the page references them by path relative to itself. Figures:

* ``accuracy_forest.png``: accuracy difference of every condition vs the baseline with its 95% CI
  (Holm-significant rows filled), the TOST margin shaded;
* ``shift_ratio.png``: per sink / matched-control pair, the ratio of mean distances to the baseline
  (pixel, latent and LPIPS where present) with CIs, on a log axis with 1 marked;
* ``token_classes.png``: the word classes of the keys each edit removed (cond branch), per layer and
  per denoising phase, as stacked shares.

A figure whose data is absent (no control pairs, no edited keys) is not written.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from interp.analysis import style

FOREST, RATIO, CLASSES = "accuracy_forest.png", "shift_ratio.png", "token_classes.png"


def _num(x: float | None) -> float:
    return float(x) if x is not None and math.isfinite(float(x)) else math.nan


def write_figures(res: dict, folder: str | Path) -> list[tuple[str, str]]:
    """Write the page's figures into ``folder``; [(file name, caption)] of those written."""
    folder = Path(folder)
    out = []
    if res.get("empty") or not res.get("conditions"):
        return out
    out.append((forest(res, folder / FOREST).name, _forest_caption(res)))
    if res.get("contrasts"):
        caption = "Distance to the baseline image: sink edit / its matched control, with 95% CI."
        out.append((ratio(res, folder / RATIO).name, caption))
    path = token_classes(res, folder / CLASSES)
    if path is not None:
        out.append((path.name, "Word classes of the keys each edit removed (cond branch), by layer and by phase."))
    return out


def _forest_caption(res: dict) -> str:
    return (
        f"Accuracy difference vs baseline (baseline accuracy {res['baseline_accuracy']:.3f}) with 95% CI; filled: "
        f"Holm p < {res['alpha']:g}; shaded: the TOST margin ±{res['margin']:g}."
    )


def forest(res: dict, path: Path) -> Path:
    rows = res["conditions"]
    fig, axes = style.figure(width=6.4, height=0.28 * len(rows) + 1.0)
    ax = axes[0, 0]
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows, strict=True):
        d = r["delta"]
        est, lo, hi = _num(d["estimate"]), _num(d["low"]), _num(d["high"])
        if math.isfinite(lo) and math.isfinite(hi):
            ax.plot([lo, hi], [yi, yi], color="0.25", lw=1.2)
        sig = d.get("p_adj") is not None and d["p_adj"] < res["alpha"]
        ax.plot([est], [yi], "o", ms=5, color=style.category_color(1 if est < 0 else 0), mfc=None if sig else "white")
    ax.axvspan(-res["margin"], res["margin"], color="0.9", zorder=0)
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_yticks(y, [r["condition"] for r in rows])
    ax.set_xlabel("Δ accuracy vs baseline (edited - baseline)")
    ax.set_title(f"Accuracy vs baseline, {res['scale']['units']} units")
    return style.save(fig, path)


RATIO_KINDS = (("shift_ratio", "pixel"), ("latent_ratio", "latent"), ("lpips_ratio", "LPIPS"))


def ratio(res: dict, path: Path) -> Path:
    pairs = res["contrasts"]
    kinds = [(k, label) for k, label in RATIO_KINDS if any(k in c for c in pairs)]
    fig, axes = style.figure(width=6.4, height=0.32 * len(pairs) * len(kinds) + 1.0)
    ax = axes[0, 0]
    step = 1.0 / (len(kinds) + 1)
    y0 = np.arange(len(pairs))[::-1].astype(float)
    for j, (key, label) in enumerate(kinds):
        y = y0 + (len(kinds) - 1 - j) * step - (len(kinds) - 1) * step / 2
        for yi, c in zip(y, pairs, strict=True):
            e = c.get(key)
            if e is None:
                continue
            est, lo, hi = _num(e["estimate"]), _num(e["low"]), _num(e["high"])
            if math.isfinite(lo) and math.isfinite(hi) and lo > 0:
                ax.plot([lo, hi], [yi, yi], color=style.category_color(j), lw=1.2)
            if math.isfinite(est) and est > 0:
                ax.plot([est], [yi], "o", ms=4, color=style.category_color(j), label=label if yi == y[0] else None)
    ax.axvline(1, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(y0, [f"{c['sink']} / {c['control']}" for c in pairs])
    ax.set_xlabel("mean distance to baseline: sink / control (log)")
    ax.set_title("Sink / control shift")
    if len(kinds) > 1:
        fig.legend(loc="outside lower center", ncol=len(kinds), frameon=False, title="distance")
    return style.save(fig, path)


def _stack(ax, labels: list[str], shares: list[list[float | None]], classes: list[str], title: str) -> None:
    data = np.array([[_num(x) for x in row] for row in shares], dtype=np.float64)
    data = np.nan_to_num(data)
    left = np.zeros(len(labels))
    y = np.arange(len(labels))[::-1]
    for k, cls in enumerate(classes):
        ax.barh(y, data[:, k], left=left, color=style.category_color(k), label=cls, height=0.8)
        left += data[:, k]
    ax.set_yticks(y, labels)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of removed keys")
    ax.set_title(title)


def token_classes(res: dict, path: Path) -> Path | None:
    ident = res.get("identity", {})
    panels = [(f"`{c}` by layer", s) for c, s in ident.get("by_site", {}).items() if len(s) > 1]
    panels += [(f"`{c}` by phase", s) for c, s in ident.get("by_phase", {}).items()]
    panels = [(t, s) for t, s in panels if s]
    if not panels:
        return None
    classes = list(ident["classes"])
    n = len(panels)
    fig, axes = style.figure(nrows=n, ncols=1, width=5.2, height=1.7)
    for ax, (title, by) in zip(axes[:, 0], panels, strict=True):
        _stack(ax, [_short(k) for k in by], list(by.values()), classes, title.replace("`", ""))
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(classes), 4), frameon=False)
    return style.save(fig, path)


def _short(site: str) -> str:
    """A site path shortened for an axis label (``transformer.blocks.3.attn`` -> ``blocks.3.attn``)."""
    parts = site.split(".")
    return ".".join(parts[-3:]) if len(parts) > 3 else site
