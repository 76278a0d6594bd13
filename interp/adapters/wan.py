"""Wan 2.x text-to-video (``WanTransformer3DModel``): video self-attention, UMT5 cross-attention.

Sites. Each block of ``blocks`` holds ``attn1`` (kind ``self``: video queries and keys, after RMS
QK-norm across heads and 3-axis RoPE over frame, row and column) and ``attn2`` (kind ``cross``: video
queries, UMT5 keys). Both run ``WanAttnProcessor`` through diffusers' attention dispatcher, whose native
backend calls ``F.scaled_dot_product_attention``. A bare integer addresses the block's ``attn1``;
``attn2`` needs its module path or the ``cross`` group. Groups: ``all``, ``self``, ``cross``.

Token layouts. ``video``: the latent patches in (frame, row, col) order (the 3-D patch embedding is
flattened over (F, H, W)), ``image_frame`` the latent frame (``num_frames`` = 1 + 4k pixel frames give
1 + k latent frames). ``umt5``: the ``max_sequence_length`` positions of the prompt after the
pipeline's own ``prompt_clean``; the pipeline zeroes the embeddings after the prompt but passes no
attention mask, so the padding positions are real keys (``valid``) that the softmax gives mass to.

Clock and branches. ``timestep=`` keyword (scheduler timesteps as they are). The pipeline runs the
positive prompt first (``cache_context("cond")``) and, under CFG, the negative prompt in a second call,
batch 1 each: call 0 is ``cond``, call 1 ``uncond``. Wan 2.2's two-expert pipelines (a
``transformer_2`` for the low-noise steps) are refused before generation: only ``transformer`` would be
observed. The image-to-video variant (``added_kv_proj_dim``: image keys inside ``attn2``, two kernel
calls in one site) is another pipeline class and not described here.
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
    text_layout,
    unknown_text_layout,
    video_layout,
)

VIDEO_LAYOUT, TEXT_LAYOUT = "video", "umt5"


def padded_text_layout(tokenizer: Any, text: str, max_length: int, encoder: str) -> TokenLayout:
    """A T5-family prompt padded to ``max_length``: every position a key (no mask reaches the attention)."""
    ids = list(
        tokenizer(text, padding="max_length", max_length=max_length, truncation=True, add_special_tokens=True).input_ids
    )
    return text_layout(
        ids,
        tokenizer.convert_ids_to_tokens(ids),
        encoder,
        bos_id=None,
        eos_id=tokenizer.eos_token_id,
        pad_id=tokenizer.pad_token_id,
    )


class WanAdapter(Adapter):
    name = "wan"
    pipeline_classes = ("WanPipeline",)
    denoiser_attr = "transformer"
    processors = ("WanAttnProcessor",)
    dispatch_processors = ("WanAttnProcessor",)
    prompt_embeds = ("prompt_embeds", "negative_prompt_embeds")
    tiny_module = "wan"
    tiny_variants = ("wan",)
    cfg_calls = True

    def sites(self, pipe: Any) -> list[SiteInfo]:
        if getattr(pipe, "transformer_2", None) is not None:
            raise NotImplementedError(
                "this WanPipeline has a second expert (transformer_2, Wan 2.2 A14B) for the low-noise steps; "
                "interp observes one denoiser per pipeline: trace a pipeline without transformer_2"
            )
        out = []
        for i, block in enumerate(pipe.transformer.blocks):
            out.append(SiteInfo(f"blocks.{i}.attn1", i, "self", True, VIDEO_LAYOUT, VIDEO_LAYOUT))
            if getattr(block.attn2, "add_k_proj", None) is not None:
                raise NotImplementedError(
                    f"blocks.{i}.attn2 attends to image embeddings too (Wan image-to-video): not supported"
                )
            out.append(SiteInfo(f"blocks.{i}.attn2", i, "cross", False, TEXT_LAYOUT, VIDEO_LAYOUT))
        return out

    kind_groups = (("self", "self"), ("cross", "cross"))

    def read_call(self, args: tuple, kwargs: dict[str, Any]) -> DenoiserCall:
        """A (B, C, F, H, W) latent."""
        sample = self.argument(args, kwargs, self.sample_arg)
        t, dtype = self.read_timestep(args, kwargs)
        b, _, f, h, w = sample.shape
        return DenoiserCall(t, int(b), (int(h), int(w)), dtype, latent_frames=int(f))

    def branches(self, batch: int, call: int, cfg: bool) -> list[str]:
        if call == 0:
            return ["cond"] * batch
        if call == 1:
            return ["uncond"] * batch
        raise RuntimeError(
            f"the Wan transformer ran {call + 1} times in one denoising step; interp knows WanPipeline's "
            "CFG (cond, then uncond) and cannot label further calls"
        )

    def video(self, pipe: Any, frames: int, height: int, width: int) -> TokenLayout:
        p_t, p_h, p_w = pipe.transformer.config.patch_size
        return video_layout(frames // p_t, height // p_h, width // p_w)

    def text(self, pipe: Any, text: str | None, n: int) -> TokenLayout:
        if text is None:
            return unknown_text_layout(n, "UMT5")
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean

        return padded_text_layout(pipe.tokenizer, prompt_clean(text), n, "UMT5")

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
        if name == VIDEO_LAYOUT:
            return self.video(pipe, call.latent_frames, *call.latent_hw)
        if name != TEXT_LAYOUT:
            raise ValueError(f"unknown Wan token layout {name!r}")
        return self.text(pipe, text, n_keys)

    def planned_layout(
        self, pipe: Any, name: str, text: str | None, call_kwargs: dict[str, Any], branch: str = "cond"
    ) -> TokenLayout:
        """The layout a call with these arguments will have, by WanPipeline's own size rules."""
        if name == TEXT_LAYOUT:
            embeds = call_kwargs.get("prompt_embeds" if branch == "cond" else "negative_prompt_embeds")
            n = int(embeds.shape[1]) if embeds is not None else None
            n = n or int(call_kwargs.get("max_sequence_length") or call_default(pipe, "max_sequence_length"))
            return self.text(pipe, text, n)
        if name != VIDEO_LAYOUT:
            raise ValueError(f"unknown Wan token layout {name!r}")
        latents = call_kwargs.get("latents")
        if latents is not None:
            return self.video(pipe, *(int(x) for x in latents.shape[-3:]))
        st, ss = pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial
        frames = int(call_kwargs.get("num_frames") or call_default(pipe, "num_frames"))
        if frames % st != 1:  # the pipeline rounds it so, with a warning
            frames = frames // st * st + 1
        frames = max(frames, 1)
        _, p_h, p_w = pipe.transformer.config.patch_size
        height = int(call_kwargs.get("height") or call_default(pipe, "height"))
        width = int(call_kwargs.get("width") or call_default(pipe, "width"))
        height, width = height // (ss * p_h) * (ss * p_h), width // (ss * p_w) * (ss * p_w)  # rounded down too
        return self.video(pipe, (frames - 1) // st + 1, height // ss, width // ss)

    def split_output(self, site: SiteInfo, output: Any) -> dict[str, torch.Tensor]:
        return {IMAGE: output[0] if isinstance(output, tuple) else output}
