"""Sites inside a ``torch.compile``d denoiser: one stable route per denoiser, a custom op at the kernel.

Design
------
The eager sites (``sites.intercept``) enter a ``TorchFunctionMode`` in a per-trace pre-hook. Dynamo
inlines module hooks when it compiles and does not guard on them, so a graph compiled with one trace's
hooks is reused by the next (and one compiled without hooks by a trace): routing by per-trace hooks is
silently wrong under compilation (``benchmarks/compiled_routing_probe.py`` shows it). This module routes
differently, so that whatever graph dynamo reuses was traced with exactly the routing in force:

- **One stable route per denoiser** (``CompiledRoute.of(denoiser)``, kept on the module's ``__dict__``;
  no process-wide state). Every trace of that denoiser uses the same route object, the same
  ``TorchFunctionMode`` instance and the same hook functions (the route's methods), on *every* softmax
  attention site of the model, whatever the trace's plan. The plan only changes eager state that the
  compiled code never reads: which handler a site's kernel call goes to.
- **Site identity travels as the module object, not as a constant.** A site's pre-hook stores its own
  module on the route (``route.current = module``). Dynamo replays that store with the module taken from
  the running frame, so a graph shared by all blocks (regional compilation, or one block's code object
  compiled once) still names the block that is running; a constant path baked into the hook would name
  the first block compiled.
- **The kernel call becomes a custom op.** The mode's ``__torch_function__`` (traced by dynamo:
  entering the mode around the pipeline call changes the mode stack, so every frame is compiled once
  more for traces) replaces ``F.scaled_dot_product_attention`` with ``interp::routed_sdpa``, a
  ``torch.library.custom_op`` that inductor calls as an external kernel, exactly where the plain graph
  calls its attention kernel. Its arguments are the final q, k, v and options, one parameter of the site
  module (the key that names the site at run time, by storage: a graph shared by all blocks passes each
  block's own parameter) and the route's id. Its Python body runs eagerly with real tensors and calls
  the trace's handler (statistics, edits), or the original kernel for sites the trace does not name.
  The graph is not broken, so inductor fuses everything around the kernel as in the plain compiled
  graph: observation stays bit-identical to the compiled plain pipeline, in bf16 too
  (``tests/integration/test_compiled_trace.py``). A graph break instead would materialise values that
  the plain graph keeps in fp32 inside fused kernels, which changes bf16 outputs.
- **Checked after generation.** Every kernel call of a named site is counted; when the generation ends,
  each named site must have been called once per denoiser call (``RouteInstallation.check``), or the
  trace fails before anything is stored. Combinations that cannot work are refused before generation
  (``sites.compiled``): CUDA graphs (``mode="reduce-overhead"``: a replay would skip the op's Python
  body), SANA's linear attention (two ``torch.matmul`` calls, not one kernel call) and activation norms
  of a module's output (``post_out``: handing the output to an op makes inductor materialise a value
  that the plain graph keeps in fp32 inside a fused kernel, which changed bf16 outputs in the tests;
  ``pre_out``, the attention kernel's own output, is recorded). ``fullgraph=True``
  works: nothing breaks the graph (the denoiser's own hooks run outside the compiled frame).

Hooks are added without ``always_call`` (dynamo guards on that dict's hook ids, which would recompile
every trace); a forward that raises leaves ``route.current`` set, which the next ``attach`` clears. The
routes are found by id in a module-level ``WeakValueDictionary`` (``_ROUTES``): a custom op's arguments
are tensors and scalars, so the op body cannot be handed the route itself; entries vanish with their
denoiser.

The denoiser's own pre-hook (the step clock) is routed the same way (``denoiser_pre``, disabled), so a
graph never calls an earlier trace's clock.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from interp.sites.intercept import BackendError, SDPAHandler, _parse_sdpa

ROUTE_ATTR = "_interp_compiled_route"

ClockHook = Callable[[Any, tuple, dict[str, Any]], None]

_ROUTES: weakref.WeakValueDictionary[int, CompiledRoute] = weakref.WeakValueDictionary()


class CompiledTraceError(RuntimeError):
    """A compiled denoiser's attention call did not reach its site's handler: nothing is stored."""


@torch.library.custom_op("interp::routed_sdpa", mutates_args=())
def routed_sdpa(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None,
    dropout_p: float,
    is_causal: bool,
    scale: float | None,
    enable_gqa: bool,
    key: Tensor,
    route_id: int,
) -> Tensor:
    """The attention kernel of a compiled denoiser's site, handed to its route (module docstring)."""
    kwargs: dict[str, Any] = {"attn_mask": attn_mask, "dropout_p": dropout_p, "is_causal": is_causal, "scale": scale}
    if enable_gqa:
        kwargs["enable_gqa"] = True
    return _ROUTES[route_id].run_sdpa((q, k, v), kwargs, key).contiguous()


