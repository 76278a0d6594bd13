"""The procedural dataset: GenEval-style scenes with captions, a fixed held-out split, seeded batches.

Design
------
Everything is a pure function of integers. ``sample_spec(rng, tag, split)`` draws what a caption asks
for; ``sample_scene(rng, spec)`` places objects that satisfy it; ``training_batch(seed, index, ...)``
draws batch ``index`` of a training run from ``np.random.default_rng([seed, index])``, so a run resumed
at step k sees exactly the batches it would have seen, whichever process or worker renders them.

Placement rules (so that every ground-truth render is scored correct by the exact scorer): objects are
squares of side ``SIZES[tag]`` (7 to 14 pixels) kept one pixel inside the canvas, and any two boxes are
at least ``GAP`` pixels apart on some axis (never touching, so colour components never merge). In a
``position`` scene the two boxes satisfy GenEval's relation test with exactly the requested relation,
and with a margin (normalised offset at least ``POSITION_MARGIN`` along the relation's axis).
Unspecified colours are drawn uniformly, independently per object.

Held-out split (``is_heldout``): caption *combinations* never shown in training, fixed by rules on the
vocabulary indices (see ``docs/organism.md``):

- single_object: none (its four captions are all trained; evaluation uses unseen seeds);
- colors: one (colour, shape) pair per shape, 4 of 32 captions;
- counting: ("two", cross), ("three", circle), ("four", square): 3 of 12;
- two_object: the ordered pairs circle-triangle, triangle-cross, cross-square, square-circle: 4 of 12
  (each reversed order is trained);
- position: (A, relation, B) with (a + 2 b + r) % 6 == 0, coloured or not: 6 of 48 combinations;
- color_attr: (colour A, A, colour B, B) with (ca + 3 a + 5 cb + 7 b) % 7 == 0: 96 of 672.

Training draws only non-held-out captions; ``eval_specs(tag)`` lists the held-out ones (all four
single-object captions for ``single_object``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from interp.organism.grammar import COLORS, COUNT_WORDS, RELATIONS, SHAPES, TAGS, ObjectSpec, SceneSpec
from interp.organism.render import CANVAS, PlacedObject, Scene, relative_position, render

SIZES: dict[str, tuple[int, int]] = {  # inclusive side ranges in pixels
    "single_object": (9, 14),
    "colors": (9, 14),
    "counting": (7, 10),
    "two_object": (8, 12),
    "position": (8, 12),
    "color_attr": (8, 12),
}
GAP = 2
MARGIN = 1
POSITION_MARGIN = 0.75
SPLITS = ("train", "heldout", "all")

_HELDOUT_COUNTING = {(2, "cross"), (3, "circle"), (4, "square")}
_HELDOUT_TWO = {("circle", "triangle"), ("triangle", "cross"), ("cross", "square"), ("square", "circle")}


def _s(shape: str) -> int:
    return SHAPES.index(shape)


def _c(color: str) -> int:
    return COLORS.index(color)


def is_heldout(spec: SceneSpec) -> bool:
    """Whether the caption combination of ``spec`` is reserved for evaluation (module docstring)."""
    o = spec.objects
    if spec.tag == "single_object":
        return False
    if spec.tag == "colors":
        return (_c(o[0].color) + 2 * _s(o[0].shape)) % 8 == 0
    if spec.tag == "counting":
        return (o[0].count, o[0].shape) in _HELDOUT_COUNTING
    if spec.tag == "two_object":
        return (o[0].shape, o[1].shape) in _HELDOUT_TWO
    if spec.tag == "position":
        return (_s(o[0].shape) + 2 * _s(o[1].shape) + RELATIONS.index(spec.relation)) % 6 == 0
    if spec.tag == "color_attr":
        return (_c(o[0].color) + 3 * _s(o[0].shape) + 5 * _c(o[1].color) + 7 * _s(o[1].shape)) % 7 == 0
    raise ValueError(f"unknown tag {spec.tag!r}")


def all_specs(tag: str, *, colored_positions: bool = False) -> list[SceneSpec]:
    """Every caption combination of ``tag`` in a fixed order (GenEval's uncoloured position form unless
    ``colored_positions``)."""
    pairs = [(a, b) for a in SHAPES for b in SHAPES if a != b]
    if tag == "single_object":
        return [SceneSpec(tag, (ObjectSpec(s),)) for s in SHAPES]
    if tag == "colors":
        return [SceneSpec(tag, (ObjectSpec(s, 1, c),)) for s in SHAPES for c in COLORS]
    if tag == "counting":
        return [SceneSpec(tag, (ObjectSpec(s, n),)) for n in COUNT_WORDS for s in SHAPES]
    if tag == "two_object":
        return [SceneSpec(tag, (ObjectSpec(a), ObjectSpec(b))) for a, b in pairs]
    if tag == "position":
        if colored_positions:
            return [
                SceneSpec(tag, (ObjectSpec(a, 1, ca), ObjectSpec(b, 1, cb)), r)
                for a, b in pairs
                for r in RELATIONS
                for ca in COLORS
                for cb in COLORS
                if ca != cb
            ]
        return [SceneSpec(tag, (ObjectSpec(a), ObjectSpec(b)), r) for a, b in pairs for r in RELATIONS]
    if tag == "color_attr":
        return [
            SceneSpec(tag, (ObjectSpec(a, 1, ca), ObjectSpec(b, 1, cb)))
            for a, b in pairs
            for ca in COLORS
            for cb in COLORS
            if ca != cb
        ]
    raise ValueError(f"unknown tag {tag!r}; expected one of {TAGS}")


def eval_specs(tag: str) -> list[SceneSpec]:
    """The held-out evaluation captions of ``tag`` (all four captions for ``single_object``)."""
    specs = all_specs(tag)
    if tag == "single_object":
        return specs
    return [s for s in specs if is_heldout(s)]


def train_specs(tag: str) -> list[SceneSpec]:
    """The GenEval-form captions of ``tag`` that training shows."""
    return [s for s in all_specs(tag) if not is_heldout(s)]


def _choice(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def sample_spec(
    rng: np.random.Generator, tag: str, split: str = "train", *, p_colored_position: float = 0.5
) -> SceneSpec:
    """A random caption combination of ``tag`` from ``split`` ("train", "heldout" or "all")."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if split == "heldout":
        return _choice(rng, eval_specs(tag))
    for _ in range(1000):
        if tag == "single_object":
            spec = SceneSpec(tag, (ObjectSpec(_choice(rng, SHAPES)),))
        elif tag == "colors":
            spec = SceneSpec(tag, (ObjectSpec(_choice(rng, SHAPES), 1, _choice(rng, COLORS)),))
        elif tag == "counting":
            spec = SceneSpec(tag, (ObjectSpec(_choice(rng, SHAPES), int(rng.integers(2, 5))),))
        else:
            a, b = (SHAPES[i] for i in rng.choice(len(SHAPES), 2, replace=False))
            ca, cb = (COLORS[i] for i in rng.choice(len(COLORS), 2, replace=False))
            if tag == "two_object":
                spec = SceneSpec(tag, (ObjectSpec(a), ObjectSpec(b)))
            elif tag == "color_attr":
                spec = SceneSpec(tag, (ObjectSpec(a, 1, ca), ObjectSpec(b, 1, cb)))
            elif tag == "position":
                colored = rng.random() < p_colored_position
                objs = (ObjectSpec(a, 1, ca), ObjectSpec(b, 1, cb)) if colored else (ObjectSpec(a), ObjectSpec(b))
                spec = SceneSpec(tag, objs, _choice(rng, RELATIONS))
            else:
                raise ValueError(f"unknown tag {tag!r}; expected one of {TAGS}")
        if split == "all" or not is_heldout(spec):
            return spec
    raise RuntimeError(f"could not draw a training caption for {tag!r}")  # unreachable for these rules


