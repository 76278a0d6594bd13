"""SANA (``SanaTransformer2DModel``): ReLU linear self-attention and softmax cross-attention to Gemma.

Sites. Each block of ``transformer_blocks`` holds ``attn1``, linear attention
(``SanaLinearAttnProcessor2_0``: ``A_ij = relu(q_i).relu(k_j) / (sum_j' relu(q_i).relu(k_j') + 1e-15)``,
computed as ``(V K^T) Q`` without SDPA; kind ``linear``, ``SiteInfo.linear``), and ``attn2``, softmax
cross-attention from the image to the caption (``SanaAttnProcessor2_0``, which ends in
``F.scaled_dot_product_attention``; kind ``cross``). A bare integer addresses the block's ``attn2``;
groups ``all``, ``cross``, ``linear``. The engine observes a linear site at its processor's two
``torch.matmul`` calls (``interp.sites.intercept.LinearInterceptor``) and computes its statistics, maps
and pre-output norms exactly over A (``interp.kernels.linear``: incoming mass without materialising the
matrix, entropy over query chunks); edits of linear sites are refused before generation
(``interp.kernels.linear.linear_attention_output`` computes an edited output: a removed key leaves
numerator and denominator). :func:`linear_qk` reads relu(q), relu(k) from a module's input exactly as the
processor computes them.

Token layouts. ``image``: patches row-major (``PatchEmbed``), grid = latent size / ``patch_size``.
``gemma``: the caption keys. The positive prompt is prefixed with the pipeline's complex human
instruction (unless ``complex_human_instruction`` is empty), tokenized right-padded to
``n_instruction + max_sequence_length - 2``, then cut to ``[BOS] + the last max_sequence_length - 1``
positions (``select_index``); the negative prompt is tokenized to ``max_sequence_length`` without
instruction or cut. ``valid`` is the tokenizer's attention mask: the transformer turns it into the
additive bias ``(1 - mask) * -10000``, so padded keys get exactly 0 mass in fp32. Gemma adds no EOS;
padding is ``<pad>``.

Clock and branches. ``timestep=`` keyword (times the transformer's ``timestep_scale``, 1 in SANA 1.x);
CFG is one batch ``[uncond, cond]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from interp.adapters.base import (
    IMAGE,
    Adapter,
    DenoiserCall,
    SiteInfo,
    TokenLayout,
    call_default,
    image_layout,
    text_layout,
    unknown_text_layout,
)

IMAGE_LAYOUT, GEMMA_LAYOUT = "image", "gemma"


def gemma_layout(
    tokenizer: Any, text: str, max_length: int, *, instruction: str | None, select: bool, encoder: str = "Gemma"
) -> TokenLayout:
    """Gemma caption tokens as SanaPipeline builds them (instruction prefix, right padding, ``select_index``)."""
    if instruction:
        text = instruction + text
        total = len(tokenizer.encode(instruction)) + max_length - 2
    else:
        total = max_length
    enc = tokenizer(
        text, padding="max_length", max_length=total, truncation=True, add_special_tokens=True, padding_side="right"
    )
    ids, mask = np.asarray(enc.input_ids), np.asarray(enc.attention_mask)
    if select:
        index = [0, *range(total - max_length + 1, total)]
        ids, mask = ids[index], mask[index]
    lay = text_layout(
        ids.tolist(),
        tokenizer.convert_ids_to_tokens(ids.tolist()),
        encoder,
        bos_id=tokenizer.bos_token_id,
        eos_id=None,
        pad_id=None,
        attention_mask=mask.tolist(),
    )
    lay.is_pad = ids == tokenizer.pad_token_id
    return lay


def linear_qk(attn: nn.Module, hidden_states: Tensor) -> tuple[Tensor, Tensor]:
    """``relu(q)``, ``relu(k)`` (B, H, N, D) in float32 of a ``SanaLinearAttnProcessor2_0`` self-attention
    on ``hidden_states``, by the processor's own operations (projections, optional QK-norm, head split)."""
    q, k = attn.to_q(hidden_states), attn.to_k(hidden_states)
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    q = q.transpose(1, 2).unflatten(1, (attn.heads, -1))  # (B, H, D, N) as in the processor
    k = k.transpose(1, 2).unflatten(1, (attn.heads, -1)).transpose(2, 3)  # (B, H, N, D)
    return torch.relu(q).float().transpose(2, 3), torch.relu(k).float()


