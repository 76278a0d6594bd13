"""Compiled denoisers: found before generation, traced through a stable route, or refused.

Design
------
Sites are ordinary ``nn.Module`` hooks that enter a ``TorchFunctionMode`` (``sites.intercept``). A
``torch.compile`` graph does not see hooks registered after it was compiled (dynamo skips guards on
module hooks by default, ``torch._dynamo.config.skip_nnmodule_hook_guards``), so per-trace hooks on a
compiled denoiser would record nothing and apply no edit, silently. A denoiser with a compiled region is
therefore traced through ``sites.routed`` (one stable route per denoiser, a custom op at the attention
kernel; ``fullgraph=True`` works), and this module finds the regions and refuses, before generation,
what that route cannot do:

- CUDA graphs (``mode="reduce-overhead"`` or ``options={"triton.cudagraphs": True}``): a replay would
  skip the route's Python body (no statistic, no edit) and recycle the buffers it reads;
- a site with SANA's linear attention (two ``torch.matmul`` calls, no single kernel call to route);
- activation norms of an attention module's output (``act_norms`` at ``post_out``): observing that
  value makes inductor materialise it, where the plain graph keeps it in fp32 inside a fused kernel, so
  a bf16 output would change (``pre_out`` is the kernel's own output and is recorded).

What counts as compiled (every form PyTorch and diffusers users write):

- ``module.compile()`` in place (``nn.Module._compiled_call_impl``), on the denoiser or on any
  submodule (regional compilation of blocks, ``pipe.transformer.compile_repeated_blocks()``);
- ``torch.compile(module)``: the ``OptimizedModule`` wrapper, as the pipeline's denoiser or as a child
  (the adapters trace the module inside a wrapper denoiser, ``Adapter.denoiser``);
- ``module.forward = torch.compile(module.forward)``: a dynamo-wrapped ``forward`` on the instance.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn


class CompiledDenoiserError(RuntimeError):
    """A trace asked for something a compiled denoiser cannot give (module docstring), before generation."""


def _compiled_callable(module: nn.Module) -> tuple[str, Any] | None:
    """How ``module`` itself is compiled and the dynamo-wrapped callable (None: not compiled)."""
    from torch._dynamo.eval_frame import OptimizedModule

    if isinstance(module, OptimizedModule):
        return "torch.compile(module) wrapper", module
    if getattr(module, "_compiled_call_impl", None) is not None:
        return "module.compile()", module._compiled_call_impl
    forward = vars(module).get("forward")
    if forward is not None and hasattr(forward, "_torchdynamo_orig_callable"):
        return "forward = torch.compile(forward)", forward
    return None


def _compile_context(compiled: Any) -> Any:
    """The ``OptimizeContext`` behind a wrapper or a compiled function (None if torch hides it)."""
    ctx = getattr(compiled, "dynamo_ctx", None)
    if ctx is not None:
        return ctx
    for cell in getattr(compiled, "__closure__", None) or ():
        contents = cell.cell_contents
        if hasattr(contents, "fullgraph") and hasattr(contents, "callback"):
            return contents
    return None


def _uses_cudagraphs(ctx: Any) -> bool:
    """Whether the region's backend is inductor with CUDA graphs (``mode="reduce-overhead"``)."""
    x = getattr(ctx, "callback", None)
    for _ in range(8):  # CatchErrorsWrapper -> ConvertFrame -> WrapBackendDebug -> the backend
        config = getattr(x, "config", None)
        if isinstance(config, dict):
            return bool(config.get("triton.cudagraphs"))
        nxt = getattr(x, "_torchdynamo_orig_callable", None) or getattr(x, "_torchdynamo_orig_backend", None)
        x = nxt if nxt is not None else getattr(x, "compiler_fn", None)
        if x is None:
            return False
    return False


def _regions(denoiser: nn.Module) -> list[tuple[str, str, Any]]:
    """(module path, how, compiled callable) of every compiled module, the denoiser itself as ``""``."""
    return [(path, *found) for path, mod in denoiser.named_modules() if (found := _compiled_callable(mod))]


def compiled_regions(denoiser: nn.Module) -> list[tuple[str, str]]:
    """(module path, how) of every compiled module in the denoiser, the denoiser itself as ``""``."""
    return [(path, how) for path, how, _ in _regions(denoiser)]


def check_compiled(denoiser: nn.Module, requests: Iterable[Any] = ()) -> tuple[tuple[str, str], ...]:
    """The denoiser's compiled regions (empty: trace it eagerly); refuses, before generation, the
    combinations the compiled route cannot trace (module docstring)."""
    found = _regions(denoiser)
    for path, how, compiled in found:
        where = "the denoiser" if path == "" else f"its submodule {path}"
        ctx = _compile_context(compiled)
        if ctx is not None and _uses_cudagraphs(ctx):
            raise CompiledDenoiserError(
                f"{where} is compiled with CUDA graphs ({how}, mode='reduce-overhead'): a graph replay would skip "
                "interp's statistics and edits and recycle the buffers they read. Compile with the default "
                "mode (or 'max-autotune-no-cudagraphs') for the trace. Nothing was generated."
            )
    if found:
        linear = [r.site.path for r in requests if getattr(r.site, "linear", False)]
        if linear:
            raise CompiledDenoiserError(
                f"site {linear[0]} is linear attention, which interp cannot trace inside a compiled denoiser (it "
                "is two matmul calls, not one attention kernel call); trace the uncompiled model, or name only "
                "softmax attention sites. Nothing was generated."
            )
        post = [r.site.path for r in requests if r.norm_record is not None and "post_out" in r.norm_record.where]
        if post:
            raise CompiledDenoiserError(
                f"act_norms at 'post_out' (site {post[0]}) cannot be recorded inside a compiled denoiser without "
                "changing its computation (inductor would materialise the attention module's output, which the "
                "compiled graph keeps inside a fused kernel). Record act_norms(where='pre_out'), or trace the "
                "uncompiled model. Nothing was generated."
            )
    return tuple((path, how) for path, how, _ in found)
