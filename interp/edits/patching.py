"""Activation patching sources: traces that captured a site's values and output in memory.

A trace whose plan has ``record("capture", layers=...)`` keeps, per (site, step, call), the site's
value tensor and attention output (before the output projection) together with the CFG branch of each
batch row, in ``Trace.captured`` (memory only: nothing is stored). ``patch(source=t, ...)`` in another
trace refers to it by an id; the registry below resolves the id (weakly: a patch needs its source
alive). The two traces are matched by site, step, call and branch.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

from interp.plan import PlanError

_SOURCES: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_IDS = itertools.count()


def register(trace: Any) -> str:
    key = f"trace:{next(_IDS)}"
    _SOURCES[key] = trace
    return key


def lookup(key: str) -> Any:
    trace = _SOURCES.get(key)
    if trace is None:
        raise PlanError(f"patch source {key} is gone: keep the source Trace object alive while patching from it")
    if trace.output is None:
        raise PlanError("the patch source trace has not run yet")
    return trace


def check_source(key: str, sites: list[str]) -> None:
    """Before generation: the source ran, and captured every site the patch needs."""
    trace = lookup(key)
    have = {path for path, _, _ in trace.captured}
    missing = [s for s in sites if s not in have]
    if missing:
        raise PlanError(f"patch source did not capture {missing}: trace it with record('capture', layers=...)")
