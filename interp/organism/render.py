"""Rasterising the organism's scenes: flat-coloured shapes on a grey 32x32 canvas, exactly reproducible.

Design
------
Every shape is a pixel-centre test inside its bounding box (``shape_mask(shape, w, h)``), written with
numpy only, so the same function draws the training images and the scorer's templates: a ground-truth
render matches its own template with IoU exactly 1. Each mask touches all four sides of its box (the
triangle's apex row is at least two pixels wide for even widths, one for odd), so the bounding box of
a drawn shape is the box it was drawn in.

A ``Scene`` is a tuple of ``PlacedObject`` (shape, colour, top-left corner, size); ``render`` paints them
in order on the background with no anti-aliasing. Layouts (where objects go) are sampled in
``interp.organism.dataset``; this module only draws and measures. ``relative_position`` is GenEval's
function (``evaluation/evaluate_images.py`` of djghosh13/geneval, threshold 0.1), re-typed here
because the benchmark ships it inside a script that imports its detector stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from interp.organism.grammar import COLORS, SHAPES

CANVAS = 32
BACKGROUND: tuple[int, int, int] = (128, 128, 128)
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (245, 220, 30),
    "green": (30, 160, 50),
    "blue": (40, 70, 230),
    "purple": (140, 50, 190),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
}
assert tuple(PALETTE) == COLORS
POSITION_THRESHOLD = 0.1  # GenEval's default


def _band(n: int) -> np.ndarray:
    """The pixels of a cross arm across a side of n pixels: ``arm_width(n)`` pixels, centred (half a
    pixel left of centre where the parities differ)."""
    a = arm_width(n)
    lo = (n - a) // 2
    band = np.zeros(n, bool)
    band[lo : lo + a] = True
    return band


def arm_width(n: int) -> int:
    """Arm thickness of a cross whose box side is n pixels: round(0.4 n), at least 3 (at most n).

    Thick enough to draw at 7-10 pixels (arms a third of the box were 2 pixels wide at 8 pixels, and
    the shipped model drew 14% of held-out crosses), thin enough that the plus keeps its notches."""
    return min(n, max(3, int(np.floor(0.4 * n + 0.5))))


@lru_cache(maxsize=4096)
def _mask(shape: str, w: int, h: int) -> np.ndarray:
    px = np.arange(w, dtype=np.float64)[None, :] + 0.5
    py = np.arange(h, dtype=np.float64)[:, None] + 0.5
    cx, cy = w / 2.0, h / 2.0
    if shape == "square":
        m = np.ones((h, w), bool)
    elif shape == "circle":
        m = ((px - cx) / cx) ** 2 + ((py - cy) / cy) ** 2 <= 1.0
    elif shape == "triangle":  # apex up, base on the bottom row
        m = np.abs(px - cx) <= cx * py / h + 0.5
    elif shape == "cross":  # a plus sign, arms about 0.4 of the box thick (at least 3 pixels)
        m = _band(w)[None, :] | _band(h)[:, None]
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    m = np.broadcast_to(m, (h, w)).copy()
    m.setflags(write=False)
    return m


def shape_mask(shape: str, w: int, h: int | None = None) -> np.ndarray:
    """Boolean (h, w) mask of ``shape`` filling a w x h box (read-only, cached)."""
    h = w if h is None else h
    if w < 1 or h < 1:
        raise ValueError(f"box must be at least 1x1, got {w}x{h}")
    return _mask(shape, int(w), int(h))


@dataclass(frozen=True)
class PlacedObject:
    """One drawn object: ``shape`` in ``color`` filling the square box [x, x+size) x [y, y+size)."""

    shape: str
    color: str
    x: int
    y: int
    size: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) with exclusive ends, in pixels (GenEval's box convention, continuous)."""
        return (self.x, self.y, self.x + self.size, self.y + self.size)


Scene = tuple[PlacedObject, ...]


def render(scene: Scene, canvas: int = CANVAS) -> np.ndarray:
    """The scene as a (canvas, canvas, 3) uint8 RGB image."""
    img = np.empty((canvas, canvas, 3), np.uint8)
    img[:] = BACKGROUND
    for o in scene:
        if o.x < 0 or o.y < 0 or o.x + o.size > canvas or o.y + o.size > canvas:
            raise ValueError(f"{o} does not fit a {canvas}x{canvas} canvas")
        region = img[o.y : o.y + o.size, o.x : o.x + o.size]
        region[shape_mask(o.shape, o.size)] = PALETTE[o.color]
    return img


def relative_position(box_a, box_b, threshold: float = POSITION_THRESHOLD) -> set[str]:
    """Relations of box A to box B ({"left of", "above", ...}), GenEval's rule and threshold."""
    boxes = np.array([box_a, box_b], dtype=np.float64)[:, :4].reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - threshold * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    rel = set()
    if dx < -0.5:
        rel.add("left of")
    if dx > 0.5:
        rel.add("right of")
    if dy < -0.5:
        rel.add("above")
    if dy > 0.5:
        rel.add("below")
    return rel
