"""Distances of each edited image to its unit's baseline for the findings page: pixel, latent, LPIPS.

Design
------
Three distances per (condition, unit), each one value per image pair so that the page's method
(prompt-clustered means and ratios, :class:`~interp.analysis.study_effects.Method`) applies unchanged:

* pixel: mean absolute difference of the stored 8-bit images, in [0, 1]
  (:func:`~interp.analysis.study_effects.pixel_shift`);
* latent: root-mean-square difference of the final latents, in latent units. The organism has no VAE
  (its latents are the pixels in [-1, 1], ``interp.organism.pipeline``), so its final latents are its
  images before 8-bit quantization and the tables already hold them (quantization error <= 1/255 of
  the [-1, 1] range per element); :func:`final_latents` returns them as ``image / 127.5 - 1``. For a
  model with a VAE the tables would need the latents themselves: :func:`final_latents` then returns
  None with the reason, and the page states it;
* LPIPS (``interp.metrics``, AlexNet v0.1, local weights only): computed when the weights resolve,
  otherwise skipped with the reason (the missing file and where it was looked for) stated on the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from interp.analysis.study_effects import Study, Units

if TYPE_CHECKING:
    from interp.metrics import MetricSettings

LATENTS_ARE_PIXELS = ("interp:organism",)
"""Model ids whose pipelines have no VAE: the final latents are the images (scaled to [-1, 1])."""


def final_latents(study: Study) -> tuple[np.ndarray | None, str]:
    """(sample, ...) final latents of every row and how they were obtained; (None, reason) if unavailable."""
    model = study.meta.get("sweep_config", {}).get("model", {}).get("id")
    if model in LATENTS_ARE_PIXELS:
        return (
            study.image.astype(np.float64) / 127.5 - 1.0,
            f"`{model}` has no VAE: its final latents are its images in [-1, 1] (read from the stored 8-bit "
            "images, so exact to 1/127.5 per element)",
        )
    return None, f"the study tables hold no final latents of `{model}` (a model with a VAE)"


def latent_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root-mean-square difference per pair of latents (first axis: pairs)."""
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)).reshape(len(a), -1)
    return np.sqrt(np.mean(d * d, axis=1))


def lpips_distances(
    study: Study, units: Units, conditions: Sequence[str], baseline: str, settings: MetricSettings | None = None
) -> tuple[dict[str, np.ndarray] | None, str]:
    """LPIPS of each condition's image vs the baseline's, per unit; (None, reason) without weights.

    ``settings``: where the weights are and LPIPS's input size (default ``MetricSettings()``:
    ``$INTERP_WEIGHTS_DIR``, 512 px)."""
    from PIL import Image

    from interp.metrics import MetricSettings, load_metric
    from interp.metrics.weights import ALEXNET, CorruptWeightsError, MissingWeightsError

    settings = settings if settings is not None else MetricSettings()
    try:
        metric = load_metric("lpips", settings)
    except MissingWeightsError:
        return None, (
            f"LPIPS skipped: its AlexNet weights ({ALEXNET.filename}) were not found on the machine that generated "
            "this page (give them with --weights-dir or $INTERP_WEIGHTS_DIR; nothing is downloaded; see Metrics)"
        )
    except (CorruptWeightsError, ImportError) as exc:
        first = " ".join(str(exc).split("\n")[0].split())
        return None, f"LPIPS skipped: {first}"
    base = [Image.fromarray(x) for x in study.image[units.rows[baseline]]]
    out = {}
    for c in conditions:
        edited = [Image.fromarray(x) for x in study.image[units.rows[c]]]
        out[c] = np.asarray(metric.score_pairs(edited, base)["lpips"], np.float64)
    size = settings.lpips_size
    return out, f"LPIPS v0.1 (AlexNet), images resized to {size} x {size} px" if size else "LPIPS v0.1 (AlexNet)"
