"""The step clock: which denoising step, which call within it, and which CFG branch each row is.

Design
------
A step's label comes from the order of the denoising loop itself, never from looking a (rounded)
timestep up in a table. Two small, trace-scoped attachments drive it (``StepClock.install``; both
are removed by the trace's ``Installation`` in a ``finally`` block):

- a wrapper of ``step`` on the *instance* ``pipe.scheduler`` (the class and other schedulers are
  untouched) that counts the scheduler steps completed during this generation, and
- a forward pre-hook on the denoiser that labels each denoiser call.

Every diffusers pipeline runs ``for t in timesteps: <denoiser call(s)>; scheduler.step(...)``, so the
step of a denoiser call is ``start + completed``: ``start`` is where the loop begins in
``scheduler.timesteps`` (the scheduler's own ``step_index`` or ``begin_index`` at the first call,
0 when it has neither: a text-to-image run starts at the beginning; img2img-style runs with
``strength`` set the begin index), ``completed`` the number of ``scheduler.step`` calls since. Denoiser
calls between two ``scheduler.step`` calls are calls 0, 1, ... of one step (skip-layer guidance,
Flux true CFG); the adapter maps the batch rows of each call to CFG branches.

Definitions. A **step** is one iteration of the pipeline's denoising loop: one entry of
``scheduler.timesteps`` and one ``scheduler.step`` call; ``n_steps = len(scheduler.timesteps)``.
A **call** is one denoiser invocation within a step. For second-order schedulers (Heun:
``FlowMatchHeunDiscreteScheduler``, ``HeunDiscreteScheduler``) the scheduler's table repeats the inner
timesteps and the loop runs ``2N - 1`` iterations for ``N`` inference steps: each solver stage is
its own step (step 0 is the first Euler stage, steps 1, 2 the corrector and predictor of the next
timestep, ...), and its ``timestep`` coordinate shows the repetition; calls keep their meaning
(CFG batch, skip-layer extra calls).

Consistency checks, where they are meaningful:

- after each ``scheduler.step``, a scheduler that keeps a ``step_index`` must agree with the count
  (a loop that skips or repeats ``scheduler.step`` raises ``ClockError`` at once);
- the timestep the denoiser received (recorded per (step, call) in ``received``, at the precision
  it was used, e.g. bf16 and divided by 1000 for Flux; a trace's dataset and store hold it as
  ``timestep_received``) must equal ``scheduler.timesteps[step]`` up to
  the rounding of its dtype (a few units in the last place); a call outside the schedule raises.

The check reads one scalar per denoiser call (not per site), the only host sync the tracer adds per
step; the scheduler's timesteps and sigmas are copied to the host once, and again only if the
scheduler replaces or rewrites them (``set_timesteps`` on a swapped scheduler).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from interp.adapters.base import Adapter, DenoiserCall


class ClockError(RuntimeError):
    """A denoiser call or scheduler step that does not follow the scheduler's own progress."""


ULPS = 4
"""Tolerance of the timestep check in units of the received dtype's precision: a value rounded to the
denoiser's dtype, rescaled in that dtype (Flux: two roundings) and scaled back stays within 2 eps."""


