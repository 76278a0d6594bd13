"""The contract every metric adapter follows, and the small helpers they share.

A metric is loaded once (``interp.metrics.load_metric(name, settings)``) and then called on batches:

- ``score(images, prompts) -> dict[str, np.ndarray]``: one value per image for each named output
  (per-image metrics: CLIP-T, HPS, ImageReward; Inception features are a 2-D array, one row per image);
- ``score_pairs(images_a, images_b) -> dict[str, np.ndarray]``: one value per pair (LPIPS);
- ``version_info() -> dict``: what a store records next to the scores (metric name, output labels,
  package versions, the settings that change the numbers, the weight files read).

Adapters hold a model in eval mode on ``settings.resolved_device()`` and run it under
``torch.inference_mode()`` in batches of ``settings.batch_size``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from interp.metrics.settings import MetricSettings


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of the named distributions (``"missing"`` when absent)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def import_clean(name: str):
    """Import a module, undoing any change it makes to ``os.environ`` at import time (open_clip sets
    TOKENIZERS_PARALLELISM, for one): this library leaves the process environment as it found it."""
    before = dict(os.environ)
    try:
        return importlib.import_module(name)
    finally:
        if dict(os.environ) != before:
            os.environ.clear()
            os.environ.update(before)


def batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def check_images(images: Sequence[Image.Image], what: str = "images") -> list[Image.Image]:
    images = list(images)
    for i, im in enumerate(images):
        if not isinstance(im, Image.Image):
            raise TypeError(f"{what}[{i}] is {type(im).__name__}, expected a PIL.Image.Image")
    return images


def check_prompts(prompts: Sequence[str], n: int) -> list[str]:
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, one per image, not a single string")
    prompts = list(prompts)
    if len(prompts) != n:
        raise ValueError(f"got {n} images but {len(prompts)} prompts; give one prompt per image")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"prompts[{i}] is {type(p).__name__}, expected str")
    return prompts


class Metric:
    """Base class of the adapters (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    #: "image_text": score(images, prompts), one value per image; "pair": score_pairs(a, b), one value
    #: per pair; "features": score(images) returns one feature row per image (FID/KID from them).
    kind: ClassVar[str] = "image_text"
    #: output key -> one-line description (what the number is, its range and convention).
    outputs: ClassVar[dict[str, str]] = {}
    #: distributions whose versions change the numbers.
    packages: ClassVar[tuple[str, ...]] = ("torch",)
    #: settings fields that change the numbers.
    setting_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: MetricSettings) -> None:
        self.settings = settings
        self.device = settings.resolved_device()
        self.weight_files: dict[str, dict[str, Any]] = {}

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"metric {self.name!r} has no per-image score")

    def score_pairs(self, images_a: Sequence[Image.Image], images_b: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"metric {self.name!r} has no pairwise score")

    def version_info(self) -> dict[str, Any]:
        return {
            "metric": self.name,
            "kind": self.kind,
            "outputs": dict(self.outputs),
            "packages": package_versions(*self.packages),
            "settings": self.settings.as_record(self.setting_keys),
            "weights": dict(self.weight_files),
        }
