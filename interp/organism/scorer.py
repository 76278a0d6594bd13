"""Exact GenEval-style scoring of organism images: detect shapes by colour, then apply GenEval's rules.

Design
------
GenEval detects objects with Mask2Former, classifies each detection's colour with CLIP and then runs a
small rule set (``evaluate`` in ``evaluation/evaluate_images.py`` of djghosh13/geneval): for every
``include`` clause, the ``count`` most confident detections of the class must exist, carry the asked
colour, and stand in the asked relation to the previous clause's objects; an ``exclude`` clause fails
when ``count`` or more detections of its class exist. ``evaluate`` below is that rule set, unchanged.

The organism's images are flat colours on grey, so detection can be exact instead of learned:

1. every pixel takes the nearest reference colour (the eight palette colours or the background) in RGB;
2. each colour's 4-connected components are candidate objects (``scipy.ndimage.label``); components
   under ``min_area`` pixels or ``min_side`` pixels wide/high are noise and dropped;
3. a component's shape is the template (``render.shape_mask`` at the component's own box size) with
   the highest IoU against the component's mask; below ``min_iou`` it is an unknown blob that counts
   as no class. The IoU is the detection's confidence (GenEval orders detections by confidence).

Ground-truth renders score exactly: each object is one component whose mask equals its template.
``score`` returns per-image correctness, per-tag accuracy (GenEval's "task breakdown") and the mean
over tags (GenEval's overall score), plus a cheap soft ``alignment`` in [0, 1]: the mean over the rule
set's atomic checks (objects present / count, colour, relation, exclusion) of the fraction satisfied;
it equals 1 exactly when the image is correct.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from interp.organism.grammar import COLORS, SHAPES, TAGS, SceneSpec, parse_caption
from interp.organism.render import BACKGROUND, PALETTE, POSITION_THRESHOLD, relative_position, shape_mask

_REFS = np.asarray([BACKGROUND, *PALETTE.values()], dtype=np.float64)  # index 0 = background
_FOUR = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class ScorerConfig:
    """Detection thresholds (pixels and IoU)."""

    min_area: int = 10
    min_side: int = 4
    min_iou: float = 0.55
    position_threshold: float = POSITION_THRESHOLD

    def __post_init__(self) -> None:
        if self.min_area < 1 or self.min_side < 1 or not 0.0 < self.min_iou <= 1.0:
            raise ValueError(f"invalid scorer thresholds: {self}")


@dataclass(frozen=True)
class Detection:
    """One colour component: its best shape (None: no template fits), colour, box, area, IoU."""

    shape: str | None
    color: str
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1), exclusive ends
    area: int
    iou: float


@dataclass(frozen=True)
class Evaluation:
    correct: bool
    alignment: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ScoreResult:
    """Per-image results (arrays in input order) and per-tag accuracies."""

    correct: np.ndarray
    alignment: np.ndarray
    tags: tuple[str, ...]
    prompts: tuple[str, ...]
    reasons: tuple[tuple[str, ...], ...]
    per_tag: dict[str, float]
    overall: float

    def __len__(self) -> int:
        return len(self.correct)


def to_rgb(image: Any) -> np.ndarray:
    """One image as a float64 (H, W, 3) array in [0, 255].

    Accepts a PIL image, a uint8 array (H, W, 3), a float array in [0, 1] (H, W, 3) or (3, H, W) (the
    pipeline's ``"np"`` output), or a torch tensor (3, H, W) in [0, 1] (the ``"pt"`` output) or uint8.
    """
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        return np.asarray(image.convert("RGB"), dtype=np.float64)
    if hasattr(image, "detach"):  # torch
        image = image.detach().cpu()
        if image.dtype.is_floating_point:
            image = image.float()
        image = image.numpy()
    arr = np.asarray(image)
    if arr.ndim != 3:
        raise ValueError(f"expected one image with 3 dimensions, got shape {arr.shape}")
    if arr.shape[-1] != 3 and arr.shape[0] == 3:
        arr = np.moveaxis(arr, 0, -1)
    if arr.shape[-1] != 3:
        raise ValueError(f"expected 3 colour channels, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"expected uint8 or float pixels, got {arr.dtype}")
    return np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0


def classify_pixels(rgb: np.ndarray) -> np.ndarray:
    """(H, W) int array: -1 for background, else the index in ``COLORS`` of the nearest palette colour."""
    d2 = ((rgb[:, :, None, :] - _REFS[None, None]) ** 2).sum(-1)
    return d2.argmin(-1) - 1


def detect(image: Any, config: ScorerConfig = ScorerConfig()) -> list[Detection]:
    """Every object-sized colour component of ``image``, with its best-fitting shape."""
    labels = classify_pixels(to_rgb(image))
    out: list[Detection] = []
    for ci, color in enumerate(COLORS):
        comp, n = ndimage.label(labels == ci, structure=_FOUR)
        if n == 0:
            continue
        for k, sl in enumerate(ndimage.find_objects(comp), start=1):
            mask = comp[sl] == k
            area = int(mask.sum())
            h, w = mask.shape
            if area < config.min_area or min(h, w) < config.min_side:
                continue
            best, best_iou = None, -1.0
            for shape in SHAPES:
                tmpl = shape_mask(shape, w, h)
                iou = float((mask & tmpl).sum() / (mask | tmpl).sum())
                if iou > best_iou:
                    best, best_iou = shape, iou
            box = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
            out.append(Detection(best if best_iou >= config.min_iou else None, color, box, area, best_iou))
    return out


def _by_class(detections: Sequence[Detection]) -> dict[str, list[Detection]]:
    objs: dict[str, list[Detection]] = {}
    for d in detections:
        if d.shape is not None:
            objs.setdefault(d.shape, []).append(d)
    for v in objs.values():
        v.sort(key=lambda d: (-d.iou, -d.area, d.box))
    return objs


def evaluate(
    detections: Sequence[Detection], metadata: Mapping[str, Any], config: ScorerConfig = ScorerConfig()
) -> Evaluation:
    """GenEval's rule set on these detections (see module docstring), with a soft alignment score."""
    objects = _by_class(detections)
    correct = True
    reasons: list[str] = []
    checks: list[float] = []
    matched_groups: list[list[Detection] | None] = []
    for req in metadata.get("include", []):
        cls, count = req["class"], int(req["count"])
        matched = True
        found = objects.get(cls, [])[:count]
        checks.append(min(len(found), count) / count)
        if len(found) < count:
            correct = matched = False
            reasons.append(f"expected {cls}>={count}, found {len(found)}")
            if "color" in req:
                checks.append(sum(d.color == req["color"] for d in found) / count)
            if "position" in req:
                checks.append(0.0)
        else:
            if "color" in req:
                n_ok = sum(d.color == req["color"] for d in found)
                checks.append(n_ok / count)
                if n_ok < count:
                    correct = matched = False
                    reasons.append(f"expected {req['color']} {cls}>={count}, found {n_ok} {req['color']}")
            if "position" in req:
                rel, target = req["position"]
                tgt = matched_groups[target]
                if not matched or tgt is None:
                    checks.append(0.0)
                    if matched:
                        correct = matched = False
                        reasons.append(f"no target for {cls} to be {rel}")
                else:
                    pairs = [(o, t) for o in found for t in tgt]
                    ok = [rel in relative_position(o.box, t.box, config.position_threshold) for o, t in pairs]
                    checks.append(sum(ok) / len(ok))
                    if not all(ok):
                        correct = matched = False
                        o, t = pairs[ok.index(False)]
                        got = relative_position(o.box, t.box, config.position_threshold)
                        reasons.append(f"expected {cls} {rel} target, found {' and '.join(sorted(got))} target")
        matched_groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        cls, count = req["class"], int(req["count"])
        n = len(objects.get(cls, []))
        checks.append(float(n < count))
        if n >= count:
            correct = False
            reasons.append(f"expected {cls}<{count}, found {n}")
    alignment = float(np.mean(checks)) if checks else 1.0
    return Evaluation(correct, alignment, tuple(reasons))


def metadata_of(caption: str | SceneSpec | Mapping[str, Any]) -> dict[str, Any]:
    """GenEval metadata for a caption string, a ``SceneSpec`` or a metadata dict (passed through)."""
    if isinstance(caption, SceneSpec):
        return caption.geneval_metadata()
    if isinstance(caption, str):
        return parse_caption(caption).geneval_metadata()
    if isinstance(caption, Mapping):
        if "include" not in caption or "tag" not in caption:
            raise ValueError("a metadata dict needs 'tag' and 'include' (GenEval's format)")
        return dict(caption)
    raise TypeError(f"expected a caption, a SceneSpec or a metadata dict, got {type(caption).__name__}")


def _as_list(images: Any) -> list[Any]:
    if isinstance(images, list | tuple):
        return list(images)
    if hasattr(images, "ndim") and images.ndim == 4:
        return [images[i] for i in range(images.shape[0])]
    if hasattr(images, "ndim") and images.ndim == 3 or hasattr(images, "convert"):
        return [images]
    if hasattr(images, "ndim"):
        raise ValueError(f"expected an image (3-d) or a batch (4-d), got {images.ndim} dimensions")
    raise TypeError(f"expected a list of images or a 4-d batch, got {type(images).__name__}")


def score(images: Any, captions: Any, config: ScorerConfig = ScorerConfig()) -> ScoreResult:
    """Score images against captions (strings, ``SceneSpec``s or GenEval metadata dicts), GenEval-style.

    ``per_tag`` holds the accuracy of each tag present; ``overall`` is their mean (GenEval's score).
    """
    imgs = _as_list(images)
    caps = [captions] if isinstance(captions, str | SceneSpec | Mapping) else list(captions)
    if len(imgs) != len(caps):
        raise ValueError(f"{len(imgs)} images but {len(caps)} captions")
    metas = [metadata_of(c) for c in caps]
    evals = [evaluate(detect(im, config), m, config) for im, m in zip(imgs, metas, strict=True)]
    correct = np.asarray([e.correct for e in evals], dtype=bool)
    tags = tuple(m["tag"] for m in metas)
    per_tag = {t: float(correct[[x == t for x in tags]].mean()) for t in TAGS if t in tags}
    per_tag.update({t: float(correct[[x == t for x in tags]].mean()) for t in dict.fromkeys(tags) if t not in per_tag})
    return ScoreResult(
        correct=correct,
        alignment=np.asarray([e.alignment for e in evals], dtype=np.float64),
        tags=tags,
        prompts=tuple(m.get("prompt", "") for m in metas),
        reasons=tuple(e.reasons for e in evals),
        per_tag=per_tag,
        overall=float(np.mean(list(per_tag.values()))) if per_tag else float("nan"),
    )
