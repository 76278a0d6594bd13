"""Causal edits as plan items: selector (which keys) + operation (what happens) + scope (where, when).

``spec`` holds the dataclasses, ``presets`` the one-line functions used inside ``tracer.trace``,
``select`` the key selection, ``runtime`` their application at a site call (through the narrow
``context.SiteContext`` the engine builds per call), ``replay`` and ``validate`` the checks made
before generation.
"""

from interp.edits.presets import (
    edit,
    mask_bottomk,
    mask_keys,
    mask_random,
    mask_topk,
    noop_edit,
    patch,
    replace_values,
)
from interp.edits.spec import Edit, Operation, Scope, Selector

__all__ = [
    "Edit",
    "Operation",
    "Scope",
    "Selector",
    "edit",
    "mask_bottomk",
    "mask_keys",
    "mask_random",
    "mask_topk",
    "noop_edit",
    "patch",
    "replace_values",
]
