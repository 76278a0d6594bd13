"""Image metrics of the paper (CLIP-T, HPS-v2, ImageReward, LPIPS, FID_shift / KID), store-independent.

Each metric is a small adapter over a maintained package, loaded from local weight files only (see
``docs/metrics.md`` for which file goes where); nothing is downloaded and no environment variable is
changed. Importing this package is cheap: the adapters (and open_clip, lpips, torchmetrics) are
imported by ``load_metric``.

    from interp.metrics import MetricSettings, load_metric
    settings = MetricSettings()                       # weights_dir from $INTERP_WEIGHTS_DIR
    clip = load_metric("clip_t", settings)
    clip.score(images, prompts)                       # {"clip_t": ..., "clipscore": ..., "clip_t_x100": ...}
    lp = load_metric("lpips", settings)
    lp.score_pairs(baseline_images, edited_images)    # {"lpips": ...}
    inc = load_metric("inception", settings)
    feats = inc.features(images)                      # (N, 2048) float32, to store per image
    fid_from_features(feats_a, feats_b); kid_from_features(feats_a, feats_b)
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from interp.metrics.settings import MetricSettings
from interp.metrics.weights import CorruptWeightsError, MissingWeightsError

if TYPE_CHECKING:
    from interp.metrics.base import Metric

# name -> (module, class)
METRICS: dict[str, tuple[str, str]] = {
    "clip_t": ("interp.metrics.clip_t", "CLIPT"),
    "hps": ("interp.metrics.hps", "HPS"),
    "image_reward": ("interp.metrics.image_reward", "ImageReward"),
    "lpips": ("interp.metrics.lpips_metric", "LPIPS"),
    "inception": ("interp.metrics.fid", "InceptionFeatures"),
    "blip2_vqa": ("interp.metrics.vqa", "BLIP2VQA"),
    "organism": ("interp.metrics.organism_scorer", "OrganismScorer"),
}


def list_metrics() -> list[str]:
    return list(METRICS)


def load_metric(name: str, settings: MetricSettings | None = None) -> Metric:
    """Load one metric (weights from local files only). ``settings`` defaults to ``MetricSettings()``."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    module_name, class_name = METRICS[name]
    before = dict(os.environ)
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        return cls(settings if settings is not None else MetricSettings())
    finally:
        # Some packages set variables at import (open_clip: TOKENIZERS_PARALLELISM); undo that.
        if dict(os.environ) != before:
            os.environ.clear()
            os.environ.update(before)


def fid_from_features(features_a, features_b, method: str = "torchmetrics") -> float:
    """FID between two sets of per-image Inception features (torchmetrics' formula; ``method="lowrank"``:
    the same number from an SVD of an n_a x n_b matrix, fast enough for bootstrap resamples)."""
    from interp.metrics.fid import fid_from_features as _fid

    return _fid(features_a, features_b, method=method)


def kid_from_features(
    features_a, features_b, subsets: int = 100, subset_size: int | None = None, seed: int = 0
) -> dict[str, float]:
    """KID (mean, std over subsets) between two sets of per-image Inception features."""
    from interp.metrics.fid import kid_from_features as _kid

    return _kid(features_a, features_b, subsets=subsets, subset_size=subset_size, seed=seed)


__all__ = [
    "METRICS",
    "CorruptWeightsError",
    "MetricSettings",
    "MissingWeightsError",
    "fid_from_features",
    "kid_from_features",
    "list_metrics",
    "load_metric",
]