@routed_sdpa.register_fake
def _routed_sdpa_fake(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa, key, route_id):  # noqa: ANN001, ANN202
    return q.new_empty((*q.shape[:-1], v.shape[-1]))


_SDPA_NAMES = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


class CompiledRoute:
    """The stable routing of one denoiser's attention kernel calls (module docstring)."""

    def __init__(self, sites: Iterable[tuple[str, nn.Module]]) -> None:
        self.modules: dict[str, nn.Module] = dict(sites)
        self.key_name = _common_parameter(self.modules)
        self.current: nn.Module | None = None
        self.handlers: dict[str, SDPAHandler] = {}
        self.clock: ClockHook | None = None
        self.calls: Counter[str] = Counter()
        self.denoiser_calls = 0
        self._by_storage: dict[int, str] = {}
        self.id = id(self)
        _ROUTES[self.id] = self
        route = self

        class RouteMode(TorchFunctionMode):
            """Replaces a site's attention kernel by ``interp::routed_sdpa``; traced by dynamo."""

            def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D105
                kwargs = kwargs or {}
                if func is F.scaled_dot_product_attention:
                    module = route.current
                    if module is not None:
                        b = dict(zip(_SDPA_NAMES, args, strict=False))
                        b.update(kwargs)
                        return routed_sdpa(
                            b["query"],
                            b["key"],
                            b["value"],
                            b.get("attn_mask"),
                            float(b.get("dropout_p", 0.0) or 0.0),
                            bool(b.get("is_causal", False)),
                            b.get("scale"),
                            bool(b.get("enable_gqa", False)),
                            module.get_parameter(route.key_name),
                            route.id,
                        )
                return func(*args, **kwargs)

        self.mode = RouteMode()
        # disabled once, here: the same function object in every graph that calls it
        self.denoiser_pre = torch.compiler.disable(self._route_denoiser_pre)

    @classmethod
    def of(cls, denoiser: nn.Module, sites: Iterable[tuple[str, nn.Module]]) -> CompiledRoute:
        """The denoiser's route, made on first use; a route for other sites (a model changed in place)
        is replaced."""
        sites = list(sites)
        route = vars(denoiser).get(ROUTE_ATTR)
        if route is None or {p: id(m) for p, m in route.modules.items()} != {p: id(m) for p, m in sites}:
            route = cls(sites)
            object.__setattr__(denoiser, ROUTE_ATTR, route)  # not a submodule, not in the state dict
        return route

    # --- traced by dynamo ------------------------------------------------------------------------------
    def pre(self, module: nn.Module, args: tuple) -> None:
        self.current = module

    def post(self, module: nn.Module, args: tuple, output: Any) -> None:
        self.current = None

    # --- run eagerly, with real tensors ----------------------------------------------------------------
    def site_of(self, key: Tensor) -> str | None:
        """The site whose key parameter has this storage (looked up again after a device move)."""
        ptr = key.data_ptr()
        path = self._by_storage.get(ptr)
        if path is None:
            self._by_storage = {m.get_parameter(self.key_name).data_ptr(): p for p, m in self.modules.items()}
            path = self._by_storage.get(ptr)
        return path

    def run_sdpa(self, args: tuple, kwargs: dict[str, Any], key: Tensor) -> Tensor:
        path = self.site_of(key)
        handler = self.handlers.get(path) if path is not None else None
        # the handler's own torch calls go straight to torch: not through the mode again (which would route
        # its kernel call back here), and without a Python __torch_function__ round trip per call
        with torch._C.DisableTorchFunction():
            if handler is None:
                return F.scaled_dot_product_attention(*args, **kwargs)
            self.calls[path] += 1
            return handler(_parse_sdpa(F.scaled_dot_product_attention, args, kwargs))

    def _route_denoiser_pre(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        self.denoiser_calls += 1
        if self.clock is not None:
            self.clock(module, args, kwargs)

    # --- a trace -------------------------------------------------------------------------------------
    def attach(
        self,
        denoiser: nn.Module,
        handlers: dict[str, SDPAHandler],
        clock: ClockHook,
    ) -> RouteInstallation:
        """Hook every site and the denoiser for one trace; ``handlers`` name its sites."""
        if self.handlers or self.clock is not None:
            raise CompiledTraceError("this compiled denoiser is already being traced (traces do not nest)")
        unknown = sorted(set(handlers) - set(self.modules))
        if unknown:
            raise BackendError(f"sites {unknown} are not softmax attention sites of this compiled denoiser")
        self.handlers, self.clock = dict(handlers), clock
        self.calls, self.denoiser_calls = Counter(), 0
        self.current = None
        handles = [denoiser.register_forward_pre_hook(self.denoiser_pre, with_kwargs=True)]
        for module in self.modules.values():
            handles.append(module.register_forward_pre_hook(self.pre))
            handles.append(module.register_forward_hook(self.post))
        return RouteInstallation(self, handles, self.mode)

    def detach(self) -> None:
        self.handlers, self.clock, self.current = {}, None, None


def _common_parameter(modules: dict[str, nn.Module]) -> str:
    """The name of a parameter every site module has (its storage names the site at run time)."""
    first = next(iter(modules.values()), None)
    names = [n for n, _ in first.named_parameters()] if first is not None else []
    for name in names:
        if all(_has_parameter(m, name) for m in modules.values()):
            return name
    raise BackendError(
        "interp cannot trace this compiled denoiser: its attention modules share no parameter name to tell "
        "them apart at run time; trace the uncompiled model"
    )


def _has_parameter(module: nn.Module, name: str) -> bool:
    try:
        module.get_parameter(name)
    except AttributeError:
        return False
    return True


class RouteInstallation:
    """One trace's hooks on a compiled denoiser and the mode entered around the pipeline call."""

    def __init__(self, route: CompiledRoute, handles: list[Any], mode: TorchFunctionMode) -> None:
        self.route = route
        self.handles = handles
        self.mode: TorchFunctionMode | None = mode
        mode.__enter__()

    def check(self) -> None:
        """After generation: every named site's kernel call reached its handler once per denoiser call."""
        route = self.route
        n = route.denoiser_calls
        if n == 0:
            raise CompiledTraceError(
                "the compiled denoiser never reached interp's route during the generation; nothing was stored"
            )
        missed = {p: route.calls[p] for p in route.handlers if route.calls[p] != n}
        if missed:
            detail = ", ".join(f"{p}: {c}" for p, c in list(missed.items())[:4])
            raise CompiledTraceError(
                f"the compiled denoiser ran {n} times, but {len(missed)} site(s) did not reach interp's handler "
                f"once per call ({detail}); the trace is incomplete and nothing was stored. Trace the eager model "
                "(see docs/howto/compiled.md)"
            )

    def remove(self) -> None:
        if self.mode is not None:
            self.mode.__exit__(None, None, None)
            self.mode = None
        for h in self.handles:
            h.remove()
        self.handles = []
        self.route.detach()
