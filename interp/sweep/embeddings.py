"""Prompt embeddings computed once per prompt and reused by every condition of that prompt.

Design
------
Each pipeline family's ``encode_prompt`` has its own signature and return tuple; each family's adapter
names the call-argument names of the returned tensors (``Adapter.prompt_embeds``). :func:`encode` calls
``encode_prompt`` exactly as the pipeline's ``__call__`` does for one image per prompt with
classifier-free guidance (negative prompt included; a condition with guidance 1 simply does not use
it), and returns the keyword arguments to pass to the pipeline instead of the prompt text. The tracer
then takes the prompt text only as the label of the token layout. Tests check that this path is
bit-identical to passing the prompt (same image, same statistics). A family that declares none
gets ``None``: the sweep then passes the prompt text to every condition (correct, only slower).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from interp.adapters import UnsupportedPipeline, adapter_for


def output_names(pipe: Any) -> tuple[str | None, ...] | None:
    """Names of ``encode_prompt``'s outputs as ``__call__`` arguments, declared by the pipeline's
    family (``Adapter.prompt_embeds``; None: not passed), or None for a family without them."""
    try:
        return adapter_for(pipe).prompt_embeds
    except UnsupportedPipeline:
        return None


def supported(pipe: Any) -> bool:
    return output_names(pipe) is not None and hasattr(pipe, "encode_prompt")


@torch.no_grad()
def encode(pipe: Any, prompt: str, negative_prompt: str, call_kwargs: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The embedding keyword arguments for ``pipe(...)``, or None if this family is not supported.

    ``call_kwargs`` are the sweep's pipeline arguments; those that ``encode_prompt`` also takes
    (``max_sequence_length``, ``clean_caption``, ``clip_skip``) are passed on, as ``__call__`` does.
    """
    if not supported(pipe):
        return None
    names = output_names(pipe)
    params = inspect.signature(pipe.encode_prompt).parameters
    kwargs: dict[str, Any] = {
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "do_classifier_free_guidance": True,
        "num_images_per_prompt": 1,
        "device": pipe._execution_device,
    }
    for name in ("prompt_2", "prompt_3"):  # SD3 requires them (None means: the same as prompt)
        if name in params:
            kwargs[name] = None
    for name in ("max_sequence_length", "clean_caption", "clip_skip"):
        if name in call_kwargs and name in params:
            kwargs[name] = call_kwargs[name]
    kwargs = {k: v for k, v in kwargs.items() if k in params}
    out = pipe.encode_prompt(**kwargs)
    return {name: value for name, value in zip(names, out, strict=True) if name is not None}
