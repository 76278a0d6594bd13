"""The model organism: a small SD3-architecture diffusion transformer trained on GenEval-style scenes.

It draws flat-coloured shapes on a 32x32 grey canvas from captions phrased as GenEval phrases its
prompts, runs in about a second per image on one CPU thread, and its images are scored exactly (no
learned detector). Modules, one job each:

- ``grammar``: the caption language (``SceneSpec``, ``parse_caption``, GenEval metadata);
- ``render``: shape rasterising, scene drawing, GenEval's relative-position rule;
- ``dataset``: scene sampling, the held-out split, seeded training batches, evaluation prompts;
- ``scorer``: exact detection + GenEval's rules (``score(images, captions)``);
- ``text``, ``model``: tokenizer, T5 encoder, transformer and scheduler from ``OrganismConfig``;
- ``pipeline``: ``OrganismPipeline`` (StableDiffusion3Pipeline's calling convention);
- ``train``, ``evaluate``, ``export``: training in resumable chunks, evaluation, shipping/loading.

Heavy modules (torch, diffusers) load on first use, so dataset workers import only numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interp.organism.export import load_organism as load_organism
    from interp.organism.pipeline import OrganismPipeline as OrganismPipeline
    from interp.organism.scorer import score as score

_LAZY = {
    "load_organism": "interp.organism.export",
    "OrganismPipeline": "interp.organism.pipeline",
    "score": "interp.organism.scorer",
    "ScoreResult": "interp.organism.scorer",
    "SceneSpec": "interp.organism.grammar",
    "parse_caption": "interp.organism.grammar",
    "eval_specs": "interp.organism.dataset",
    "eval_prompts": "interp.organism.dataset",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'interp.organism' has no attribute {name!r}")
