"""Figure style shared by every analysis: sizes, fonts, colours, legends placed where nothing overlaps.

Design
------
Matplotlib with the Agg backend (no display), ``constrained_layout`` on every figure so labels never
overlap, one font size for everything, 150 dpi PNGs. Layers get a sequential colormap (viridis, shallow
to deep) and, above :data:`MAX_LEGEND_LAYERS` lines, a colour bar instead of a legend; categories
(token classes, conditions) get a qualitative palette. Legends of several panels go below the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402

FONT_SIZE = 9
DPI = 150
MAX_LEGEND_LAYERS = 10
CATEGORY_COLORS = (
    "#4477AA",
    "#EE6677",
    "#228833",
    "#CCBB44",
    "#66CCEE",
    "#AA3377",
    "#BBBBBB",
    "#000000",
    "#EE7733",
    "#0077BB",
    "#33BBEE",
    "#EE3377",
    "#CC3311",
    "#009988",
)  # (Paul Tol's bright + vibrant palettes: colour-blind safe)


def rc() -> dict[str, object]:
    return {
        "font.size": FONT_SIZE,
        "axes.titlesize": FONT_SIZE + 1,
        "axes.labelsize": FONT_SIZE,
        "legend.fontsize": FONT_SIZE - 1,
        "xtick.labelsize": FONT_SIZE - 1,
        "ytick.labelsize": FONT_SIZE - 1,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.dpi": 100,
    }


def figure(nrows: int = 1, ncols: int = 1, *, width: float = 3.4, height: float = 2.6, **kw):
    """A figure of ``nrows x ncols`` panels of ``width x height`` inches each, constrained layout."""
    with plt.rc_context(rc()):
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(width * ncols, height * nrows), layout="constrained", squeeze=False, **kw
        )
    return fig, axes


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(rc()):
        fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def category_color(i: int) -> str:
    return CATEGORY_COLORS[i % len(CATEGORY_COLORS)]


def layer_colors(n: int) -> list:
    cmap = plt.get_cmap("viridis")
    return [cmap(x) for x in (np.linspace(0.0, 0.9, n) if n > 1 else [0.4])]


def block_color(block: int, blocks: Sequence[int]):
    """Colour of a block index on the layer colormap (the colour bar of :func:`layer_legend` matches it)."""
    lo, hi = min(blocks), max(blocks)
    return plt.get_cmap("viridis")(0.9 * (block - lo) / max(hi - lo, 1))


LINESTYLES = ("-", "--", ":", "-.")


def site_styles(paths: Sequence[str], blocks: Sequence[int]) -> list[tuple[object, str]]:
    """(colour, linestyle) per site: colour by block, line style by the attention's name when a block has
    several (SDXL attn1 solid, attn2 dashed)."""
    kinds = list(dict.fromkeys(p.rsplit(".", 1)[-1] for p in paths))
    multi = len(set(blocks)) < len(blocks)
    return [
        (block_color(b, blocks), LINESTYLES[kinds.index(p.rsplit(".", 1)[-1]) % 4] if multi else "-")
        for p, b in zip(paths, blocks, strict=True)
    ]


def layer_legend(fig, axes: Sequence, labels: Sequence[str], blocks: Sequence[int], paths: Sequence[str] = ()) -> None:
    """A legend of layer lines (few layers) or a colour bar of block index (many, with a line-style key
    when blocks hold several attentions)."""
    if len(labels) <= MAX_LEGEND_LAYERS:
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncol=min(len(labels), 6), title="layer", frameon=False)
        return
    lo, hi = min(blocks), max(blocks)
    sm = plt.cm.ScalarMappable(cmap="viridis", norm=Normalize(lo, lo + max(hi - lo, 1) / 0.9))
    cbar = fig.colorbar(sm, ax=list(axes), location="right", shrink=0.8, pad=0.02)
    cbar.set_label("layer (block index)")
    if paths and len(set(blocks)) < len(blocks):
        from matplotlib.lines import Line2D

        kinds = list(dict.fromkeys(p.rsplit(".", 1)[-1] for p in paths))
        handles = [Line2D([], [], color="0.3", ls=LINESTYLES[i % 4]) for i in range(len(kinds))]
        fig.legend(handles, kinds, loc="outside lower center", ncol=len(kinds), title="attention", frameon=False)


def wrap(text: str, width: int = 28) -> str:
    """Break a label on spaces so it fits ``width`` characters per line."""
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        lines.append(cur)
    return "\n".join(lines)


def zero_line(ax) -> None:
    ax.axhline(0.0, color="0.5", lw=0.8, ls=":", zorder=0)


def ylabel(ax, text: str, width: int = 24) -> None:
    """A y label wrapped onto two lines when long, so it never runs past the panel."""
    ax.set_ylabel(wrap(text, width))


def xlabel(ax, text: str, width: int = 40) -> None:
    ax.set_xlabel(wrap(text, width))
