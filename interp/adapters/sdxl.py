"""Stable Diffusion XL (``UNet2DConditionModel``): self- and cross-attention in down, mid and up blocks.

Sites. Every ``BasicTransformerBlock`` of the UNet's ``Transformer2DModel``s holds two attentions:
``attn1`` (self-attention over the image patches of that resolution) and ``attn2`` (cross-attention,
image queries over the 77 CLIP keys). Blocks are numbered in *execution* order, down blocks, then the
mid block, then the up blocks (``named_modules`` lists the up blocks before the mid block, so the
order is built explicitly); a bare integer addresses the block's ``attn1``, ``attn2`` needs its module
path or the ``cross`` group. Groups: ``all``, ``down``, ``mid``, ``up``, ``self`` (every ``attn1``),
``cross`` (every ``attn2``).

Token layouts. Image patches are row-major (``Transformer2DModel`` flattens (H, W) that way); the grid
of a site is the latent grid after the downsamplers that run before it, each a stride-2 convolution
(padding 1, so ``ceil(n / 2)``). A layout is named by that downsampling factor (``image/2``,
``image/4``), not by pixel size, so the name is the same for every image size. The cross-attention
keys are the 77 positions of the two CLIP tokenizers, whose hidden states the pipeline concatenates
along channels: one key is both encoders' token at that position (``CLIP-L/G``, labelled from the
first tokenizer, which pads with its end-of-text token; ``prompt_2`` is not reflected in the labels).
With ``force_zeros_for_empty_prompt`` (SDXL-base's config) and no ``negative_prompt``, the pipeline
replaces the uncond embeddings by zeros: those keys are labelled ``encoder="zeros"`` with no token
identity (the layout only sees the text, so an empty *positive* prompt under the same conditions is
labelled the same way; see docs/architectures.md).

Clock and branches. The pipeline calls ``unet(latents, t, ...)``: the timestep is the *second
positional* argument (or ``timestep=``). A CFG batch is ``[uncond, cond]`` halves, the base rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from interp.adapters.base import (
    IMAGE,
    PROMPT_EMBEDS_4,
    Adapter,
    DenoiserCall,
    SiteInfo,
    TokenLayout,
    image_layout,
    unknown_text_layout,
)
from interp.adapters.sd3 import clip_layout

CLIP_LAYOUT = "clip"
REGIONS = ("down", "mid", "up")


def _region_blocks(unet: Any) -> list[tuple[str, str, Any]]:
    """(region, path prefix, block module) of every UNet block in execution order."""
    out = [("down", f"down_blocks.{i}", b) for i, b in enumerate(unet.down_blocks)]
    if getattr(unet, "mid_block", None) is not None:
        out.append(("mid", "mid_block", unet.mid_block))
    out += [("up", f"up_blocks.{i}", b) for i, b in enumerate(unet.up_blocks)]
    return out


def unet_sites(unet: Any) -> list[tuple[str, int, str, int]]:
    """(attention module path, block index, region, downsampling factor) in execution order.

    The factor is 2 ** (number of downsamplers that ran before the block): down block i runs at the
    resolution its predecessors' downsamplers left, the mid block at the lowest, and each up block
    halves the factor after its own upsampler.
    """
    out: list[tuple[str, int, str, int]] = []
    factor, block = 1, 0
    for region, prefix, mod in _region_blocks(unet):
        for j, tr in enumerate(getattr(mod, "attentions", None) or []):
            for k, basic in enumerate(getattr(tr, "transformer_blocks", [])):
                for name in ("attn1", "attn2"):
                    if getattr(basic, name, None) is not None:
                        out.append((f"{prefix}.attentions.{j}.transformer_blocks.{k}.{name}", block, region, factor))
                block += 1
        if region == "down" and getattr(mod, "downsamplers", None):
            factor *= 2
        if region == "up" and getattr(mod, "upsamplers", None):
            factor //= 2
    return out


def image_layout_name(factor: int) -> str:
    return f"image/{factor}"


def downsampled(n: int, factor: int) -> int:
    """Size after log2(factor) stride-2, padding-1, kernel-3 convolutions: ceil(n / 2) each time."""
    while factor > 1:
        n, factor = (n + 1) // 2, factor // 2
    return n


class SDXLAdapter(Adapter):
    name = "sdxl"
    pipeline_classes = ("StableDiffusionXLPipeline",)
    denoiser_attr = "unet"
    processors = ("AttnProcessor2_0", "FusedAttnProcessor2_0")
    prompt_embeds = PROMPT_EMBEDS_4
    tiny_module = "sdxl"
    tiny_variants = ("sdxl",)
    sample_arg = ("sample", 0)
    timestep_arg = ("timestep", 1)

    def sites(self, pipe: Any) -> list[SiteInfo]:
        out = []
        for path, block, _region, factor in unet_sites(pipe.unet):
            img = image_layout_name(factor)
            if path.endswith("attn1"):
                out.append(SiteInfo(path, block, "self", True, img, img))
            else:
                out.append(SiteInfo(path, block, "cross", False, CLIP_LAYOUT, img))
        if not out:
            raise ValueError("this UNet has no transformer blocks: nothing for interp to observe")
        return out

    def groups(self, sites: Any) -> dict[str, list[str]]:
        groups = super().groups(sites)
        prefixes = {"down": "down_blocks.", "mid": "mid_block.", "up": "up_blocks."}
        for region in REGIONS:
            groups[region] = [s.path for s in sites if s.path.startswith(prefixes[region])]
        groups["self"] = [s.path for s in sites if s.kind == "self"]
        groups["cross"] = [s.path for s in sites if s.kind == "cross"]
        return {k: v for k, v in groups.items() if v}

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
        if name.startswith("image/"):
            factor = int(name.split("/", 1)[1])
            h, w = call.latent_hw
            return image_layout(downsampled(h, factor), downsampled(w, factor))
        if name != CLIP_LAYOUT:
            raise ValueError(f"unknown SDXL token layout {name!r}")
        if text is None:
            return unknown_text_layout(n_keys, "CLIP-L/G")
        if branch == "uncond" and self._zeroed_negative(pipe, call_kwargs):
            return _zeros_layout(n_keys)
        return clip_layout(pipe.tokenizer, text, n_keys, "CLIP-L/G")

    def planned_layout(
        self, pipe: Any, name: str, text: str | None, call_kwargs: dict[str, Any], branch: str = "cond"
    ) -> TokenLayout | None:
        """The layout a call with these arguments will have, by the pipeline's own size rules."""
        latents = call_kwargs.get("latents")
        if latents is not None:
            h, w = int(latents.shape[-2]), int(latents.shape[-1])
        else:
            s = pipe.vae_scale_factor
            h = int(call_kwargs.get("height") or pipe.default_sample_size * s) // s
            w = int(call_kwargs.get("width") or pipe.default_sample_size * s) // s
        call = DenoiserCall(0.0, 1, (h, w))
        if name == CLIP_LAYOUT:
            embeds = call_kwargs.get("prompt_embeds")
            n = int(embeds.shape[1]) if embeds is not None else int(pipe.tokenizer.model_max_length)
        else:
            n = len(self.layout(pipe, name, None, call_kwargs, call, 0))
        return self.layout(pipe, name, text, call_kwargs, call, n, branch=branch)

    @staticmethod
    def _zeroed_negative(pipe: Any, call_kwargs: dict[str, Any]) -> bool:
        """Whether the pipeline replaces the uncond text embeddings by zeros (its own rule)."""
        return (
            bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False))
            and call_kwargs.get("negative_prompt") is None
            and call_kwargs.get("negative_prompt_embeds") is None
        )

    def split_output(self, site: SiteInfo, output: Any) -> dict[str, torch.Tensor]:
        return {IMAGE: output[0] if isinstance(output, tuple) else output}


def _zeros_layout(n: int) -> TokenLayout:
    lay = unknown_text_layout(n, "zeros")
    lay.token_str = np.full(n, "", dtype=object).astype(str)
    return lay
