"""What an edit sees of one site call: a narrow, read-only context the engine builds per call.

Design
------
Edits run inside the engine's SDPA handler but do not know the engine: ``apply_edits``
(``interp.edits.runtime``) receives a :class:`SiteContext` that names the site, where the clock stands
(step, call, the CFG branch of each batch row), the trace's seed and kernel choice, each edit's replay
or patch source, and three lookups the observer answers from its per-trace caches (token layouts,
query rows of a query set, candidate keys of a selector). It returns what it did (the output, the bias
in force, and per edit the keys and their measured effect: ``EditResult``); the observer stores that.
So the dependency runs one way, engine -> edits, and the observer's internals stay its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from interp.adapters.base import SiteInfo, TokenLayout
from interp.kernels.cache import KernelCache

LayoutLookup = Callable[[str, str, int], TokenLayout]
"""(layout name, branch, number of keys) -> the token layout, checked against the keys the site sees."""
RowsLookup = Callable[[str, int, torch.device], Tensor]
"""(query set, number of query rows, device) -> the rows of that query set at this site."""
CandidatesLookup = Callable[[str, list[str], str | None, torch.device], Tensor]
"""(layout name, branches, modality, device) -> (B, Nk) bool keys a selector may choose."""


@dataclass(frozen=True)
class SiteContext:
    """One site call, as the edits active at it see it."""

    site: SiteInfo
    site_index: int  # the site's position among the trace's sites (seeds the random selectors)
    step: int
    call: int
    branches: tuple[str, ...]  # the CFG branch of each batch row
    seed: int
    kernel: str
    sources: Mapping[int, Any]  # per edit index: its replay source or patch source trace
    kernel_cache: KernelCache | None
    layout: LayoutLookup
    query_rows: RowsLookup
    candidates: CandidatesLookup