class SanaAdapter(Adapter):
    name = "sana"
    pipeline_classes = ("SanaPipeline",)
    denoiser_attr = "transformer"
    processors = ("SanaAttnProcessor2_0",)
    linear_processors = ("SanaLinearAttnProcessor2_0",)
    prompt_embeds = None  # encode_prompt returns masks the call must get back: sweeps pass the text
    tiny_module = "sana"
    tiny_variants = ("sana",)

    def sites(self, pipe: Any) -> list[SiteInfo]:
        out = []
        for i, block in enumerate(pipe.transformer.transformer_blocks):
            out.append(
                SiteInfo(f"transformer_blocks.{i}.attn1", i, "linear", False, IMAGE_LAYOUT, IMAGE_LAYOUT, linear=True)
            )
            if getattr(block, "attn2", None) is not None:
                out.append(SiteInfo(f"transformer_blocks.{i}.attn2", i, "cross", True, GEMMA_LAYOUT, IMAGE_LAYOUT))
        return out

    @staticmethod
    def linear_sites(pipe: Any) -> list[str]:
        """Paths of the linear self-attention modules (``interp.kernels.linear`` computes their statistics)."""
        return [f"transformer_blocks.{i}.attn1" for i in range(len(pipe.transformer.transformer_blocks))]

    kind_groups = (("cross", "cross"), ("linear", "linear"))

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
        if name == IMAGE_LAYOUT:
            p = pipe.transformer.config.patch_size
            return image_layout(call.latent_hw[0] // p, call.latent_hw[1] // p)
        if name != GEMMA_LAYOUT:
            raise ValueError(f"unknown SANA token layout {name!r}")
        if text is None:
            return unknown_text_layout(n_keys, "Gemma")
        prepared = pipe._text_preprocessing(text, clean_caption=bool(call_kwargs.get("clean_caption", False)))[0]
        instruction = None
        if branch == "cond":
            chi = call_kwargs.get("complex_human_instruction", call_default(pipe, "complex_human_instruction"))
            instruction = "\n".join(chi) if chi else None
        return gemma_layout(pipe.tokenizer, prepared, n_keys, instruction=instruction, select=branch == "cond")

    def planned_layout(
        self, pipe: Any, name: str, text: str | None, call_kwargs: dict[str, Any], branch: str = "cond"
    ) -> TokenLayout | None:
        """The layout a call with these arguments will have, by SanaPipeline's size rules (binning included)."""
        if name == GEMMA_LAYOUT:
            embeds = call_kwargs.get("prompt_embeds")
            n = int(embeds.shape[1]) if embeds is not None else None
            n = n or int(call_kwargs.get("max_sequence_length") or call_default(pipe, "max_sequence_length"))
            return self.layout(pipe, name, text, call_kwargs, DenoiserCall(0.0, 1, (0, 0)), n, branch=branch)
        if name != IMAGE_LAYOUT:
            raise ValueError(f"unknown SANA token layout {name!r}")
        s, size = pipe.vae_scale_factor, pipe.transformer.config.sample_size
        height = int(call_kwargs.get("height") or size * s)
        width = int(call_kwargs.get("width") or size * s)
        latents = call_kwargs.get("latents")
        if latents is not None:
            h, w = int(latents.shape[-2]), int(latents.shape[-1])
        else:
            if call_kwargs.get("use_resolution_binning", True):
                from diffusers.pipelines.sana import pipeline_sana as sp

                bins = {128: sp.ASPECT_RATIO_4096_BIN, 64: sp.ASPECT_RATIO_2048_BIN, 32: sp.ASPECT_RATIO_1024_BIN}
                bins[16] = sp.ASPECT_RATIO_512_BIN
                if size not in bins:
                    return None
                height, width = pipe.image_processor.classify_height_width_bin(height, width, ratios=bins[size])
            h, w = height // s, width // s
        return self.layout(pipe, name, text, call_kwargs, DenoiserCall(0.0, 1, (h, w)), 0, branch=branch)

    def split_output(self, site: SiteInfo, output: Any) -> dict[str, torch.Tensor]:
        return {IMAGE: output[0] if isinstance(output, tuple) else output}
