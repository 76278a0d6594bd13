"""Interception of the attention kernel call inside chosen modules, installed and removed cleanly.

Design
------
Every supported attention processor ends in ``F.scaled_dot_product_attention(q, k, v, ...)`` with the
final per-head tensors: after QK-norm, the joint [image, text] concatenation and RoPE. Rather than
re-implementing processors, a site intercepts that one call. Each chosen attention module gets two
ordinary ``nn.Module`` hooks:

- a forward pre-hook that enters a ``torch.overrides.TorchFunctionMode`` (``SDPAInterceptor``) for the
  duration of that module's forward, and
- a forward hook registered with ``always_call=True`` that leaves the mode (also when the forward
  raises), checks that the kernel was called exactly once, and hands the module's output to the
  observer (for ``post_out`` norms).

Inside the mode, every torch function the processor calls passes through ``__torch_function__``;
anything but SDPA is forwarded untouched, and SDPA goes to the site's handler, which must return the
attention output (the original call's result when only observing, so the image is bit-identical).
PyTorch disables the mode while its handler runs, so the handler's own torch calls are not
re-intercepted. This is the mechanism diffusers' own layer-skip hook uses; nothing is patched
globally, the processor objects are not replaced, and removing the hook handles restores the module
exactly (``Installation.remove``).

Processors that never call SDPA (xformers, sliced or classic ``AttnProcessor``, flash / sage / flex
backends of the attention dispatcher) are refused when sites are installed (``check_backend``), and
the forward hook raises if a site's forward ran without the kernel call, so nothing is ever silently
recorded as nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from interp.adapters import ADAPTERS

SDPA_PROCESSORS = frozenset(p for adapter in ADAPTERS for p in adapter.processors)
"""Processor classes known to end in ``F.scaled_dot_product_attention`` with per-head q, k, v (each
family's adapter declares its own, ``Adapter.processors``)."""

DISPATCH_PROCESSORS = frozenset(p for adapter in ADAPTERS for p in adapter.dispatch_processors)
"""Processors that go through diffusers' attention dispatcher: only its native backend calls SDPA."""


LINEAR_PROCESSORS = frozenset(p for adapter in ADAPTERS for p in adapter.linear_processors)
"""ReLU linear-attention processors (SANA): ``(V_pad K) Q`` by two ``torch.matmul`` calls, observed there."""


class BackendError(RuntimeError):
    """A site whose attention never reaches the interception point."""


@dataclass
class SDPACall:
    """One intercepted attention kernel call: the final q, k, v (B, H, N, D) and its options."""

    q: Tensor
    k: Tensor
    v: Tensor
    attn_mask: Tensor | None
    scale: float
    dropout_p: float
    is_causal: bool
    run_original: Callable[[], Tensor]
    scale_arg: float | None = None  # the scale as the caller passed it (None: SDPA's default)


SDPAHandler = Callable[[SDPACall], Tensor]


@dataclass
class LinearCall:
    """One linear-attention call (``SanaLinearAttnProcessor2_0``): the feature maps relu(q), relu(k) (B, H, N, D)
    and the per-head output (B, H, Nq, Dv), all float32 as the processor computes them."""

    q: Tensor
    k: Tensor
    out: Tensor


class LinearInterceptor(TorchFunctionMode):
    """Reads a linear-attention processor's two ``torch.matmul`` calls (``V_pad @ relu(K)``, then
    ``@ relu(Q)``) and hands them to ``handler`` after the second; both results are the original calls'."""

    def __init__(self, handler: Callable[[LinearCall], None]) -> None:
        super().__init__()
        self.handler = handler
        self.calls = 0
        self._key: Tensor | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D105
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is torch.matmul:
            if self._key is None:
                self._key = args[1]
            else:
                hidden = out
                attn = hidden[:, :, :-1] / (hidden[:, :, -1:] + 1e-15)
                self.handler(LinearCall(q=args[1].transpose(-1, -2), k=self._key, out=attn.transpose(-1, -2)))
                self._key = None
                self.calls += 1
        return out


def _parse_sdpa(func: Callable, args: tuple, kwargs: dict[str, Any]) -> SDPACall:
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale")
    bound = dict(zip(names, args, strict=False))
    bound.update(kwargs)
    q, k, v = bound["query"], bound["key"], bound["value"]
    scale = bound.get("scale")
    return SDPACall(
        q=q,
        k=k,
        v=v,
        attn_mask=bound.get("attn_mask"),
        scale=float(scale) if scale is not None else 1.0 / math.sqrt(q.shape[-1]),
        dropout_p=float(bound.get("dropout_p", 0.0) or 0.0),
        is_causal=bool(bound.get("is_causal", False)),
        run_original=lambda: func(*args, **kwargs),
        scale_arg=None if scale is None else float(scale),
    )


class SDPAInterceptor(TorchFunctionMode):
    """Routes ``F.scaled_dot_product_attention`` calls to a handler; everything else passes through."""

    def __init__(self, handler: SDPAHandler) -> None:
        super().__init__()
        self.handler = handler
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D105
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            self.calls += 1
            return self.handler(_parse_sdpa(func, args, kwargs))
        return func(*args, **kwargs)


def check_backend(path: str, module: nn.Module) -> None:
    """Refuse a site whose processor would bypass ``F.scaled_dot_product_attention``."""
    processor = getattr(module, "processor", None)
    name = type(processor).__name__
    how = (
        "Switch to the native PyTorch attention: `pipe.transformer.set_attn_processor(AttnProcessor2_0())` "
        "(JointAttnProcessor2_0 for SD3), or `model.set_attention_backend('native')` for dispatcher-based "
        "models (Flux; `reset_attention_backend()` alone keeps diffusers' process-wide active backend)."
    )
    if name in LINEAR_PROCESSORS:
        return
    if name not in SDPA_PROCESSORS:
        raise BackendError(
            f"site {path}: processor {name} does not call torch's scaled_dot_product_attention, so interp "
            f"cannot observe or edit it. {how}"
        )
    if name in DISPATCH_PROCESSORS:
        backend = getattr(processor, "_attention_backend", None)
        if backend is None:
            from diffusers.models.attention_dispatch import _AttentionBackendRegistry

            backend = _AttentionBackendRegistry.get_active_backend()[0]
        value = getattr(backend, "value", backend)
        if value != "native":
            raise BackendError(
                f"site {path}: attention backend {value!r} bypasses torch's scaled_dot_product_attention. " + how
            )


class SiteHooks:
    """The two hooks of one site; ``on_output(output)`` sees the module's output after the forward."""

    def __init__(
        self,
        path: str,
        module: nn.Module,
        handler: SDPAHandler | Callable[[LinearCall], None],
        on_output: Callable[[Any], None] | None,
        linear: bool = False,
    ) -> None:
        self.path = path
        self.module = module
        self.handler = handler
        self.on_output = on_output
        self.linear = linear
        self._mode: SDPAInterceptor | LinearInterceptor | None = None
        self.handles = [
            module.register_forward_pre_hook(self._pre),
            module.register_forward_hook(self._post, always_call=True),
        ]

    def _pre(self, module: nn.Module, args: tuple) -> None:
        self._mode = LinearInterceptor(self.handler) if self.linear else SDPAInterceptor(self.handler)
        self._mode.__enter__()

    def _post(self, module: nn.Module, args: tuple, output: Any) -> None:
        mode, self._mode = self._mode, None
        if mode is None:
            return
        mode.__exit__(None, None, None)
        if output is None:  # the forward raised (torch passes None to always-called hooks): that error wins
            return
        if mode.calls != 1:
            kernel = "linear attention's matmul pair" if self.linear else "scaled_dot_product_attention"
            raise BackendError(
                f"site {self.path}: its forward called {kernel} {mode.calls} times "
                "(expected exactly once); its processor or attention backend bypasses the interception point"
            )
        if self.on_output is not None:
            self.on_output(output)

    def remove(self) -> None:
        if self._mode is not None:  # a forward that never reached its post-hook
            self._mode.__exit__(None, None, None)
            self._mode = None
        for h in self.handles:
            h.remove()
        self.handles = []


class Installation:
    """All hooks of one trace; ``remove()`` restores every module (idempotent)."""

    def __init__(self) -> None:
        self.sites: list[SiteHooks] = []
        self.extra_handles: list[Any] = []

    def add_site(self, hooks: SiteHooks) -> None:
        self.sites.append(hooks)

    def add_handle(self, handle: Any) -> None:
        self.extra_handles.append(handle)

    def remove(self) -> None:
        for s in self.sites:
            s.remove()
        for h in self.extra_handles:
            h.remove()
        self.sites, self.extra_handles = [], []

    def __enter__(self) -> Installation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
