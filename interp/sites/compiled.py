"""Compiled denoisers: found and refused before generation, never traced silently wrong.

Design
------
Sites are ordinary ``nn.Module`` hooks that enter a ``TorchFunctionMode`` (``sites.intercept``). A
``torch.compile`` graph does not see hooks registered after it was compiled (dynamo skips guards on
module hooks by default, ``torch._dynamo.config.skip_nnmodule_hook_guards``), so on a denoiser that was
compiled and already ran, the graph runs without the sites: no statistic is recorded and no edit is
applied, while the pipeline finishes normally. A graph compiled *during* a trace would instead bake the
trace's hooks into the cached graph, which later plain calls reuse. Neither is acceptable, so every
compiled region that would contain a site or the step clock is refused before generation with a
message that says how to trace the model (its uncompiled module; the compiled one stays usable for
plain generation).

What counts as compiled (every form PyTorch and diffusers users write):

- ``module.compile()`` in place (``nn.Module._compiled_call_impl``), on the denoiser or on any
  submodule (regional compilation of blocks, ``pipe.transformer.compile_repeated_blocks()``);
- ``torch.compile(module)``: the ``OptimizedModule`` wrapper, as the pipeline's denoiser or as a child;
- ``module.forward = torch.compile(module.forward)``: a dynamo-wrapped ``forward`` on the instance.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn


class CompiledDenoiserError(RuntimeError):
    """A trace asked to observe or edit inside a ``torch.compile`` region."""


def _is_compiled_module(module: nn.Module) -> str | None:
    """How ``module`` itself is compiled (None: not compiled)."""
    from torch._dynamo.eval_frame import OptimizedModule

    if isinstance(module, OptimizedModule):
        return "torch.compile(module) wrapper"
    if getattr(module, "_compiled_call_impl", None) is not None:
        return "module.compile()"
    forward = vars(module).get("forward")
    if forward is not None and hasattr(forward, "_torchdynamo_orig_callable"):
        return "forward = torch.compile(forward)"
    return None


def compiled_regions(denoiser: nn.Module) -> list[tuple[str, str]]:
    """(module path, how) of every compiled module in the denoiser, the denoiser itself as ``""``."""
    return [(path, how) for path, mod in denoiser.named_modules() if (how := _is_compiled_module(mod))]


def check_compiled(denoiser: nn.Module, requests: Iterable[Any] = ()) -> None:
    """Refuse a trace of a denoiser with compiled regions (see the module docstring), before generation."""
    regions = compiled_regions(denoiser)
    if not regions:
        return
    path, how = regions[0]
    where = "the denoiser" if path == "" else f"its submodule {path}"
    more = f" (and {len(regions) - 1} more compiled modules)" if len(regions) > 1 else ""
    raise CompiledDenoiserError(
        f"{where} is compiled ({how}){more}: a torch.compile graph does not run interp's site hooks, so the "
        "trace would record nothing and apply no edit. Trace the uncompiled model instead: keep a reference "
        "before compiling (`eager = pipe.transformer`) and set `pipe.transformer = eager` for the trace "
        "(`pipe.transformer._orig_mod` is the model inside a torch.compile wrapper; `module.compile()` in "
        "place cannot be undone: reload the model). Nothing was generated."
    )
