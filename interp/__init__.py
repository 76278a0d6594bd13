"""interp: attention statistics and causal edits for text-to-image diffusion models.

The public surface is small: ``tracer.trace`` opens a trace on a diffusers pipeline; inside its
``with`` block, ``record(...)`` (and the edit presets) declare a plan; the pipeline runs when the
block exits. ``interp.pipelines`` builds offline test pipelines and loads real checkpoints;
``interp.store`` opens what traces wrote. See ``docs/`` for the concepts and exact definitions.

The names below are imported on first use (module ``__getattr__``, PEP 562): ``import interp`` and
``interp --help`` stay fast because torch, diffusers and xarray load only when something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY: dict[str, tuple[str, str | None]] = {
    # public name: (module, attribute; None for the module itself)
    "pipelines": ("interp.pipelines", None),
    "tracer": ("interp.tracer", None),
    "edit": ("interp.edits", "edit"),
    "mask_bottomk": ("interp.edits", "mask_bottomk"),
    "mask_keys": ("interp.edits", "mask_keys"),
    "mask_random": ("interp.edits", "mask_random"),
    "mask_topk": ("interp.edits", "mask_topk"),
    "noop_edit": ("interp.edits", "noop_edit"),
    "patch": ("interp.edits", "patch"),
    "replace_values": ("interp.edits", "replace_values"),
    "PlanError": ("interp.plan", "PlanError"),
    "record": ("interp.plan", "record"),
    "open_store": ("interp.store.zarr_io", "open_store"),
}

__all__ = [
    "PlanError",
    "edit",
    "mask_bottomk",
    "mask_keys",
    "mask_random",
    "mask_topk",
    "noop_edit",
    "open_store",
    "patch",
    "pipelines",
    "record",
    "replace_values",
    "tracer",
]

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from interp import pipelines, tracer
    from interp.edits import (
        edit,
        mask_bottomk,
        mask_keys,
        mask_random,
        mask_topk,
        noop_edit,
        patch,
        replace_values,
    )
    from interp.plan import PlanError, record
    from interp.store.zarr_io import open_store


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'interp' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # cached: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
