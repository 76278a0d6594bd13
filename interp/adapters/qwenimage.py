"""Qwen-Image (``QwenImageTransformer2DModel``): MMDiT joint attention over ``[text, image]``, Qwen2.5-VL text.

Sites. Every block ``transformer_blocks.i.attn`` (kind ``joint``) runs
``QwenDoubleStreamAttnProcessor2_0``: separate text and image projections, QK-norm, scaled RoPE, one
``[text, image]`` joint attention through diffusers' dispatcher (native backend: SDPA), outputs
``(image, text)``. The last block's text rows are discarded (the model's output is the image stream):
its default query set is the image rows. Groups: ``all``.

Token layout ``joint``: ``[text, image patches]``. The pipeline wraps the prompt in its system/user
template, tokenizes it without padding (one prompt), runs Qwen2.5-VL and drops the first
``prompt_template_encode_start_idx`` (34) tokens, then keeps at most ``max_sequence_length``: the keys are
those tokens (the user prompt, ``<|im_end|>`` marked ``is_eos``, then ``\\n<|im_start|>assistant\\n``).
Image patches are row-major over ``img_shapes`` (height and width of the packed grid).

Clock and branches. ``timestep / 1000``; true CFG (``true_cfg_scale > 1`` with a negative prompt) runs the
transformer on the positive prompt first and the negative second (call 0 ``cond``, call 1 ``uncond``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from interp.adapters.base import (
    IMAGE,
    TEXT,
    Adapter,
    DenoiserCall,
    SiteInfo,
    TokenLayout,
    call_default,
    image_layout,
    text_layout,
    unknown_text_layout,
)

JOINT = "joint"


def qwen_template_layout(pipe: Any, text: str, max_length: int | None, encoder: str = "Qwen2.5-VL") -> TokenLayout:
    """The text keys QwenImagePipeline builds from ``text``: its template, minus the dropped prefix."""
    tok, drop = pipe.tokenizer, pipe.prompt_template_encode_start_idx
    ids = tok(pipe.prompt_template_encode.format(text), max_length=pipe.tokenizer_max_length + drop, truncation=True)
    ids = list(ids.input_ids)[drop:]
    if max_length is not None:
        ids = ids[:max_length]
    lay = text_layout(ids, tok.convert_ids_to_tokens(ids), encoder, bos_id=None, eos_id=None, pad_id=None)
    end = np.flatnonzero(np.asarray(ids) == tok.convert_tokens_to_ids("<|im_end|>"))
    if len(end):
        lay.is_eos[end[0]] = True
    return lay


class QwenImageAdapter(Adapter):
    name = "qwenimage"
    pipeline_classes = ("QwenImagePipeline",)
    denoiser_attr = "transformer"
    processors = ("QwenDoubleStreamAttnProcessor2_0",)
    dispatch_processors = ("QwenDoubleStreamAttnProcessor2_0",)
    tiny_module = "qwenimage"
    tiny_variants = ("qwenimage",)
    timestep_scale = 1000.0
    timestep_arg = ("timestep", 3)

    def __init__(self) -> None:
        self._grid: tuple[int, int] | None = None
        self._n_text: int | None = None

    def sites(self, pipe: Any) -> list[SiteInfo]:
        n = len(pipe.transformer.transformer_blocks)
        return [
            SiteInfo(f"transformer_blocks.{i}.attn", i, "joint", True, JOINT, JOINT, (TEXT,) if i == n - 1 else ())
            for i in range(n)
        ]

    def read_call(self, args: tuple, kwargs: dict[str, Any]) -> DenoiserCall:
        hidden = self.argument(args, kwargs, self.sample_arg)
        enc = kwargs.get("encoder_hidden_states")
        shapes = kwargs.get("img_shapes")
        if shapes:
            first = shapes[0][0] if isinstance(shapes[0], list) else shapes[0]
            self._grid = (int(first[1]), int(first[2]))
        self._n_text = int(enc.shape[1]) if enc is not None else None
        t, dtype = self.read_timestep(args, kwargs)
        return DenoiserCall(t, int(hidden.shape[0]), (int(hidden.shape[1]), 1), dtype)

    def branches(self, batch: int, call: int, cfg: bool) -> list[str]:
        if call in (0, 1):
            return ["cond" if call == 0 else "uncond"] * batch
        raise RuntimeError(f"the Qwen-Image transformer ran {call + 1} times in one step; expected cond, uncond")

    def layout(
        self,
        pipe: Any,
        name: str,
        text: str | None,
        call_kwargs: dict[str, Any],
        call: DenoiserCall,
        n_keys: int,
        branch: str = "cond",
    ) -> TokenLayout:
        if name != JOINT:
            raise ValueError(f"unknown Qwen-Image token layout {name!r}")
        n_image = call.latent_hw[0]
        rows, cols = self._grid if self._grid is not None else (1, n_image)
        if rows * cols != n_image:
            raise RuntimeError(f"img_shapes {rows}x{cols} does not match the {n_image} image tokens")
        n_text = n_keys - n_image
        if text is None:
            txt = unknown_text_layout(n_text, "Qwen2.5-VL")
        else:
            txt = qwen_template_layout(pipe, text, n_text)
        return TokenLayout.concat([txt, image_layout(rows, cols)])

    def planned_layout(
        self, pipe: Any, name: str, text: str | None, call_kwargs: dict[str, Any], branch: str = "cond"
    ) -> TokenLayout | None:
        """The layout by QwenImagePipeline's rules (default size, 2x2 packing, template cut)."""
        if name != JOINT:
            raise ValueError(f"unknown Qwen-Image token layout {name!r}")
        if text is None or call_kwargs.get("prompt_embeds") is not None:
            return None
        s = pipe.vae_scale_factor
        rows = int(call_kwargs.get("height") or pipe.default_sample_size * s) // (s * 2)
        cols = int(call_kwargs.get("width") or pipe.default_sample_size * s) // (s * 2)
        default = call_default(pipe, "max_sequence_length")
        txt = qwen_template_layout(pipe, text, int(call_kwargs.get("max_sequence_length") or default))
        return TokenLayout.concat([txt, image_layout(rows, cols)])

    def key_capacity(self, pipe: Any, call_kwargs: dict[str, Any]) -> int | None:
        """Text is not padded: at most ``max_sequence_length`` (and the tokenizer's cut) text keys."""
        s = pipe.vae_scale_factor
        rows = int(call_kwargs.get("height") or pipe.default_sample_size * s) // (s * 2)
        cols = int(call_kwargs.get("width") or pipe.default_sample_size * s) // (s * 2)
        default = call_default(pipe, "max_sequence_length")
        n_text = min(int(call_kwargs.get("max_sequence_length") or default), pipe.tokenizer_max_length)
        return n_text + rows * cols

    def split_output(self, site: SiteInfo, output: Any) -> dict[str, torch.Tensor]:
        streams = {IMAGE: output[0]}
        if TEXT not in site.unused_query_streams:
            streams[TEXT] = output[1]
        return streams
