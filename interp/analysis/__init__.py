"""Analyses of stores: every table and figure of the paper, and the token identity of sinks.

``interp analyze STORE --out DIR [--only NAME ...]`` (or :func:`run_analyses`) reads a store written
by traces or sweeps (and scored by ``interp score``) and writes markdown + CSV tables and PNG figures.
``interp analyze --list`` lists the analyses. One module per result family:

- observation (H1): :mod:`~interp.analysis.h1_dynamics` (Table 1, Figure 2),
  :mod:`~interp.analysis.sink_identity` (token identity of sinks, index-0 overlap);
- causal edits (H2): :mod:`~interp.analysis.interventions` (Tables 2, 5, 6, 12, 13, 15, 16),
  :mod:`~interp.analysis.contrasts` (Tables 3, 7, 19, 20), :mod:`~interp.analysis.verification`
  (Table 4, Figure 5), :mod:`~interp.analysis.dose` (Tables 10, 11, Figure 4),
  :mod:`~interp.analysis.tags` (Table 14), :mod:`~interp.analysis.noop` (Table 17),
  :mod:`~interp.analysis.fid` (Tables 9, 18), :mod:`~interp.analysis.summary` (Table 8, Figure 3),
  :mod:`~interp.analysis.robustness` (Figure 6), :mod:`~interp.analysis.qualitative` (Figures 7, 8);
- shared: :mod:`~interp.analysis.data` (store access), :mod:`~interp.analysis.design` (what each
  condition is), :mod:`~interp.analysis.pairing` (pairing by prompt and seed),
  :mod:`~interp.analysis.effects` (paired effects and the noise floor, with ``interp.stats``),
  :mod:`~interp.analysis.tables`, :mod:`~interp.analysis.style`;

Statistics come from :mod:`interp.stats`; see ``docs/analyses.md`` for every table's definition.

Names are imported on first use (PEP 562): ``interp analyze --help`` loads neither xarray nor
matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "AnalysisConfig": "interp.analysis.config",
    "Context": "interp.analysis.context",
    "Result": "interp.analysis.context",
    "ConditionInfo": "interp.analysis.design",
    "Design": "interp.analysis.design",
    "EditInfo": "interp.analysis.design",
    "StoreLacks": "interp.analysis.errors",
    "IncompleteStore": "interp.analysis.completeness",
    "ANALYSES": "interp.analysis.registry",
    "Analysis": "interp.analysis.registry",
    "Outcome": "interp.analysis.registry",
    "resolve": "interp.analysis.registry",
    "run_analyses": "interp.analysis.registry",
}

__all__ = [
    "ANALYSES",
    "Analysis",
    "AnalysisConfig",
    "ConditionInfo",
    "Context",
    "Design",
    "EditInfo",
    "IncompleteStore",
    "Outcome",
    "Result",
    "StoreLacks",
    "resolve",
    "run_analyses",
]

if TYPE_CHECKING:
    from interp.analysis.completeness import IncompleteStore
    from interp.analysis.config import AnalysisConfig
    from interp.analysis.context import Context, Result
    from interp.analysis.design import ConditionInfo, Design, EditInfo
    from interp.analysis.errors import StoreLacks
    from interp.analysis.registry import ANALYSES, Analysis, Outcome, resolve, run_analyses


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'interp.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # cached: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