def _apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] >= b[2] + GAP or b[0] >= a[2] + GAP or a[1] >= b[3] + GAP or b[1] >= a[3] + GAP


def _position_ok(box_a, box_b, relation: str) -> bool:
    if relative_position(box_a, box_b) != {relation}:
        return False
    ca = (np.add(box_a[:2], box_a[2:])) / 2
    cb = (np.add(box_b[:2], box_b[2:])) / 2
    off = ca - cb
    axis = 0 if relation in ("left of", "right of") else 1
    return abs(off[axis]) / np.linalg.norm(off) >= POSITION_MARGIN


def sample_scene(rng: np.random.Generator, spec: SceneSpec, canvas: int = CANVAS) -> Scene:
    """Objects placed to satisfy ``spec`` (module docstring's rules), drawn by rejection sampling."""
    lo, hi = SIZES[spec.tag]
    items: list[tuple[str, str | None]] = [(o.shape, o.color) for o in spec.objects for _ in range(o.count)]
    for attempt in range(200):
        shrink = attempt // 50  # rarely needed: smaller objects if a layout keeps failing
        placed: list[PlacedObject] = []
        for shape, color in items:
            size = int(rng.integers(max(lo - shrink, 6), max(hi - shrink, 6) + 1))
            color = color if color is not None else _choice(rng, COLORS)
            for _ in range(50):
                x = int(rng.integers(MARGIN, canvas - MARGIN - size + 1))
                y = int(rng.integers(MARGIN, canvas - MARGIN - size + 1))
                cand = PlacedObject(shape, color, x, y, size)
                if all(_apart(cand.box, p.box) for p in placed):
                    placed.append(cand)
                    break
            else:
                break
        if len(placed) != len(items):
            continue
        if spec.tag == "position" and not _position_ok(placed[0].box, placed[1].box, spec.relation):
            continue
        return tuple(placed)
    raise RuntimeError(f"could not place {spec.caption!r} on a {canvas}x{canvas} canvas")


