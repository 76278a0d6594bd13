"""The plan's vocabulary: the names that plans and edits share (site specs, query sets, map keys,
views, norm sites and orders, and :class:`PlanError`).

Design
------
``interp.plan`` builds edits (``interp.edits.spec``) and edits check their arguments against these
names; keeping the vocabulary in a module of its own lets both depend on it without depending on each
other. ``interp.plan`` re-exports every name, so ``from interp.plan import PlanError`` keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

SiteSpec = int | float | str | Sequence[int | float | str]
"""How a plan names sites: block index, fraction of depth, module path, group name, or a list."""

QuerySet = Literal["used", "all", "image", "text"]
"""Query rows a statistic averages over (``docs/definitions.md``, Query sets)."""
MapKeys = Literal["all", "image", "text"]
"""Key columns of a ``maps`` record, besides a list of key indices."""
View = Literal["after", "before", "both"]
"""At an edited call: the attention after the edits, before them, or both."""
NormSite = Literal["pre_out", "post_out"]
NormOrd = Literal["2", "inf"]

MAP_KEY_SETS: tuple[str, ...] = get_args(MapKeys)
QUERY_SETS: tuple[str, ...] = get_args(QuerySet)
NORM_SITES: tuple[str, ...] = get_args(NormSite)
NORM_ORDS: tuple[str, ...] = get_args(NormOrd)


class PlanError(ValueError):
    """A plan that cannot run: raised before any generation starts."""
