"""Built-in tiny Chroma: the real ``ChromaPipeline`` from small configs, no download.

Layout kept from Chroma1-HD: one T5 encoder (run with its padding mask; the pipeline keeps the first
padding token unmasked and passes the mask to the transformer), a Flux-style transformer
(``ChromaTransformer2DModel``: double-stream ``transformer_blocks`` and single-stream
``single_transformer_blocks``, 3-axis RoPE, modulation from the distilled-guidance approximator instead
of CLIP), 2x2 latent packing and real CFG as two transformer calls per step (positive prompt first).

Sizes: 2 double- and 2 single-stream blocks, 2 heads of dim 16 (RoPE axes 4 + 6 + 6), 16 latent
channels, VAE scale factor 2; ``default_sample_size`` set to 32 on the instance (64 px, 256 image
tokens), as for the tiny Flux. ``FAST_CALL_KWARGS`` pads T5 to 32 tokens (512 by default).
"""

from __future__ import annotations

import torch
from diffusers import ChromaPipeline, ChromaTransformer2DModel, FlowMatchEulerDiscreteScheduler

from interp.pipelines import components
from interp.pipelines.tokenizers import t5_tokenizer

LATENT_SIZE = 32
FAST_CALL_KWARGS = {"num_inference_steps": 2, "guidance_scale": 4.0, "max_sequence_length": 32}


def build(variant: str = "chroma", *, dtype: torch.dtype = torch.float32) -> ChromaPipeline:
    """Build the tiny Chroma pipeline, deterministic and in eval mode."""
    if variant != "chroma":
        raise ValueError(f"unknown Chroma variant {variant!r}; expected 'chroma'")
    tokenizer = t5_tokenizer()
    text_encoder = components.t5_encoder("chroma/text_encoder", tokenizer, d_model=64)
    with components.seeded("chroma/transformer"):
        transformer = ChromaTransformer2DModel(
            patch_size=1,
            in_channels=64,  # 16 latent channels x 2x2 packing
            num_layers=2,
            num_single_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=64,  # T5 width
            axes_dims_rope=(4, 6, 6),
            approximator_num_channels=16,
            approximator_hidden_dim=32,
            approximator_layers=1,
        )
    vae = components.vae(
        "chroma/vae", latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False
    )
    scheduler = FlowMatchEulerDiscreteScheduler(  # Chroma's scheduler config (Flux's)
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    pipe = ChromaPipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer
    )
    pipe.default_sample_size = LATENT_SIZE
    return components.finish(pipe, dtype)