class _SchedulerStepWrapper:
    """Counts ``scheduler.step`` calls on one scheduler instance; ``remove`` restores it exactly."""

    def __init__(self, scheduler: Any, on_step: Any) -> None:
        self.scheduler = scheduler
        self._had_own = "step" in vars(scheduler)
        self._previous = vars(scheduler).get("step")
        original = scheduler.step

        # wraps: pipelines read the step's signature (``prepare_extra_step_kwargs`` passes ``eta`` and
        # ``generator`` only where ``step`` takes them); a bare (*args, **kwargs) would drop the generator
        # and change what a stochastic scheduler draws (CogVideoX 1.5's DPM scheduler).
        @functools.wraps(original)
        def step(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            on_step()
            return out

        scheduler.step = step

    def remove(self) -> None:
        if self.scheduler is None:
            return
        if self._had_own:
            self.scheduler.step = self._previous
        else:
            vars(self.scheduler).pop("step", None)
        self.scheduler = None


@dataclass
class StepClock:
    adapter: Adapter
    pipe: Any
    step: int = -1
    call: int = -1
    current: DenoiserCall | None = None
    branches: list[str] = field(default_factory=list)
    seen_branches: set[str] = field(default_factory=set)
    timesteps: dict[int, float] = field(default_factory=dict)
    sigmas: dict[int, float] = field(default_factory=dict)
    received: dict[tuple[int, int], float] = field(default_factory=dict)
    received_dtype: str = ""
    n_steps: int = 0
    n_calls: int = 0
    _scheduler: Any = None
    _start: int | None = None
    _completed: int = 0
    _host_tables: dict[str, tuple[tuple, np.ndarray]] = field(default_factory=dict, repr=False)

    # --- installation ----------------------------------------------------------------------------
    def install(self, inst: Any, denoiser: Any, *, pre_hook: bool = True) -> None:
        """Attach the scheduler-step counter and the denoiser pre-hook to ``inst`` (an
        ``Installation``), which removes both. ``pre_hook=False``: the caller calls ``pre_hook`` itself
        (a compiled denoiser's route, ``interp.sites.routed``)."""
        self._scheduler = self.pipe.scheduler
        inst.add_handle(_SchedulerStepWrapper(self._scheduler, self._on_scheduler_step))
        if pre_hook:
            inst.add_handle(denoiser.register_forward_pre_hook(self.pre_hook, with_kwargs=True))

    # --- events ----------------------------------------------------------------------------------
    def _on_scheduler_step(self) -> None:
        if self._start is None:  # the scheduler stepped before any denoiser call: not our loop's order
            raise ClockError("scheduler.step ran before the denoiser: interp cannot tell which step is which")
        self._completed += 1
        own = getattr(self._scheduler, "step_index", None)
        expected = self._start + self._completed
        if isinstance(own, int) and own != expected:
            raise ClockError(
                f"the scheduler's step_index is {own} after {self._completed} scheduler.step calls from step "
                f"{self._start} (expected {expected}): the denoising loop does not follow the scheduler's order"
            )

    def pre_hook(self, module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        scheduler = self.pipe.scheduler
        if self._scheduler is not None and scheduler is not self._scheduler:
            raise ClockError("pipe.scheduler was replaced during the trace: swap schedulers between traces")
        call = self.adapter.read_call(args, kwargs)
        table = self._host(scheduler.timesteps, "timesteps")
        self.n_steps = len(table)
        if self._start is not None and self._completed > 0 and self._restarted(scheduler):
            # a new generation on the same installation (the nnsight interop keeps its sites across
            # generations): diffusers' set_timesteps resets the scheduler's step index
            self._start, self._completed, self.step, self.call = None, 0, -1, -1
        if self._start is None:
            self._start = self._initial_position(scheduler)
        step = self._start + self._completed
        if not 0 <= step < len(table):
            raise ClockError(
                f"denoiser call at loop position {step}, but scheduler.timesteps has {len(table)} entries; "
                "interp cannot label this call with a denoising step"
            )
        t = call.timestep * self.adapter.timestep_scale
        self._check_timestep(step, t, float(table[step]), call.timestep_dtype)
        self.call = self.call + 1 if step == self.step else 0
        self.step = step
        self.n_calls = max(self.n_calls, self.call + 1)
        self.current = call
        self.branches = self.adapter.branches(call.batch, self.call, self.adapter.uses_cfg(self.pipe))
        self.seen_branches.update(self.branches)
        self.timesteps[step] = float(table[step])
        self.received[(step, self.call)] = t
        self.received_dtype = str(call.timestep_dtype or "")
        sigmas = self._host(getattr(scheduler, "sigmas", None), "sigmas")
        self.sigmas[step] = float(sigmas[step]) if sigmas is not None and len(sigmas) > step else float("nan")

    @staticmethod
    def _restarted(scheduler: Any) -> bool:
        """Whether the scheduler was reset for a new generation after steps of this one had run: a
        scheduler that keeps a step index sets it back to ``None`` in ``set_timesteps``."""
        return hasattr(scheduler, "step_index") and getattr(scheduler, "step_index", 0) is None

    @staticmethod
    def _initial_position(scheduler: Any) -> int:
        """Where this generation's loop starts in ``scheduler.timesteps``: the scheduler's own step
        index if it set one before the first denoiser call (e.g. Euler's ``scale_model_input``), else
        its begin index (img2img with ``strength``), else the beginning."""
        for name in ("step_index", "begin_index"):
            value = getattr(scheduler, name, None)
            if isinstance(value, int | np.integer) or (torch.is_tensor(value) and value.numel() == 1):
                return int(value)
        return 0

    def _check_timestep(self, step: int, received: float, expected: float, dtype: torch.dtype | None) -> None:
        eps = torch.finfo(dtype).eps if dtype is not None and dtype.is_floating_point else 0.0
        # rounded to the denoiser's dtype and rescaled there: relative error, plus the absolute error of
        # the rescaled value near 0 (Flux: t / 1000 in bf16)
        tol = ULPS * eps * (abs(expected) + self.adapter.timestep_scale * eps) + 1e-9 * max(1.0, abs(expected))
        if dtype is None or not dtype.is_floating_point:
            tol = max(tol, 1e-6 * max(1.0, abs(expected)))
        if abs(received - expected) > tol:
            raise ClockError(
                f"step {step}: the denoiser was called with timestep {received:g}, but scheduler.timesteps[{step}] "
                f"is {expected:g} (more than the rounding of {dtype}); the pipeline's loop does not follow the "
                "scheduler's timesteps, so interp cannot label this call with a denoising step"
            )

    def _host(self, values: Any, name: str) -> np.ndarray | None:
        """A scheduler table on the host, copied again only when the scheduler's tensor changed (another
        object, or written in place): schedulers keep timesteps and sigmas on the device, and reading
        one element of a device tensor per call would synchronise with the device each time."""
        if values is None:
            return None
        key = (id(values), getattr(values, "_version", 0), tuple(getattr(values, "shape", (len(values),))))
        cached = self._host_tables.get(name)
        if cached is None or cached[0] != key:
            data = values.detach().double().cpu() if hasattr(values, "detach") else values
            cached = (key, np.asarray(data).astype(np.float64))
            self._host_tables[name] = cached
        return cached[1]

    def t_over_T(self, step: int) -> float:
        """Phase t/T = step / (T - 1): 0 at the noisiest step, 0 when T = 1."""
        return step / (self.n_steps - 1) if self.n_steps > 1 else 0.0
