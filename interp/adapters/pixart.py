"""PixArt-Sigma / PixArt-Alpha (``PixArtTransformer2DModel``): image self-attention, T5 cross-attention.

Sites. Each ``BasicTransformerBlock`` of ``transformer_blocks`` holds ``attn1`` (kind ``self``: image
queries and keys) and ``attn2`` (kind ``cross``: image queries, T5 keys); both run
``AttnProcessor2_0``, which ends in ``F.scaled_dot_product_attention``. A bare integer addresses the
block's ``attn1``; ``attn2`` needs its module path or the ``cross`` group. Groups: ``all``, ``self``,
``cross``.

Token layouts. ``image``: patches row-major (``PatchEmbed`` flattens (H, W) that way), grid = latent
size / ``patch_size``. ``t5``: the ``max_sequence_length`` T5 positions of the (preprocessed) prompt,
with the tokenizer's attention mask as the ``valid`` flags. The pipeline passes the same mask to the
transformer, which turns it into an additive bias ``(1 - mask) * -10000`` of shape (B, 1, Nk);
``AttnProcessor2_0`` hands it to SDPA as a (B, heads, 1, Nk) float ``attn_mask``. The observer adds
that bias to the logits, so padded keys get exp(-10000 + s) / Z, which underflows to exactly 0 in fp32:
statistics honour the mask (tested). The text is preprocessed by the pipeline's own
``_text_preprocessing`` (lower-casing, or caption cleaning with ``clean_caption=True`` where bs4 and
ftfy are installed) before tokenizing, as the pipeline does.

Clock and branches. ``timestep=`` keyword. ``PixArtSigmaPipeline`` keeps its CFG switch in a local
variable (no pipeline attribute), so a batch is read as ``[uncond, cond]`` halves whenever it is even:
a trace runs one prompt and one image per prompt, so an even batch means CFG.
"""

from __future__ import annotations

from typing import Any

import torch

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

IMAGE_LAYOUT, T5_LAYOUT = "image", "t5"


def t5_masked_layout(tokenizer: Any, text: str, max_length: int, encoder: str = "T5") -> TokenLayout:
    """T5 tokens padded to ``max_length`` with the tokenizer's attention mask as validity."""
    enc = tokenizer(text, padding="max_length", max_length=max_length, truncation=True, add_special_tokens=True)
    ids = list(enc.input_ids)
    return text_layout(
        ids,
        tokenizer.convert_ids_to_tokens(ids),
        encoder,
        bos_id=None,
        eos_id=tokenizer.eos_token_id,
        pad_id=tokenizer.pad_token_id,
        attention_mask=list(enc.attention_mask),
    )


def _aspect_ratio_bins(pipeline_class: str, sample_size: int) -> dict | None:
    """The aspect-ratio bins the pipeline snaps sizes to for this ``sample_size`` (its own table)."""
    from diffusers.pipelines.pixart_alpha import pipeline_pixart_alpha as alpha
    from diffusers.pipelines.pixart_alpha import pipeline_pixart_sigma as sigma

    bins = {128: alpha.ASPECT_RATIO_1024_BIN, 64: alpha.ASPECT_RATIO_512_BIN, 32: alpha.ASPECT_RATIO_256_BIN}
    if pipeline_class == "PixArtSigmaPipeline":
        bins[256] = sigma.ASPECT_RATIO_2048_BIN
    return bins.get(sample_size)


class PixArtAdapter(Adapter):
    name = "pixart"
    pipeline_classes = ("PixArtSigmaPipeline", "PixArtAlphaPipeline")
    denoiser_attr = "transformer"
    processors = ("AttnProcessor2_0", "FusedAttnProcessor2_0", "PixArtAlphaAttnProcessor2_0")
    # prompt_embeds stays None: PixArt's __call__ defaults negative_prompt to "" and refuses it beside
    # negative_prompt_embeds, and the tracer drops the sweep's negative_prompt rather than passing None,
    # so PixArt sweeps pass the prompt text (correct, only slower) until that changes.
    tiny_module = "pixart"
    tiny_variants = ("pixart",)
    timestep_arg = ("timestep", 3)

    def sites(self, pipe: Any) -> list[SiteInfo]:
        out = []
        for i, block in enumerate(pipe.transformer.transformer_blocks):
            out.append(SiteInfo(f"transformer_blocks.{i}.attn1", i, "self", True, IMAGE_LAYOUT, IMAGE_LAYOUT))
            if getattr(block, "attn2", None) is not None:
                out.append(SiteInfo(f"transformer_blocks.{i}.attn2", i, "cross", False, T5_LAYOUT, IMAGE_LAYOUT))
        return out

    kind_groups = (("self", "self"), ("cross", "cross"))

    def uses_cfg(self, pipe: Any) -> bool:
        return True  # see the module docstring: an even batch of one prompt is a CFG batch

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
        if name != T5_LAYOUT:
            raise ValueError(f"unknown PixArt token layout {name!r}")
        if text is None:
            return unknown_text_layout(n_keys, "T5")
        clean = bool(call_kwargs.get("clean_caption", True))
        prepared = pipe._text_preprocessing(text, clean_caption=clean)[0]
        return t5_masked_layout(pipe.tokenizer, prepared, n_keys)

    def planned_layout(
        self, pipe: Any, name: str, text: str | None, call_kwargs: dict[str, Any], branch: str = "cond"
    ) -> TokenLayout | None:
        """The layout a call with these arguments will have, by the pipeline's own size rules (default
        size from the transformer's ``sample_size``, then resolution binning); None where those rules are
        unknown (a ``sample_size`` without aspect-ratio bins)."""
        if name == T5_LAYOUT:
            embeds = call_kwargs.get("prompt_embeds")
            if embeds is not None:
                n = int(embeds.shape[1])
            else:
                n = int(call_kwargs.get("max_sequence_length") or call_default(pipe, "max_sequence_length"))
            return self.layout(pipe, name, text, call_kwargs, DenoiserCall(0.0, 1, (0, 0)), n, branch=branch)
        if name != IMAGE_LAYOUT:
            raise ValueError(f"unknown PixArt token layout {name!r}")
        latents = call_kwargs.get("latents")
        s, size = pipe.vae_scale_factor, pipe.transformer.config.sample_size
        height = int(call_kwargs.get("height") or size * s)
        width = int(call_kwargs.get("width") or size * s)
        if latents is not None:
            h, w = int(latents.shape[-2]), int(latents.shape[-1])
        else:
            if call_kwargs.get("use_resolution_binning", True):
                bins = _aspect_ratio_bins(type(pipe).__name__, size)
                if bins is None:
                    return None
                height, width = pipe.image_processor.classify_height_width_bin(height, width, ratios=bins)
            h, w = height // s, width // s
        return self.layout(pipe, name, text, call_kwargs, DenoiserCall(0.0, 1, (h, w)), 0, branch=branch)

    def split_output(self, site: SiteInfo, output: Any) -> dict[str, torch.Tensor]:
        return {IMAGE: output[0] if isinstance(output, tuple) else output}
