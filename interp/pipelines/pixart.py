"""Built-in tiny PixArt: the real ``PixArtSigmaPipeline`` from small configs, no download.

Layout kept from PixArt-Sigma: one T5 text encoder whose tokens are the cross-attention keys, passed with
their padding attention mask (to T5 and to every ``attn2``); transformer blocks with image self-attention
``attn1`` and cross-attention ``attn2``; adaLN-single timestep conditioning; learned variance
(``out_channels = 2 x in_channels``; the pipeline keeps the first half); DPM-Solver++ multistep.

Sizes: 4 blocks, 4 heads of dim 8, patch 2, 4 latent channels, a VAE with scale factor 8 (as the real
one); default image 256x256 px, a 32x32 latent, 16x16 = 256 image tokens. With the transformer's
``sample_size`` 32, the default ``use_resolution_binning=True`` snaps requests to the 256 px aspect-ratio
bins, so the default size is unchanged by it; other sizes need ``use_resolution_binning=False``. A fast,
environment-independent run overrides two more call defaults (see ``FAST_CALL_KWARGS``):
``max_sequence_length`` (300 T5 keys by default) and ``clean_caption`` (it rewrites the prompt only where
``bs4`` and ``ftfy`` are installed).
"""

from __future__ import annotations

import torch
from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

from interp.pipelines import components
from interp.pipelines.tokenizers import t5_tokenizer

LATENT_SIZE = 32
FAST_CALL_KWARGS = {
    "num_inference_steps": 4,
    "guidance_scale": 4.5,
    "max_sequence_length": 32,
    "clean_caption": False,
}


def build(variant: str = "pixart", *, dtype: torch.dtype = torch.float32) -> PixArtSigmaPipeline:
    """Build the tiny PixArt-Sigma pipeline, deterministic and in eval mode."""
    if variant != "pixart":
        raise ValueError(f"unknown PixArt variant {variant!r}; expected 'pixart'")
    tokenizer = t5_tokenizer()
    text_encoder = components.t5_encoder("pixart/text_encoder", tokenizer, d_model=64)
    with components.seeded("pixart/transformer"):
        transformer = PixArtTransformer2DModel(
            num_attention_heads=4,
            attention_head_dim=8,
            in_channels=4,
            out_channels=8,
            num_layers=4,
            cross_attention_dim=32,  # = inner dim: captions are projected to it
            caption_channels=64,  # T5 width
            sample_size=LATENT_SIZE,
            patch_size=2,
            norm_type="ada_norm_single",
            use_additional_conditions=False,
        )
    # Scale factor 8 as in the real VAE: the default 256 px image is one of the 256 px aspect-ratio bins
    # that ``use_resolution_binning`` (on by default) snaps to, so a default call stays at 256 tokens.
    vae = components.vae("pixart/vae", latent_channels=4, scaling_factor=0.13025, block_out_channels=(8, 8, 16, 16))
    scheduler = DPMSolverMultistepScheduler(  # PixArt-Sigma's scheduler config
        num_train_timesteps=1000,
        beta_start=0.0001,
        beta_end=0.02,
        beta_schedule="linear",
        prediction_type="epsilon",
        solver_order=2,
        algorithm_type="dpmsolver++",
        lower_order_final=True,
    )
    pipe = PixArtSigmaPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    return components.finish(pipe, dtype)
