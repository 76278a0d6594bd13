"""Resolving a plan's site addresses against one pipeline's sites.

Addresses, all resolved before generation (a bad one raises ``PlanError`` naming what exists):

- ``int``: block index (0-based, as in ``transformer_blocks.N``); addresses the block's *primary*
  attention (SD3.5's ``attn2`` and SDXL's ``attn2`` need their module path).
- ``float`` in [0, 1]: fraction of depth, block ``min(floor(f * n_blocks), n_blocks - 1)``. With this
  rule SD3's layers 6, 12, 18 of 24 are 0.25, 0.5, 0.75, and a recipe written in fractions runs on a
  two-block test model (0.5 -> block 1).
- ``str``: a module path (``transformer_blocks.3.attn``), or a named group of the adapter (``all``;
  ``mid`` etc. where the family defines them).
- a list or tuple of these: their union, in model order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from interp.adapters.base import Adapter, SiteInfo
from interp.plan import PlanError


def resolve_sites(spec: Any, sites: Sequence[SiteInfo], adapter: Adapter) -> list[SiteInfo]:
    """The sites ``spec`` names, in model order, without duplicates."""
    items = list(spec) if isinstance(spec, list | tuple) else [spec]
    if not items:
        raise PlanError("empty site list")
    by_path = {s.path: s for s in sites}
    blocks = sorted({s.block for s in sites})
    primary = {s.block: s for s in sites if s.primary}
    groups = adapter.groups(sites)
    chosen: set[str] = set()
    for item in items:
        chosen.update(_resolve_one(item, by_path, blocks, primary, groups))
    return [s for s in sites if s.path in chosen]


def _resolve_one(
    item: Any,
    by_path: dict[str, SiteInfo],
    blocks: list[int],
    primary: dict[int, SiteInfo],
    groups: dict[str, list[str]],
) -> list[str]:
    n = len(blocks)
    if isinstance(item, bool):
        raise PlanError(f"site address {item!r}: a boolean is not a block index")
    if isinstance(item, int):
        if item not in primary:
            raise PlanError(f"unknown site index {item}: this model has blocks 0..{n - 1}")
        return [primary[item].path]
    if isinstance(item, float):
        if not (0.0 <= item <= 1.0) or math.isnan(item):
            raise PlanError(f"site fraction {item} is outside [0, 1]")
        block = blocks[min(math.floor(item * n), n - 1)]
        return [primary[block].path]
    if isinstance(item, str):
        if item in groups:
            return list(groups[item])
        if item in by_path:
            return [item]
        examples = ", ".join(list(by_path)[:3])
        raise PlanError(
            f"unknown site name {item!r}: use a group ({', '.join(groups)}), a block index, a fraction of "
            f"depth, or a module path such as {examples}"
        )
    raise PlanError(f"site address {item!r} of type {type(item).__name__} is not an int, float, str or list")
