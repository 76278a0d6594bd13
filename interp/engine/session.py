"""Session: install a prepared trace's clock and site hooks for one ``with`` block, always remove them.

Design
------
The second stage of the engine (``interp.engine``; docs/design.md, The trace lifecycle). A
:class:`Session` is made from a :class:`~interp.engine.prepare.Prepared` and owns everything that
lives exactly as long as one generation:

- the step clock (``interp.clock``) and the observer (``interp.engine.observer``);
- the per-trace caches: the kernels' ``KernelCache`` (subsample positions, LSE and cuDNN checks),
  the candidate keys of edit selectors, and the edits' replay and patch sources (from ``prepare``);
- the hooks: on enter it installs the clock on the denoiser and scheduler and, on each chosen
  attention module, the site hooks (``interp.sites.intercept``) whose SDPA handler is the observer's
  (or one the caller wraps around it: the module-tree interop calls its site modules there); on
  exit, also after an exception, every hook is removed (``Installation.remove``), so the pipeline is
  exactly as it was;
- for a compiled denoiser (``Prepared.compiled``), the stable route of ``interp.sites.routed`` instead
  of per-site hooks: the same handlers, reached through the ``interp::routed_sdpa`` custom op that
  replaces the attention kernel in the compiled graph, and a check when the block ends without error
  that every named site reached its handler once per denoiser call (``CompiledTraceError`` otherwise,
  before anything is stored).

``latents_hook`` (optional) receives the tensors ``pipe.prepare_latents`` returns during the block
(the sweep hashes the first to check that conditions sharing a seed drew the same noise). diffusers
has no callback for the initial latents (``callback_on_step_end`` sees them only after the first
step, and passing ``latents=`` would change what the generator draws and, on schedulers whose
``init_noise_sigma`` is not 1, how they are scaled), so the probe wraps ``prepare_latents`` on the
pipeline instance, like the clock wraps ``scheduler.step``, and is removed with the hooks in the same
``finally``. The pipeline's computation is unchanged: the wrapper returns the original result.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor

from interp.adapters.base import BRANCHES
from interp.clock import StepClock
from interp.engine.observer import Observer, SiteRequest
from interp.engine.prepare import Prepared
from interp.kernels.cache import KernelCache
from interp.sites.intercept import Installation, SDPACall, SiteHooks
from interp.sites.routed import CompiledRoute, RouteInstallation

HandlerFactory = Callable[[Observer, SiteRequest], Callable[[SDPACall], Tensor]]
"""(observer, site request) -> the SDPA handler of that site (default: the observer's own)."""


class LatentsProbe:
    """Calls ``hook`` with each latents tensor ``pipe.prepare_latents`` returns; ``remove`` restores the
    instance exactly (an instance-level override that was there before is put back)."""

    def __init__(self, pipe: Any, hook: Callable[[Tensor], None]) -> None:
        self.pipe = pipe
        self._had_own = "prepare_latents" in vars(pipe)
        self._previous = vars(pipe).get("prepare_latents")
        original = pipe.prepare_latents

        def prepare_latents(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            lat = out[0] if isinstance(out, tuple) else out
            if torch.is_tensor(lat):
                hook(lat)
            return out

        object.__setattr__(pipe, "prepare_latents", prepare_latents)

    def remove(self) -> None:
        if self.pipe is None:
            return
        if self._had_own:
            object.__setattr__(self.pipe, "prepare_latents", self._previous)
        else:
            object.__delattr__(self.pipe, "prepare_latents")
        self.pipe = None


class Session:
    """The hooks, clock, observer and caches of one generation; a context manager."""

    def __init__(
        self,
        prepared: Prepared,
        *,
        handler: HandlerFactory | None = None,
        post_output: bool = True,
        latents_hook: Callable[[Tensor], None] | None = None,
    ) -> None:
        self.prepared = prepared
        self.clock = StepClock(prepared.adapter, prepared.pipe)
        self.kernel_cache = KernelCache()
        self.candidates: dict[tuple, Tensor] = {}
        seed = prepared.call.seed
        self.observer = Observer(
            prepared.pipe,
            prepared.adapter,
            self.clock,
            prepared.requests,
            prepared.texts,
            dict(prepared.call.kwargs),
            BRANCHES,
            kernel=prepared.kernel,
            seed=-1 if seed is None else int(seed),
            replay=dict(prepared.sources),
            kernel_cache=self.kernel_cache,
            candidates=self.candidates,
        )
        self._handler = handler
        self._post_output = post_output
        self._latents_hook = latents_hook
        self._installation: Installation | None = None
        self._route: RouteInstallation | None = None

    def __enter__(self) -> Session:
        inst = Installation()
        self._installation = inst
        try:
            denoiser = self.prepared.denoiser
            routed = bool(self.prepared.compiled)
            self.clock.install(inst, denoiser, pre_hook=not routed)
            handlers, outputs, linear = {}, {}, {}
            for req in self.prepared.requests:
                path = req.site.path
                wants_post = self._post_output and req.norm_record is not None and "post_out" in req.norm_record.where
                if req.site.linear:
                    linear[path] = partial(self.observer.on_linear, path)
                else:
                    handlers[path] = (
                        partial(self.observer.on_sdpa, path)
                        if self._handler is None
                        else self._handler(self.observer, req)
                    )
                if wants_post:
                    outputs[path] = partial(self.observer.on_output, path)
            if routed:
                self._route = self._attach_route(denoiser, handlers)
                inst.add_handle(self._route)
            else:
                for path, handler in (*handlers.items(), *linear.items()):
                    inst.add_site(
                        SiteHooks(path, denoiser.get_submodule(path), handler, outputs.get(path), linear=path in linear)
                    )
            if self._latents_hook is not None:
                inst.add_handle(LatentsProbe(self.prepared.pipe, self._latents_hook))
        except BaseException:
            inst.remove()
            raise
        return self

    def _attach_route(self, denoiser: Any, handlers: dict) -> RouteInstallation:
        """The compiled denoiser's stable route (every softmax site of the model), attached for this trace."""
        sites = [
            (s.path, denoiser.get_submodule(s.path))
            for s in self.prepared.adapter.sites(self.prepared.pipe)
            if not s.linear
        ]
        route = CompiledRoute.of(denoiser, sites)
        return route.attach(denoiser, handlers, self.clock.pre_hook)

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._installation is None:
            return
        try:
            if exc_type is None and self._route is not None:
                self._route.check()
        finally:
            self._installation.remove()
            self._installation = None
            self._route = None
