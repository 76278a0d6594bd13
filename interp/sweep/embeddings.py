"""Prompt embeddings computed once per prompt and reused by every condition of that prompt.

Design
------
Each pipeline family's ``encode_prompt`` has its own signature and return tuple; :data:`ENCODERS`
names, per pipeline class, the call-argument names of the returned tensors. :func:`encode` calls
``encode_prompt`` exactly as the pipeline's ``__call__`` does for one image per prompt with
classifier-free guidance (negative prompt included; a condition with guidance 1 simply does not use
it), and returns the keyword arguments to pass to the pipeline instead of the prompt text. The tracer
then takes the prompt text only as the label of the token layout. Tests check that this path is
bit-identical to passing the prompt (same image, same statistics). A pipeline class without an entry
gets ``None``: the sweep then passes the prompt text to every condition (correct, only slower).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

_FOUR = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")

ENCODERS: dict[str, tuple[str | None, ...]] = {
    "StableDiffusion3Pipeline": _FOUR,
    "StableDiffusionXLPipeline": _FOUR,
    # PixArt (outputs: prompt_embeds, prompt_attention_mask, negative_prompt_embeds,
    # negative_prompt_attention_mask) is left out: its __call__ defaults negative_prompt to "" and refuses
    # it beside negative_prompt_embeds, and the tracer drops the sweep's negative_prompt rather than
    # passing None, so PixArt sweeps pass the prompt text (correct, only slower) until that changes.
}
"""Pipeline class -> names of ``encode_prompt``'s outputs as ``__call__`` arguments (None: not passed)."""


def supported(pipe: Any) -> bool:
    return type(pipe).__name__ in ENCODERS and hasattr(pipe, "encode_prompt")


@torch.no_grad()
def encode(pipe: Any, prompt: str, negative_prompt: str, call_kwargs: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The embedding keyword arguments for ``pipe(...)``, or None if this family is not supported.

    ``call_kwargs`` are the sweep's pipeline arguments; those that ``encode_prompt`` also takes
    (``max_sequence_length``, ``clean_caption``, ``clip_skip``) are passed on, as ``__call__`` does.
    """
    if not supported(pipe):
        return None
    names = ENCODERS[type(pipe).__name__]
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
