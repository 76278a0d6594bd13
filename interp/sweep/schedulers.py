"""Scheduler overrides of a sweep: building them from the model's own config, refusing misfits.

Design
------
A condition may run another scheduler (the paper's sampling-sensitivity tables). It is built with
``cls.from_config(model_scheduler.config, **overrides)`` so everything the model's scheduler was
configured with (shift, training timesteps, prediction type) carries over. A scheduler that does not
fit the model is refused before generation: a flow-matching model (its scheduler is a ``FlowMatch*``
class, or predicts ``flow_prediction``) needs a flow-matching scheduler, and an epsilon- or
v-prediction model a scheduler of that kind (DDIM on SD3 is refused, FlowMatchEuler on SDXL too).
Multistep solvers that support flow sigmas (``UniPCMultistepScheduler`` with
``use_flow_sigmas = true, prediction_type = "flow_prediction"``) count as flow-matching.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import diffusers

FLOW_PREFIXES = ("FlowMatch", "FlowMap")


def is_flow_matching(cls_name: str, config: Mapping[str, Any]) -> bool:
    if cls_name.startswith(FLOW_PREFIXES):
        return True
    return config.get("prediction_type") == "flow_prediction" or bool(config.get("use_flow_sigmas", False))


class SchedulerMismatch(ValueError):
    """A scheduler that does not fit the model's kind of prediction."""


def build_scheduler(base: Any, name: str, overrides: Mapping[str, Any]) -> Any:
    """Scheduler ``name`` configured from the model's scheduler ``base`` and ``overrides``."""
    cls = getattr(diffusers, name, None)
    if not isinstance(cls, type) or not issubclass(cls, diffusers.SchedulerMixin):
        raise SchedulerMismatch(f"{name!r} is not a diffusers scheduler class")
    base_flow = is_flow_matching(type(base).__name__, base.config)
    try:
        sched = cls.from_config(base.config, **dict(overrides))
    except (TypeError, ValueError) as exc:
        raise SchedulerMismatch(f"{name} cannot be configured from the model's scheduler: {exc}") from None
    unknown = sorted(set(overrides) - set(sched.config))
    if unknown:
        raise SchedulerMismatch(f"{name} has no config field(s) {unknown}")
    new_flow = is_flow_matching(name, sched.config)
    if base_flow != new_flow:
        raise SchedulerMismatch(
            f"{name} ({_kind(new_flow, sched.config)}) does not fit this model, whose scheduler "
            f"{type(base).__name__} is {_kind(base_flow, base.config)}"
        )
    return sched


def _kind(flow: bool, config: Mapping[str, Any]) -> str:
    return "flow-matching" if flow else f"{config.get('prediction_type', 'epsilon')}-prediction"
