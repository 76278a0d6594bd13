"""Sweeps: prompts x seeds x conditions, paired seeds, one resumable store, several ranks.

``interp.sweep.run(config)`` (or ``interp sweep CONFIG``) reads a versioned TOML config
(``interp.sweep.config``), validates it completely before generating, and fills one Zarr store through
disjoint region writes (``interp.sweep.store``) from a background writer (``interp.sweep.writer``),
resuming where a killed run stopped and splitting prompts across the ranks of ``torchrun`` or
``accelerate launch`` (``interp.sweep.distributed``). See ``docs/sweeps.md``.
"""

from interp.sweep.config import ConfigError, SweepConfig, load_config, parse_config
from interp.sweep.plan_functions import PLAN_FUNCTIONS, register
from interp.sweep.prompts import Prompt, balanced_subset, from_jsonl, from_text, geneval
from interp.sweep.runner import SweepError, SweepResult, run

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
