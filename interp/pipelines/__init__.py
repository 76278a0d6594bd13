"""Pipelines to trace: the built-in offline ones (``tiny``) and real checkpoints (``load``).

``tiny(name)`` builds the REAL diffusers pipeline class of a model family from small configs in code, one
family per module (``sd3`` for SD3 and SD3.5, ``sdxl``, ``flux``, ``pixart``, ``chroma``, ``sana``,
``flux2`` (Flux.2 [dev] and [klein]), ``qwenimage``, the video families ``wan``, ``cogvideox`` and
``hunyuanvideo15``, and ``generic`` for the generic adapter's AuraFlow and Lumina 2;
each family's adapter declares its built-ins), with tokenizers built in
code (``tokenizers``), deterministic: two constructions give the same weights, tokenizers and images, and
the caller's RNG state is untouched. ``tiny_call_kwargs(name)`` gives the call keyword arguments of a fast
run (few steps, short T5 padding, ...), since a pipeline class's ``__call__`` defaults cannot be changed
on an instance.
"""

from __future__ import annotations

import importlib

import torch
from diffusers import DiffusionPipeline

from interp.adapters import ADAPTERS
from interp.pipelines.loading import load

_REGISTRY: dict[str, tuple[str, str]] = {
    variant: (adapter.tiny_module, variant)
    for adapter in ADAPTERS
    if adapter.tiny_module is not None
    for variant in adapter.tiny_variants
}
"""Built-in name -> (module of interp.pipelines, variant passed to its build()), from the adapters'
declarations (``Adapter.tiny_module`` / ``tiny_variants``)."""
SUPPORTED_TINY: tuple[str, ...] = tuple(_REGISTRY)

__all__ = ["SUPPORTED_TINY", "load", "organism", "tiny", "tiny_call_kwargs"]


def _module(name: str):
    if name not in _REGISTRY:
        raise ValueError(f"unknown tiny pipeline {name!r}; supported: {', '.join(SUPPORTED_TINY)}")
    module_name, variant = _REGISTRY[name]
    return importlib.import_module(f"interp.pipelines.{module_name}"), variant


def tiny(name: str = "sd3", *, dtype: torch.dtype = torch.float32) -> DiffusionPipeline:
    """Build the built-in offline pipeline ``name`` (one of ``SUPPORTED_TINY``), in eval mode, no download."""
    module, variant = _module(name)
    return module.build(variant, dtype=dtype)


def tiny_call_kwargs(name: str = "sd3") -> dict:
    """Keyword arguments for a fast call of ``tiny(name)`` (a fresh dict; add prompt, generator, ...)."""
    module, variant = _module(name)
    if hasattr(module, "call_kwargs"):  # a module of several variants with their own call arguments
        return module.call_kwargs(variant)
    return dict(module.FAST_CALL_KWARGS)


def organism(dtype: torch.dtype = torch.float32) -> DiffusionPipeline:
    """The trained model organism (``interp.organism``), loaded offline from the package's weights."""
    from interp.organism import load_organism

    return load_organism(dtype)
