"""interp: attention statistics and causal edits for text-to-image diffusion models.

The public surface is small: ``tracer.trace`` opens a trace on a diffusers pipeline; inside its
``with`` block, ``record(...)`` (and the edit presets) declare a plan; the pipeline runs when the
block exits. ``interp.pipelines`` builds offline test pipelines and loads real checkpoints;
``interp.store`` opens what traces wrote. See ``docs/`` for the concepts and exact definitions.
"""

__version__ = "0.1.0"

from interp import pipelines, tracer  # noqa: E402
from interp.edits import (  # noqa: E402
    edit,
    mask_bottomk,
    mask_keys,
    mask_random,
    mask_topk,
    noop_edit,
    patch,
    replace_values,
)
from interp.plan import PlanError, record  # noqa: E402
from interp.store.zarr_io import open_store  # noqa: E402

__all__ = ["PlanError", "edit", "mask_bottomk", "mask_keys", "mask_random", "mask_topk", "noop_edit", "open_store",
    "patch",
           "pipelines", "record", "replace_values", "tracer"]
