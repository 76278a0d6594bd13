"""CogVideoX and CogVideoX 1.5 (``CogVideoXTransformer3DModel``): joint attention over ``[text, video]``.

Sites. Each block of ``transformer_blocks`` holds one ``attn1`` (kind ``joint``): the processor
concatenates ``[text, video]``, projects q, k, v together, applies LayerNorm QK-norm and, where the model
has it (CogVideoX-5b, 1.5), 3-D RoPE to the video rows, and calls ``F.scaled_dot_product_attention``
directly; its output is ``(video, text)`` after the shared output projection. The transformer discards
the text stream after the last block, so the last block's default query set is the video rows. Groups:
``all``.

Token layout ``joint``: ``[T5 max_sequence_length, video patches]``. The T5 positions are the prompt
padded to ``max_sequence_length`` (no mask reaches the attention: padding positions are real keys). The
video patches are in (frame, row, col) order: 2-D patches of every latent frame (CogVideoX 1.0) or 3-D
patches of ``patch_size_t`` frames (1.5, whose pipeline pads the latent frames to a multiple of it), so
``image_frame`` is the token frame (latent frame // ``patch_size_t``).

Clock and branches. ``timestep=`` keyword, scheduler timesteps as they are; the latent is
(B, F, C, H, W); CFG (``guidance_scale > 1``) is one batch ``[uncond, cond]``
(``torch.cat([negative, positive])``).
"""

from __future__ import annotations

from typing import Any

import torch

from interp.adapters.base import (
    IMAGE,
    TEXT,
    Adapter,
    DenoiserCall,
    SiteInfo,
    TokenLayout,
    call_default,
    unknown_text_layout,
    video_layout,
)
from interp.adapters.wan import padded_text_layout

JOINT = "joint"


class CogVideoXAdapter(Adapter):
    name = "cogvideox"
    pipeline_classes = ("CogVideoXPipeline",)
    denoiser_attr = "transformer"
    processors = ("CogVideoXAttnProcessor2_0", "FusedCogVideoXAttnProcessor2_0")
    prompt_embeds = ("prompt_embeds", "negative_prompt_embeds")
    tiny_module = "cogvideox"
    tiny_variants = ("cogvideox", "cogvideox1.5")

    def __init__(self) -> None:
        self._n_text: int | None = None  # the text keys of the current call (a shape, read in read_call)
        self._cfg: bool | None = None  # whether the trace's call runs CFG (the adapter is created per trace)

    def sites(self, pipe: Any) -> list[SiteInfo]:
        n = len(pipe.transformer.transformer_blocks)
        return [
            SiteInfo(f"transformer_blocks.{i}.attn1", i, JOINT, True, JOINT, JOINT, (TEXT,) if i == n - 1 else ())
            for i in range(n)
        ]

    def read_call(self, args: tuple, kwargs: dict[str, Any]) -> DenoiserCall:
        """A (B, F, C, H, W) latent; the text length from ``encoder_hidden_states``."""
        sample = self.argument(args, kwargs, self.sample_arg)
        enc = kwargs.get("encoder_hidden_states")
        self._n_text = int(enc.shape[1]) if enc is not None else None
        t, dtype = self.read_timestep(args, kwargs)
        b, f, _, h, w = sample.shape
        return DenoiserCall(t, int(b), (int(h), int(w)), dtype, latent_frames=int(f))

    def uses_cfg(self, pipe: Any) -> bool:
        """``guidance_scale > 1`` as the call set it (a local of ``__call__``; ``_guidance_scale`` holds it
        until ``use_dynamic_cfg`` rewrites it after the first step, so the first answer is kept)."""
        if self._cfg is None:
            self._cfg = float(getattr(pipe, "_guidance_scale", 1.0) or 1.0) > 1.0
        return self._cfg

    def video(self, pipe: Any, frames: int, height: int, width: int) -> TokenLayout:
        cfg = pipe.transformer.config
        p_t = cfg.patch_size_t or 1
        return video_layout((frames + p_t - 1) // p_t, height // cfg.patch_size, width // cfg.patch_size)

    @staticmethod
    def text(pipe: Any, text: str | None, n: int) -> TokenLayout:
        if text is None:
            return unknown_text_layout(n, "T5")
        return padded_text_layout(pipe.tokenizer, text, n, "T5")

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
            raise ValueError(f"unknown CogVideoX token layout {name!r}")
        vid = self.video(pipe, call.latent_frames, *call.latent_hw)
        n_text = n_keys - len(vid)
        if self._n_text is not None and self._n_text != n_text:
            raise RuntimeError(f"{n_keys} keys do not split into {self._n_text} text + {len(vid)} video tokens")
        return TokenLayout.concat([self.text(pipe, text, n_text), vid])

    def planned_layout(
        self, pipe: Any, name: str, text: str | None, call_kwargs: dict[str, Any], branch: str = "cond"
    ) -> TokenLayout:
        """The layout a call with these arguments will have, by CogVideoXPipeline's own size rules."""
        if name != JOINT:
            raise ValueError(f"unknown CogVideoX token layout {name!r}")
        cfg, ss, st = pipe.transformer.config, pipe.vae_scale_factor_spatial, pipe.vae_scale_factor_temporal
        latents = call_kwargs.get("latents")
        if latents is not None:
            frames, height, width = int(latents.shape[1]), int(latents.shape[-2]), int(latents.shape[-1])
        else:
            height = int(call_kwargs.get("height") or cfg.sample_height * ss) // ss
            width = int(call_kwargs.get("width") or cfg.sample_width * ss) // ss
            frames = (int(call_kwargs.get("num_frames") or cfg.sample_frames) - 1) // st + 1
        embeds = call_kwargs.get("prompt_embeds" if branch == "cond" else "negative_prompt_embeds")
        if embeds is not None:
            n_text = int(embeds.shape[1])
        else:
            n_text = int(call_kwargs.get("max_sequence_length") or call_default(pipe, "max_sequence_length"))
        return TokenLayout.concat([self.text(pipe, text, n_text), self.video(pipe, frames, height, width)])

    def split_output(self, site: SiteInfo, output: Any) -> dict[str, torch.Tensor]:
        video, text = output
        streams = {IMAGE: video}
        if TEXT not in site.unused_query_streams:
            streams[TEXT] = text
        return streams
