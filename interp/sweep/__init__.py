"""Sweeps: prompts x seeds x conditions, paired seeds, one resumable store, several ranks.

``interp.sweep.run(config)`` (or ``interp sweep CONFIG``) reads a versioned TOML config
(``interp.sweep.config``), validates it completely before generating, and fills one Zarr store through
disjoint region writes (``interp.sweep.store``) from a background writer (``interp.sweep.writer``),
resuming where a killed run stopped and splitting prompts across the ranks of ``torchrun`` or
``accelerate launch`` (``interp.sweep.distributed``). See ``docs/sweeps.md``.

Names are imported on first use (PEP 562): ``interp sweep --help`` and a config check do not load
torch or diffusers through this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "ConfigError": "interp.sweep.config",
    "SweepConfig": "interp.sweep.config",
    "load_config": "interp.sweep.config",
    "parse_config": "interp.sweep.config",
    "PLAN_FUNCTIONS": "interp.sweep.plan_functions",
    "register": "interp.sweep.plan_functions",
    "Prompt": "interp.sweep.prompts",
    "balanced_subset": "interp.sweep.prompts",
    "from_jsonl": "interp.sweep.prompts",
    "from_text": "interp.sweep.prompts",
    "geneval": "interp.sweep.prompts",
    "SweepError": "interp.sweep.runner",
    "SweepResult": "interp.sweep.runner",
    "run": "interp.sweep.runner",
}

__all__ = [
    "PLAN_FUNCTIONS",
    "ConfigError",
    "Prompt",
    "SweepConfig",
    "SweepError",
    "SweepResult",
    "balanced_subset",
    "from_jsonl",
    "from_text",
    "geneval",
    "load_config",
    "parse_config",
    "register",
    "run",
]

if TYPE_CHECKING:
    from interp.sweep.config import ConfigError, SweepConfig, load_config, parse_config
    from interp.sweep.plan_functions import PLAN_FUNCTIONS, register
    from interp.sweep.prompts import Prompt, balanced_subset, from_jsonl, from_text, geneval
    from interp.sweep.runner import SweepError, SweepResult, run


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'interp.sweep' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # cached: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
