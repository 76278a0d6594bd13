"""The model organism's exact GenEval-style scorer as a store metric (``interp score --metrics organism``).

No weights: ``interp.organism.score`` detects the flat-coloured shapes and applies GenEval's rules for
the caption's tag. Outputs per image: ``organism_correct`` (1.0 / 0.0) and ``organism_alignment``
(the scorer's cheap alignment score in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from interp.metrics.base import Metric


class OrganismScorer(Metric):
    name = "organism"
    outputs = {
        "organism_correct": "1 if the image satisfies its caption under GenEval's rules (exact detection), else 0",
        "organism_alignment": "fraction of the caption's requirements the image meets, [0, 1]",
    }
    packages = ("numpy",)

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> dict[str, np.ndarray]:
        from interp.organism import score

        res = score(list(images), list(prompts))
        return {
            "organism_correct": res.correct.astype(np.float64),
            "organism_alignment": np.asarray(res.alignment, dtype=np.float64),
        }