@dataclass(frozen=True)
class DataConfig:
    """What a training batch contains: tag mixture, caption dropout (for CFG), coloured position share."""

    tag_weights: dict[str, float] = field(
        default_factory=lambda: {
            "single_object": 0.08,
            "colors": 0.14,
            "counting": 0.26,
            "two_object": 0.12,
            "position": 0.20,
            "color_attr": 0.20,
        }
    )
    caption_dropout: float = 0.1
    p_colored_position: float = 0.5

    def __post_init__(self) -> None:
        if set(self.tag_weights) - set(TAGS) or not self.tag_weights:
            raise ValueError(f"tag_weights keys must be among {TAGS}, got {sorted(self.tag_weights)}")
        if any(w < 0 for w in self.tag_weights.values()) or sum(self.tag_weights.values()) <= 0:
            raise ValueError("tag_weights must be non-negative with a positive sum")
        if not 0.0 <= self.caption_dropout < 1.0:
            raise ValueError(f"caption_dropout must be in [0, 1), got {self.caption_dropout}")


def training_batch(
    seed: int, index: int, batch_size: int, config: DataConfig = DataConfig()
) -> tuple[np.ndarray, list[str]]:
    """Batch ``index`` of the run seeded ``seed``: (batch, 32, 32, 3) uint8 images and their captions.

    Captions dropped for classifier-free guidance are ``""`` (the pipeline's default negative prompt).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    rng = np.random.default_rng([int(seed), int(index)])
    tags = list(config.tag_weights)
    p = np.asarray([config.tag_weights[t] for t in tags], dtype=np.float64)
    p /= p.sum()
    images = np.empty((batch_size, CANVAS, CANVAS, 3), np.uint8)
    captions: list[str] = []
    for i in range(batch_size):
        tag = tags[int(rng.choice(len(tags), p=p))]
        spec = sample_spec(rng, tag, "train", p_colored_position=config.p_colored_position)
        images[i] = render(sample_scene(rng, spec))
        captions.append("" if rng.random() < config.caption_dropout else spec.caption)
    return images, captions


def example(spec: SceneSpec, seed: int) -> tuple[Scene, np.ndarray]:
    """One ground-truth scene of ``spec`` and its render, from ``seed``."""
    scene = sample_scene(np.random.default_rng([int(seed), 7919]), spec)
    return scene, render(scene)


def eval_prompts(
    n_per_tag: int, *, split: str = "heldout", tags: tuple[str, ...] = TAGS, seed_offset: int = 0
) -> list[tuple[SceneSpec, int]]:
    """(spec, seed) pairs for evaluation: ``n_per_tag`` per tag, cycling through the split's captions.

    ``split="heldout"`` uses ``eval_specs``; ``"train"`` uses the GenEval-form training captions.
    Seeds are ``seed_offset + i`` for the i-th pair of the whole list, so two lists with different
    offsets share no (caption, seed) pair when the offsets differ by at least the list's length.
    """
    if split not in ("heldout", "train"):
        raise ValueError(f"split must be 'heldout' or 'train', got {split!r}")
    out: list[tuple[SceneSpec, int]] = []
    for tag in tags:
        specs = eval_specs(tag) if split == "heldout" else train_specs(tag)
        for i in range(n_per_tag):
            out.append((specs[i % len(specs)], seed_offset + len(out)))
    return out
