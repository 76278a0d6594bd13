"""The step clock: which denoising step, which call within it, and which CFG branch each row is.

Design
------
The step label of everything a site sees is the index of the step the denoiser is *about to run*:
a forward pre-hook on the denoiser reads the ``timestep`` argument of that call and finds it in
``scheduler.timesteps`` (the denoiser may receive it rescaled, e.g. Flux divides by 1000; the adapter
says so). Labels never come from ``callback_on_step_end``, which runs after the step. Consecutive
denoiser calls at the same step (skip-layer guidance, true CFG) get call indices 0, 1, ...; the
adapter maps the batch rows of each call to CFG branches. The lookup reads one scalar per denoiser
call (not per site), the only host sync the tracer adds per step; the scheduler's timesteps and sigmas
are copied to the host once, and again only if the scheduler replaces or rewrites them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interp.adapters.base import Adapter, DenoiserCall


class ClockError(RuntimeError):
    """A denoiser call whose timestep is not one of the scheduler's."""


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
    n_steps: int = 0
    n_calls: int = 0
    _host_tables: dict[str, tuple[tuple, np.ndarray]] = field(default_factory=dict, repr=False)

    def pre_hook(self, module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        call = self.adapter.read_call(args, kwargs)
        table = self._host(self.pipe.scheduler.timesteps, "timesteps")
        self.n_steps = len(table)
        t = call.timestep * self.adapter.timestep_scale
        close = np.flatnonzero(np.isclose(table, t, rtol=1e-6, atol=1e-4 * max(1.0, abs(t))))
        if len(close) == 0:
            raise ClockError(
                f"the denoiser was called with timestep {t}, which is not in scheduler.timesteps; "
                "interp cannot label this call with a denoising step"
            )
        later = close[close >= max(self.step, 0)]
        step = int(later[0] if len(later) else close[0])
        self.call = self.call + 1 if step == self.step else 0
        self.step = step
        self.n_calls = max(self.n_calls, self.call + 1)
        self.current = call
        self.branches = self.adapter.branches(call.batch, self.call, self.adapter.uses_cfg(self.pipe))
        self.seen_branches.update(self.branches)
        self.timesteps[step] = float(table[step])
        sigmas = self._host(getattr(self.pipe.scheduler, "sigmas", None), "sigmas")
        self.sigmas[step] = float(sigmas[step]) if sigmas is not None and len(sigmas) > step else float("nan")

    def _host(self, values: Any, name: str) -> np.ndarray | None:
        """A scheduler table on the host, copied again only when the scheduler's tensor changed (another
        object, or written in place): schedulers keep timesteps and sigmas on the device, and reading
        one element of a device tensor per call would synchronise with the device each time."""
        if values is None:
            return None
        key = (id(values), getattr(values, "_version", 0), tuple(getattr(values, "shape", (len(values),))))
        cached = self._host_tables.get(name)
        if cached is None or cached[0] != key:
            data = values.detach().float().cpu() if hasattr(values, "detach") else values
            cached = (key, np.asarray(data).astype(np.float64))
            self._host_tables[name] = cached
        return cached[1]

    def t_over_T(self, step: int) -> float:
        """Phase t/T = step / (T - 1): 0 at the noisiest step, 0 when T = 1."""
        return step / (self.n_steps - 1) if self.n_steps > 1 else 0.0
