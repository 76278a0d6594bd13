"""Built-in tiny SD3 and SD3.5: the real ``StableDiffusion3Pipeline`` from small configs, no download.

Layout kept from the real models: three text encoders (CLIP-L and CLIP-G with projection, whose hidden
states are concatenated along channels and zero-padded to T5's width; T5 v1.1), and the joint sequence
``[image, CLIP 77, T5 max_sequence_length]`` in every block; the last block is ``context_pre_only``.
``tokenizer`` (CLIP-L) pads with its end-of-text token, ``tokenizer_2`` (CLIP-G) with ``"!"``.

Sizes: 4 joint blocks, 4 heads of dim 8 (inner dim 32), 16 latent channels, patch 2, a VAE with scale
factor 2. The default 64x64 px image is a 32x32 latent, i.e. 16x16 = 256 image tokens. SD3's ``__call__``
pads T5 to ``max_sequence_length`` (256 by default, as in the real pipeline: 77 + 256 = 333 text keys);
a pipeline class's call defaults cannot be changed on an instance, so a fast run passes
``max_sequence_length=32`` itself (see ``FAST_CALL_KWARGS``).

SD3.5 (``variant="sd3.5"``) differs as SD3.5-medium does: RMS QK-norm in every attention, and dual
attention (an extra image-only self-attention ``attn2``) in blocks 0 and 1.
"""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

from interp.pipelines import components
from interp.pipelines.tokenizers import clip_tokenizer, t5_tokenizer

VARIANTS = ("sd3", "sd3.5")
NUM_LAYERS = 4
LATENT_SIZE = 32  # transformer.config.sample_size: default image = LATENT_SIZE * vae_scale_factor = 64 px
FAST_CALL_KWARGS = {"num_inference_steps": 4, "guidance_scale": 5.0, "max_sequence_length": 32}


def build(variant: str = "sd3", *, dtype: torch.dtype = torch.float32) -> StableDiffusion3Pipeline:
    """Build the tiny SD3 (``"sd3"``) or SD3.5 (``"sd3.5"``) pipeline, deterministic and in eval mode."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown SD3 variant {variant!r}; expected one of {VARIANTS}")
    tag = variant
    tokenizer, tokenizer_2, tokenizer_3 = clip_tokenizer(), clip_tokenizer(pad_token="!"), t5_tokenizer()
    text_encoder = components.clip_text_encoder(f"{tag}/text_encoder", tokenizer, hidden_act="quick_gelu")
    text_encoder_2 = components.clip_text_encoder(f"{tag}/text_encoder_2", tokenizer_2, hidden_act="gelu")
    # T5 width = joint_attention_dim >= CLIP-L + CLIP-G hidden sizes (32 + 32), as 4096 >= 768 + 1280.
    text_encoder_3 = components.t5_encoder(f"{tag}/text_encoder_3", tokenizer_3, d_model=64)
    extra = {"qk_norm": "rms_norm", "dual_attention_layers": (0, 1)} if variant == "sd3.5" else {}
    with components.seeded(f"{tag}/transformer"):
        transformer = SD3Transformer2DModel(
            sample_size=LATENT_SIZE,
            patch_size=2,
            in_channels=16,
            num_layers=NUM_LAYERS,
            attention_head_dim=8,
            num_attention_heads=4,
            joint_attention_dim=64,
            caption_projection_dim=32,
            pooled_projection_dim=64,  # CLIP-L + CLIP-G projections (32 + 32)
            out_channels=16,
            pos_embed_max_size=48,
            **extra,
        )
    vae = components.vae(
        f"{tag}/vae", latent_channels=16, scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )
    return components.finish(pipe, dtype)
