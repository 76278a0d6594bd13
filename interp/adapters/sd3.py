"""Stable Diffusion 3 / 3.5 (MMDiT joint attention).

Token layout of a joint site: ``[image patches (row-major), CLIP 77, T5 max_sequence_length]``. The
77 CLIP positions carry CLIP-L and CLIP-G hidden states concatenated along channels, so one key is
both encoders' token at that position ("CLIP-L/G"); the first tokenizer pads with its end-of-text
token, the second with "!", and flags come from positions (``text_layout``). The uncond branch of a
CFG batch attends to the *negative* prompt's tokens (default ""), so layouts are per branch.

The last block is ``context_pre_only``: it computes text query rows and discards them, so its default
query set is the image rows. SD3.5's first blocks add ``attn2``, an image-only self-attention that
shares its processor object with ``attn``: its keys and queries are the image patches alone.
"""

from __future__ import annotations

from typing import Any

import torch

from interp.adapters.base import (
    IMAGE,
    PROMPT_EMBEDS_4,
    TEXT,
    Adapter,
    DenoiserCall,
    SiteInfo,
    TokenLayout,
    image_layout,
    text_layout,
    unknown_text_layout,
)


def _tokens(tokenizer: Any, text: str, max_length: int, **kw: Any) -> tuple[list[int], list[str]]:
    ids = tokenizer(text, padding="max_length", max_length=max_length, truncation=True, **kw).input_ids
    ids = list(ids[0] if ids and isinstance(ids[0], list) else ids)
    return ids, list(tokenizer.convert_ids_to_tokens(ids))


def clip_layout(tokenizer: Any, text: str, max_length: int, encoder: str) -> TokenLayout:
    ids, toks = _tokens(tokenizer, text, max_length)
    return text_layout(
        ids,
        toks,
        encoder,
        bos_id=tokenizer.bos_token_id,
        eos_id=tokenizer.eos_token_id,
        pad_id=tokenizer.pad_token_id,
    )


def t5_layout(tokenizer: Any, text: str, max_length: int, encoder: str = "T5") -> TokenLayout:
    ids, toks = _tokens(tokenizer, text, max_length, add_special_tokens=True)
    return text_layout(ids, toks, encoder, bos_id=None, eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id)


class SD3Adapter(Adapter):
    name = "sd3"
    pipeline_classes = ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline")
    denoiser_attr = "transformer"
    processors = ("JointAttnProcessor2_0", "FusedJointAttnProcessor2_0")
    prompt_embeds = PROMPT_EMBEDS_4
    tiny_module = "sd3"
    tiny_variants = ("sd3", "sd3.5")

    def sites(self, pipe: Any) -> list[SiteInfo]:
        out = []
        for i, block in enumerate(pipe.transformer.transformer_blocks):
            unused = (TEXT,) if getattr(block, "context_pre_only", False) else ()
            out.append(SiteInfo(f"transformer_blocks.{i}.attn", i, "joint", True, "joint", "joint", unused))
            if getattr(block, "attn2", None) is not None:
                out.append(SiteInfo(f"transformer_blocks.{i}.attn2", i, "self", False, "image", "image"))
        return out

    def grid(self, pipe: Any, call: DenoiserCall) -> tuple[int, int]:
        p = pipe.transformer.config.patch_size
        return call.latent_hw[0] // p, call.latent_hw[1] // p

    def text_layout(self, pipe: Any, text: str | None, call_kwargs: dict[str, Any], n_text: int) -> TokenLayout:
        if text is None:
            return unknown_text_layout(n_text, "text")
        n_clip = pipe.tokenizer_max_length
        clip = clip_layout(pipe.tokenizer, text, n_clip, "CLIP-L/G")
        n_t5 = n_text - n_clip
        if pipe.text_encoder_3 is None or pipe.tokenizer_3 is None:
            t5 = unknown_text_layout(n_t5, "T5(absent)")
        else:
            t5 = t5_layout(pipe.tokenizer_3, text, n_t5)
        return TokenLayout.concat([clip, t5])

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
        rows, cols = self.grid(pipe, call)
        img = image_layout(rows, cols)
        if name == "image":
            return img
        return TokenLayout.concat([img, self.text_layout(pipe, text, call_kwargs, n_keys - len(img))])

    def planned_layout(
        self, pipe: Any, name: str, text: str | None, call_kwargs: dict[str, Any], branch: str = "cond"
    ) -> TokenLayout:
        scale = pipe.vae_scale_factor
        height = call_kwargs.get("height") or pipe.default_sample_size * scale
        width = call_kwargs.get("width") or pipe.default_sample_size * scale
        call = DenoiserCall(0.0, 1, (int(height) // scale, int(width) // scale))
        n_text = pipe.tokenizer_max_length + int(call_kwargs.get("max_sequence_length", 256))
        rows, cols = self.grid(pipe, call)
        return self.layout(
            pipe, name, text, call_kwargs, call, rows * cols + (0 if name == "image" else n_text), branch=branch
        )

    def split_output(self, site: SiteInfo, output: Any) -> dict[str, torch.Tensor]:
        if isinstance(output, tuple):
            streams = {IMAGE: output[0]}
            if len(output) > 1 and output[1] is not None and TEXT not in site.unused_query_streams:
                streams[TEXT] = output[1]
            return streams
        return {IMAGE: output}
