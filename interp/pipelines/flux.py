"""Built-in tiny Flux: the real ``FluxPipeline`` from small configs, no download.

Layout kept from FLUX.1-dev: CLIP-L (no projection; its pooled output conditions the modulation) and T5
(its tokens are the text stream), a transformer with double-stream blocks (``transformer_blocks``, joint
attention over ``[text, image]``) and single-stream blocks (``single_transformer_blocks``), 3-axis RoPE,
guidance embedding (distilled guidance, so no CFG batch), 2x2 latent packing. True CFG
(``true_cfg_scale > 1`` with a ``negative_prompt``) runs the transformer twice per step.

Sizes: 2 double- and 4 single-stream blocks, 2 heads of dim 16 (RoPE axes 4 + 6 + 6), 16 latent channels,
VAE scale factor 2. FluxPipeline hard-codes ``default_sample_size = 128`` in ``__init__`` (not in a
config); the builder sets this instance attribute to 32 so that the default image is 64x64 px, i.e. a
32x32 latent packed into 16x16 = 256 image tokens (a pipeline saved and reloaded gets 128 back: pass
``height``/``width``). T5 is padded to ``max_sequence_length`` (512 by default); a fast run passes 32
(see ``FAST_CALL_KWARGS``).
"""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

from interp.pipelines import components
from interp.pipelines.tokenizers import clip_tokenizer, t5_tokenizer

LATENT_SIZE = 32
FAST_CALL_KWARGS = {"num_inference_steps": 4, "guidance_scale": 3.5, "max_sequence_length": 32}


def build(variant: str = "flux", *, dtype: torch.dtype = torch.float32) -> FluxPipeline:
    """Build the tiny Flux pipeline, deterministic and in eval mode."""
    if variant != "flux":
        raise ValueError(f"unknown Flux variant {variant!r}; expected 'flux'")
    tokenizer, tokenizer_2 = clip_tokenizer(), t5_tokenizer()
    text_encoder = components.clip_text_encoder("flux/text_encoder", tokenizer, projection_dim=None)
    text_encoder_2 = components.t5_encoder("flux/text_encoder_2", tokenizer_2, d_model=64)
    with components.seeded("flux/transformer"):
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=64,  # 16 latent channels x 2x2 packing
            num_layers=2,
            num_single_layers=4,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=64,  # T5 width
            pooled_projection_dim=32,  # CLIP-L hidden size (pooler output)
            guidance_embeds=True,
            axes_dims_rope=(4, 6, 6),
        )
    vae = components.vae(
        "flux/vae", latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False
    )
    scheduler = FlowMatchEulerDiscreteScheduler(  # FLUX.1-dev's scheduler config
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    pipe = FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )
    pipe.default_sample_size = LATENT_SIZE
    return components.finish(pipe, dtype)
