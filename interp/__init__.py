"""interp: attention statistics and causal edits for text-to-image diffusion models.

The public surface is small: ``tracer.trace`` opens a trace on a diffusers pipeline; inside its
``with`` block, ``record(...)`` and the edit presets (``mask_topk``, ...) declare a plan; the
pipeline runs when the block exits. See ``docs/`` for the concepts and exact definitions.
"""

__version__ = "0.1.0"
