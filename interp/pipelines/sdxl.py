"""Built-in tiny SDXL: the real ``StableDiffusionXLPipeline`` from small configs, no download.

Layout kept from the real model: two CLIP text encoders (CLIP-L without projection, CLIP-G with projection;
penultimate hidden states concatenated along channels as the 77 cross-attention keys, CLIP-G's projection
as the pooled embedding), a UNet with ``addition_embed_type="text_time"`` (pooled embedding + the six size
and crop conditions), and cross-attention transformer blocks in down, mid and up blocks, each with a
self-attention ``attn1`` (image keys) and a cross-attention ``attn2`` (77 CLIP keys). ``tokenizer`` pads
with its end-of-text token, ``tokenizer_2`` with ``"!"``, as in the real checkpoint.

Sizes: latent 32x32 (64 px images, VAE scale factor 2), three resolution levels like SDXL's
(``DownBlock2D``, then two ``CrossAttnDownBlock2D``); attention at 16x16 (256 image tokens, 2 heads of dim
16) and 8x8 (64 image tokens, 4 heads of dim 8; two transformer layers, as SDXL deepens its lowest
levels). 11 transformer blocks in all: ``down_blocks.1`` 1, ``down_blocks.2`` 2, ``mid_block`` 2,
``up_blocks.0`` 4, ``up_blocks.1`` 2. Diffusers names the UNet's head *count* ``attention_head_dim``.
"""

from __future__ import annotations

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

from interp.pipelines import components
from interp.pipelines.tokenizers import clip_tokenizer

LATENT_SIZE = 32
TIME_EMBED_DIM = 8
FAST_CALL_KWARGS = {"num_inference_steps": 4, "guidance_scale": 5.0}


def build(variant: str = "sdxl", *, dtype: torch.dtype = torch.float32) -> StableDiffusionXLPipeline:
    """Build the tiny SDXL pipeline, deterministic and in eval mode."""
    if variant != "sdxl":
        raise ValueError(f"unknown SDXL variant {variant!r}; expected 'sdxl'")
    tokenizer, tokenizer_2 = clip_tokenizer(), clip_tokenizer(pad_token="!")
    text_encoder = components.clip_text_encoder(
        "sdxl/text_encoder", tokenizer, projection_dim=None, hidden_act="quick_gelu"
    )
    text_encoder_2 = components.clip_text_encoder(
        "sdxl/text_encoder_2", tokenizer_2, projection_dim=32, hidden_act="gelu"
    )
    with components.seeded("sdxl/unet"):
        unet = UNet2DConditionModel(
            sample_size=LATENT_SIZE,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(16, 32, 32),
            layers_per_block=1,
            attention_head_dim=(2, 2, 4),  # head counts per level (diffusers' naming)
            transformer_layers_per_block=(1, 1, 2),
            cross_attention_dim=64,  # CLIP-L + CLIP-G hidden sizes (32 + 32)
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=TIME_EMBED_DIM,
            projection_class_embeddings_input_dim=6 * TIME_EMBED_DIM + 32,  # 6 time ids + CLIP-G projection
            norm_num_groups=8,
        )
    vae = components.vae("sdxl/vae", latent_channels=4, scaling_factor=0.13025)
    scheduler = EulerDiscreteScheduler(  # SDXL-base's scheduler config
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        steps_offset=1,
        timestep_spacing="leading",
        interpolation_type="linear",
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    return components.finish(pipe, dtype)
