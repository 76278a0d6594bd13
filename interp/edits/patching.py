"""Activation patching sources: traces that captured a site's values and output in memory.

A trace whose plan has ``record("capture", layers=...)`` keeps, per (site, step, call), the site's
value tensor and attention output (before the output projection) together with the CFG branch of each
batch row, in ``Trace.captured`` (memory only: nothing is stored). ``patch(source=t, ...)`` in another
trace refers to it by an id; the registry below resolves the id (weakly: a patch needs its source
alive). The two traces are matched by site, step, call and branch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from interp.plan import PlanError


def source_id(trace: Any) -> str:
    """The id a plan item uses for a source trace (unique among live objects; the plan that names it
    holds the trace in ``Plan.sources``, so the id cannot be reused while the plan exists)."""
    return f"trace:{id(trace)}"


def lookup(sources: Mapping[str, Any], key: str) -> Any:
    trace = sources.get(key)
    if trace is None:
        raise PlanError(f"patch source {key} is not held by this plan: declare patch(source=trace) in it")
    if trace.output is None:
        raise PlanError("the patch source trace has not run yet")
    return trace


def check_source(sources: Mapping[str, Any], key: str, sites: list[str]) -> None:
    """Before generation: the source ran, and captured every site the patch needs."""
    trace = lookup(sources, key)
    have = {path for path, _, _ in trace.captured}
    missing = [s for s in sites if s not in have]
    if missing:
        raise PlanError(f"patch source did not capture {missing}: trace it with record('capture', layers=...)")
