"""A diffusers pipeline as an nnsight model, through nnsight's public API only.

Design
------
nnsight traces ``torch.nn.Module`` trees: ``nnsight.NNsight(module)`` wraps a module, and
``with model.trace(*inputs, **kwargs):`` runs ``module(*inputs, **kwargs)`` while the body reads and
writes the ``.input`` / ``.output`` of any module of the tree. A diffusers pipeline is not a module, so
:class:`PipelineModule` is one: an ``nn.Module`` that holds the pipeline, registers its module
components (``transformer`` or ``unet``, ``vae``, text encoders) as its children under their
component names, and whose ``forward`` runs the pipeline. ``nnsight_pipeline(pipe)`` wraps it in
``nnsight.NNsight``; nothing private of nnsight is used. (nnsight's own ``DiffusionModel`` loads a
pipeline from a repo id or folder and cannot take a pipeline object, so it cannot wrap the built-in
pipelines or a pipeline a user already built and modified.)

Seeds follow interp's policy: ``seed=`` becomes ``torch.Generator("cpu").manual_seed(seed)``, as in
``tracer.trace``, so a traced nnsight run and an interp trace of the same prompt and seed generate
the same image.

Site modules (``interp.interop.site_modules``) are children of the attention modules, so with them
installed ``model.transformer.transformer_blocks[3].attn.interp_site`` is an ordinary nnsight
address. A module reached repeatedly in one run (each attention site runs once per denoiser call)
gives one occurrence per call: iterate with ``for step in tracer.iter[:n]:``.

nnsight is an optional dependency (``pip install 'interp[nnsight]'``); it is imported only when
``nnsight_pipeline`` is called. Importing nnsight has process-wide effects of its own (it mounts
``.save()`` on every object and wraps each module's ``forward`` it traces, inert outside a trace).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class PipelineModule(nn.Module):
    """An ``nn.Module`` view of a diffusers pipeline: its module components as children, ``forward``
    runs the pipeline (``seed=`` gives a seeded CPU generator, as ``tracer.trace`` does)."""

    def __init__(self, pipe: Any) -> None:
        super().__init__()
        components = getattr(pipe, "components", None)
        if not isinstance(components, dict) or not callable(pipe):
            raise TypeError(f"{type(pipe).__name__} is not a diffusers pipeline (no .components, not callable)")
        self.pipeline = pipe  # not a Module: a plain attribute, never a child
        for name, component in components.items():
            if isinstance(component, nn.Module):
                self.add_module(name, component)

    def forward(self, *args: Any, seed: int | None = None, **kwargs: Any) -> Any:
        if seed is not None:
            if kwargs.get("generator") is not None:
                raise ValueError("pass either seed= or generator=, not both")
            kwargs["generator"] = torch.Generator("cpu").manual_seed(int(seed))
        return self.pipeline(*args, **kwargs)


def nnsight_pipeline(pipe: Any, **nnsight_kwargs: Any) -> Any:
    """``nnsight.NNsight`` over :class:`PipelineModule` (``pipe``); keyword arguments go to ``NNsight``.

    >>> model = nnsight_pipeline(pipe)                                   # doctest: +SKIP
    >>> with site_modules(pipe, layers=[1], stats=["mass"]):             # doctest: +SKIP
    ...     with model.trace("a cat", seed=0, num_inference_steps=4) as tracer:
    ...         for step in tracer.iter[:4]:
    ...             q, k, v, out = model.transformer.transformer_blocks[1].attn.interp_site.inputs[0]
    """
    try:
        import nnsight
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("nnsight_pipeline needs nnsight: pip install 'interp[nnsight]' (nnsight>=0.8)") from exc
    return nnsight.NNsight(PipelineModule(pipe), **nnsight_kwargs)
